/// A store's random 16-byte identity, chosen at creation and covered by every row's MAC, so a
/// row (or a whole file) from another store never verifies as this one.
///
/// Pin it (``AuditStore/Configuration/expectedStoreID``, `auditdb --store-id`) to detect a whole
/// file swapped for another store that uses the same key.
public struct StoreID: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bytes.
    public let bytes: [UInt8]

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses 32 hex digits.
    public init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count == 32 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(16)
        for i in stride(from: 0, to: 32, by: 2) {
            guard let byte = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
        }
        bytes = out
    }

    /// 32 lowercase hex digits.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }
}
