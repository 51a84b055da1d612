/// UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates (U+D800...U+DFFF), nothing
/// above U+10FFFF.
enum UTF8Check {
    /// The offset of the first byte of the first invalid sequence, or nil if all is UTF-8.
    static func firstInvalidByte(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = 0
        let n = b.count
        func continuation(_ k: Int) -> Bool { k < n && b[k] & 0xC0 == 0x80 }
        while i < n {
            let c = b[i]
            if c < 0x80 {
                i += 1
                continue
            }
            switch c {
            case 0xC2...0xDF:
                guard continuation(i + 1) else { return i }
                i += 2
            case 0xE0...0xEF:
                let second: ClosedRange<UInt8> = c == 0xE0 ? 0xA0...0xBF : c == 0xED ? 0x80...0x9F : 0x80...0xBF
                guard i + 1 < n, second.contains(b[i + 1]), continuation(i + 2) else { return i }
                i += 3
            case 0xF0...0xF4:
                let second: ClosedRange<UInt8> = c == 0xF0 ? 0x90...0xBF : c == 0xF4 ? 0x80...0x8F : 0x80...0xBF
                guard i + 1 < n, second.contains(b[i + 1]), continuation(i + 2), continuation(i + 3) else { return i }
                i += 4
            default:
                return i
            }
        }
        return nil
    }

    /// Appends the UTF-8 encoding of a scalar (not a surrogate) to `out`.
    static func append(_ v: UInt32, to out: inout [UInt8]) {
        switch v {
        case 0..<0x80:
            out.append(UInt8(v))
        case 0x80..<0x800:
            out += [UInt8(0xC0 | v >> 6), UInt8(0x80 | v & 0x3F)]
        case 0x800..<0x10000:
            out += [UInt8(0xE0 | v >> 12), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        default:
            out += [UInt8(0xF0 | v >> 18), UInt8(0x80 | v >> 12 & 0x3F), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        }
    }
}
