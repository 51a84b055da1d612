/// Lowercase hex.
package enum Hex {
    package static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hex (either case: text people type, such as `--store-id`); nil for odd length or
    /// a character other than `0-9a-fA-F` (no sign, no prefix, no space).
    static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode(bytes: $0) }
    }

    /// Decodes the hex of the JSON documents AuditDB verifies (checkpoints, statements, bundles:
    /// docs/FORMAT.md section 18.3): lowercase only, so that one byte string has one spelling.
    package static func decodeLowercase(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode(bytes: $0, lowercaseOnly: true) }
    }

    static func decode(bytes chars: UnsafeBufferPointer<UInt8>, lowercaseOnly: Bool = false) -> [UInt8]? {
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46 where !lowercaseOnly: return c - 0x41 + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
