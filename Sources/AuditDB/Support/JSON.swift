/// A JSON value read strictly. Internal: the public ``JSONValue`` builds `details` from Swift
/// values, whose dictionaries compare keys as Swift strings do. Not `indirect`: arrays and
/// objects hold their elements out of line already, so a number costs 24 bytes, not a box.
enum JSON {
    case null
    case bool(Bool)
    /// An integer token (`0|-?[1-9][0-9]*`), within 64 bits.
    case int(Int64)
    /// Any other number (a fraction, an exponent, or `-0`), finite.
    case double(Double)
    case string(String)
    case array([JSON])
    /// An array whose elements are all integer tokens (the empty array too), held as 8 bytes each:
    /// a manifest's million seqs cost 8 MB, not 24.
    case integers([Int64])
    case object(JSONObject)

    /// The value of an integer token (never of `1.0`, `1e0`, `-0`, `true` or a string).
    var integer: Int64? { if case .int(let v) = self { v } else { nil } }
    /// The text of a string.
    var text: String? { if case .string(let s) = self { s } else { nil } }
    /// The members of an object.
    var object: JSONObject? { if case .object(let o) = self { o } else { nil } }
    /// The elements of an array.
    var elements: [JSON]? {
        switch self {
        case .array(let a): a
        case .integers(let a): a.map(JSON.int)
        default: nil
        }
    }
    /// The elements of an array whose elements are all integer tokens.
    var integerElements: [Int64]? { if case .integers(let a) = self { a } else { nil } }
    /// Whether this is `null`.
    var isNull: Bool { if case .null = self { true } else { false } }
    /// Whether this is the literal `true` (not `1`, not `"true"`).
    var isTrue: Bool { if case .bool(true) = self { true } else { false } }
}

/// The members of a JSON object, keyed by the exact Unicode scalars of their keys. Swift's
/// `String ==` would equate canonically equivalent keys (`"publicKey"` and `"public\u212Aey"`,
/// with U+212A KELVIN SIGN), which are two different keys to this format and to other readers.
struct JSONObject {
    /// A key compared and hashed by its UTF-8 bytes.
    struct Key: Hashable {
        let string: String
        init(_ string: String) { self.string = string }
        // On the contiguous UTF-8 at once: byte by byte, hashing and comparing keys took ~20% of
        // `append --jsonl`'s CPU (docs/performance.md, streaming ingest).
        static func == (a: Key, b: Key) -> Bool {
            var x = a.string, y = b.string
            return x.withUTF8 { p in
                y.withUTF8 { q in p.count == q.count && p.elementsEqual(q) }
            }
        }
        func hash(into hasher: inout Hasher) {
            var s = string
            s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        }
    }

    var storage: [Key: JSON] = [:]

    /// The value of member `name`, if present.
    subscript(_ name: String) -> JSON? { storage[Key(name)] }

    /// The keys in code point order (the order of a Python `sorted`).
    var sortedKeys: [String] {
        storage.keys.map(\.string).sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
    }

    /// The first key, in code point order, that is not in `known`.
    func firstKey(notIn known: Set<String>) -> String? {
        // Every key known is the common case: no set to build, no sort.
        // A hashed lookup finds the candidate (String == equates canonically equivalent texts);
        // only its bytes decide.
        let unknown = storage.keys.filter { key in
            guard let index = known.firstIndex(of: key.string) else { return true }
            return Key(known[index]) != key
        }
        return unknown.map(\.string).min { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
    }
}

/// A JSON object read strictly: its members, and the byte range of each member's value text.
struct JSONDocument {
    let members: JSONObject
    /// Where each member's value lies in the bytes read (to keep `details` byte for byte).
    let valueRanges: [JSONObject.Key: Range<Int>]
}
