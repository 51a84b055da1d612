/// A store's random 16-byte identity, chosen at creation and covered by every row's MAC, so a
/// row (or a whole file) from another store never verifies as this one.
///
/// Pin it (``AuditStore/Configuration/expectedStoreID``, `auditdb --store-id`) to detect a whole
/// file swapped for another store that uses the same key.
public struct StoreID: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bytes.
    public let bytes: [UInt8]

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// The store id made of `bytes`; nil unless there are exactly 16.
    public init?(exactly bytes: [UInt8]) {
        guard bytes.count == StoreFormat.storeIDLength else { return nil }
        self.bytes = bytes
    }

    /// Parses 32 hex digits, either case (as typed for `--store-id`; the JSON documents AuditDB
    /// verifies hold it in lowercase only). Nothing else: no sign, prefix or space.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// 32 lowercase hex digits.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }
}
