// JSONReader.swift - the one strict JSON reader of AuditDB (docs/FORMAT.md, section 18). Over
// 450 lines: one recursive-descent parser whose checks (order of section 18.5) must not be split.
//
// Every JSON that AuditDB reads goes through here: event input (`details`, `append --jsonl`
// lines, `AuditEvent(jsonLine:)`), export bundles (manifest, entries), checkpoints, anchor files
// and export statements. JSONSerialization is not used for any of them: it takes the last of
// duplicate keys, reads `1.0`, `1e0` and `true` as integers, skips a byte order mark and rounds
// integers through Double, so that two readers of one file could see two different documents.
//
// The checks, in the order they are made (so that an error names the first problem, and an
// independent reader that checks in the same order names the same one):
//   1. the size limit; 2. no byte order mark; 3. the bytes are UTF-8 (RFC 3629); 4. the RFC 8259
//   grammar, left to right, with: no duplicate key in an object, escapes valid and surrogates
//   paired, integers within 64 bits, other numbers finite, the depth and value-count limits.

/// The strict reader. It reads a whole document held in memory: callers bound what they read
/// (``FileBytes``, the line readers) before handing it over, and the reader enforces the limits
/// again while it reads.
struct JSONReader {
    /// The longest number token read (longer ones are refused, not converted).
    static let maximumNumberLength = 100

    private let bytes: UnsafeBufferPointer<UInt8>
    private let limits: JSONLimits
    /// Whether values are built (false: only checked). Turned off inside a `shallow` read's nested containers.
    private var build: Bool
    /// Nested objects and arrays are checked in full but read as empty placeholders (their kind only).
    private let shallow: Bool
    private(set) var i = 0
    private var depth = 0
    private var values = 0
    private var member: String?
    /// The keys of the objects being read, innermost object last: where each key's bytes are (in
    /// the document, or in `decodedKeys` for a key with escapes) and a hash of them. Compared
    /// byte for byte (FORMAT.md 18.3), without a String or a hash set per object: validating
    /// a small `details` costs a few allocations, not dozens.
    private var keys: [KeyRef] = []
    private var decodedKeys: [UInt8] = []
    /// The keys of an object being read that has more than ``linearKeys`` of them, by the
    /// position of its first key in `keys`: past that, each key is checked in a set (with Swift's
    /// per-process seeded hash), so that a hostile object of n keys costs O(n), not O(n²).
    private var keySets: [Int: Set<[UInt8]>] = [:]
    private static let linearKeys = 32
    /// For ``valueRanges(of:in:limits:)``: the member paths looked for, the path being read (nil
    /// for an array element), the ranges found by target index.
    var targets: [[JSONObject.Key]] = [], path: [JSONObject.Key?] = [], found: [Int: (range: Range<Int>, value: JSON)] = [:]
    /// ...and where each path's member begins (its key's opening quote), and the stack of those being read.
    var memberStarts: [Int: Int] = [:], keyStarts: [Int] = [], lastKeyStart = 0

    private struct KeyRef {
        let hash: UInt64
        let range: Range<Int>
        let decoded: Bool
    }

    init(_ bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits, build: Bool, shallow: Bool = false) {
        self.bytes = bytes
        self.limits = limits
        self.build = build
        self.shallow = shallow
    }

    /// Reads one JSON object (the only top-level value AuditDB documents have).
    /// - Parameter validUTF8: The bytes are known to be UTF-8 (they come from a Swift `String`).
    /// - Parameter shallow: Members whose values are objects or arrays are checked by every rule
    ///   but read as empty placeholders, `.object` or `.array([])`: for a reader that needs only
    ///   their kind and their text (``JSONDocument/valueRanges``), as `append --jsonl` does for
    ///   `details` (building its tree was most of the line's cost).
    static func readObject(_ bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits, validUTF8: Bool = false,
                           shallow: Bool = false)
        throws(JSONError) -> JSONDocument
    {
        var reader = JSONReader(bytes, limits: limits, build: true, shallow: shallow)
        try reader.checkEncoding(validUTF8: validUTF8)
        return try reader.topLevelObject()
    }

    func fail(_ problem: JSONError.Problem, at offset: Int? = nil) -> JSONError {
        JSONError(problem: problem, offset: offset ?? i, member: member)
    }

    // MARK: Encoding (steps 1-3)

    mutating func checkEncoding(validUTF8: Bool) throws(JSONError) {
        guard bytes.count <= limits.maxBytes else {
            throw JSONError(problem: .tooLarge(size: bytes.count, limit: limits.maxBytes), offset: limits.maxBytes, member: nil)
        }
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { throw fail(.byteOrderMark, at: 0) }
        if !validUTF8, let bad = UTF8Check.firstInvalidByte(bytes) { throw fail(.invalidUTF8, at: bad) }
    }

    // MARK: Grammar (step 4)

    mutating func skipSpace() {
        while i < bytes.count {
            let c = bytes[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    mutating func topLevelObject() throws(JSONError) -> JSONDocument {
        var members = JSONObject()
        var ranges: [JSONObject.Key: Range<Int>] = [:]
        try topLevelMembers { key, value, range in
            let exact = JSONObject.Key(key)
            ranges[exact] = range
            members.storage[exact] = value
        }
        return JSONDocument(members: members, valueRanges: ranges)
    }

    /// Reads the top-level object, handing each member to `visit` as it is read: its key, its
    /// value, and where the value's text lies. The whole document is checked as by
    /// ``topLevelObject()``; no dictionary is built.
    mutating func topLevelMembers(_ visit: (String, JSON, Range<Int>) -> Void) throws(JSONError) {
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { throw fail(.expectedObject) }
        try count()
        depth = 1
        guard limits.maxDepth >= 1 else { throw fail(.tooDeep(limit: limits.maxDepth)) }
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                let key = try key(objectStart: 0)
                try colon()
                member = key
                skipSpace()
                let start = i
                enterPath(key)
                let value = try value()
                leavePath(valueFrom: start, value)
                if build, let key { visit(key, value, start..<i) }
                member = nil
                if try endOfContainer(close: UInt8(ascii: "}")) { break }
            }
        }
        skipSpace()
        guard i == bytes.count else { throw fail(.trailingText) }
    }

    /// Reads a member's key and checks it against the keys of its object read so far (those from
    /// `objectStart` in `keys`). Returns the key as a String when values are built; nil in the
    /// validating mode, which makes no strings.
    private mutating func key(objectStart: Int) throws(JSONError) -> String? {
        skipSpace()
        let keyStart = i
        lastKeyStart = i
        guard i < bytes.count else { throw fail(.unexpectedEnd) }
        guard bytes[i] == UInt8(ascii: "\"") else { throw fail(.expectedKey) }
        // Without escapes the key is its bytes in the document; with them, decode it.
        var end = i + 1
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        let ref: KeyRef
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            ref = KeyRef(hash: Self.hash(UnsafeBufferPointer(rebasing: bytes[(i + 1)..<end])), range: (i + 1)..<end, decoded: false)
            i = end + 1
        } else {
            let text = try string()
            let start = decodedKeys.count
            decodedKeys.append(contentsOf: text.utf8)
            ref = decodedKeys.withUnsafeBufferPointer { all in
                KeyRef(hash: Self.hash(UnsafeBufferPointer(rebasing: all[start...])), range: start..<all.count, decoded: true)
            }
        }
        if keys.count - objectStart >= Self.linearKeys {
            if keySets[objectStart] == nil {
                keySets[objectStart] = Set(keys[objectStart...].map(keyBytes))
            }
            guard keySets[objectStart]!.insert(keyBytes(ref)).inserted else {
                throw fail(.duplicateKey(text(of: ref)), at: keyStart)
            }
        } else {
            var k = objectStart
            while k < keys.count {
                if keys[k].hash == ref.hash && sameKey(keys[k], ref) { throw fail(.duplicateKey(text(of: ref)), at: keyStart) }
                k += 1
            }
        }
        if keys.isEmpty { keys.reserveCapacity(16) }
        keys.append(ref)
        return build ? text(of: ref) : nil
    }

    private func keyBytes(_ key: KeyRef) -> [UInt8] {
        key.decoded ? Array(decodedKeys[key.range]) : Array(UnsafeBufferPointer(rebasing: bytes[key.range]))
    }

    private func text(of key: KeyRef) -> String {
        key.decoded ? String(decoding: decodedKeys[key.range], as: UTF8.self)
            : String(decoding: UnsafeBufferPointer(rebasing: bytes[key.range]), as: UTF8.self)
    }

    private func sameKey(_ a: KeyRef, _ b: KeyRef) -> Bool {
        guard a.range.count == b.range.count else { return false }
        switch (a.decoded, b.decoded) {
        case (false, false): return bytes[a.range].elementsEqual(bytes[b.range])
        case (true, true): return decodedKeys[a.range].elementsEqual(decodedKeys[b.range])
        case (false, true): return bytes[a.range].elementsEqual(decodedKeys[b.range])
        case (true, false): return decodedKeys[a.range].elementsEqual(bytes[b.range])
        }
    }

    /// FNV-1a: only to skip most byte comparisons; equal bytes decide.
    private static func hash(_ b: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in b { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    private mutating func colon() throws(JSONError) {
        skipSpace()
        guard i < bytes.count else { throw fail(.unexpectedEnd) }
        guard bytes[i] == UInt8(ascii: ":") else { throw fail(.expectedColon) }
        i += 1
    }

    /// After a member or element: true at the closing bracket (consumed), false after a comma.
    private mutating func endOfContainer(close: UInt8) throws(JSONError) -> Bool {
        skipSpace()
        guard i < bytes.count else { throw fail(.unexpectedEnd) }
        if bytes[i] == UInt8(ascii: ",") {
            i += 1
            return false
        }
        guard bytes[i] == close else {
            throw fail(close == UInt8(ascii: "}") ? .expectedCommaOrBrace : .expectedCommaOrBracket)
        }
        i += 1
        return true
    }

    private mutating func count() throws(JSONError) {
        values += 1
        if values > limits.maxValues { throw fail(.tooManyValues(limit: limits.maxValues)) }
    }

    mutating func value() throws(JSONError) -> JSON {
        skipSpace()
        guard i < bytes.count else { throw fail(.unexpectedEnd) }
        let c = bytes[i]
        guard c == UInt8(ascii: "{") || c == UInt8(ascii: "[") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "t")
            || c == UInt8(ascii: "f") || c == UInt8(ascii: "n") || c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39)
        else {
            // A value pasted with its byte order mark (a `details` object inside a line): named as such.
            if c == 0xEF, i + 2 < bytes.count, bytes[i + 1] == 0xBB, bytes[i + 2] == 0xBF { throw fail(.byteOrderMark) }
            throw fail(.expectedValue)
        }
        try count()
        switch c {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""):
            let s = try string(keep: build)
            return build ? .string(s) : .null
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return try number()
        }
    }

    private mutating func enter() throws(JSONError) {
        depth += 1
        if depth > limits.maxDepth { throw fail(.tooDeep(limit: limits.maxDepth)) }
        i += 1
    }

    private mutating func object() throws(JSONError) -> JSON {
        try enter()
        let placeholder = build && shallow
        if placeholder { build = false }
        var object = JSONObject()
        let objectStart = keys.count
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                let key = try key(objectStart: objectStart)
                try colon()
                skipSpace()
                let start = i
                enterPath(key)
                let value = try value()
                leavePath(valueFrom: start, value)
                if build, let key { object.storage[JSONObject.Key(key)] = value }
                if try endOfContainer(close: UInt8(ascii: "}")) { break }
            }
        }
        keys.removeLast(keys.count - objectStart)
        if !keySets.isEmpty { keySets[objectStart] = nil }
        depth -= 1
        if placeholder {
            build = true
            return .object(JSONObject())
        }
        return build ? .object(object) : .null
    }

    private mutating func array() throws(JSONError) -> JSON {
        try enter()
        let placeholder = build && shallow
        if placeholder { build = false }
        var items: [JSON] = []
        var integers: [Int64] = []
        var allIntegers = true
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
        } else {
            while true {
                skipSpace()
                let start = i
                enterPath(nil)
                let item = try value()
                leavePath(valueFrom: start, item)
                if build {
                    if allIntegers, case .int(let v) = item {
                        integers.append(v)
                    } else {
                        if allIntegers {
                            items = integers.map(JSON.int)
                            integers = []
                            allIntegers = false
                        }
                        items.append(item)
                    }
                }
                if try endOfContainer(close: UInt8(ascii: "]")) { break }
            }
        }
        depth -= 1
        if placeholder {
            build = true
            return .array([])
        }
        return build ? (allIntegers ? .integers(integers) : .array(items)) : .null
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail(.invalidLiteral) }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail(.invalidLiteral) }
        i += n
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. An integer token (`0|-?[1-9][0-9]*`:
    /// no fraction, no exponent, not `-0`) must fit 64 bits and reads as `.int`; any other number
    /// must be finite as a 64-bit float and reads as `.double`.
    private mutating func number() throws(JSONError) -> JSON {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, Self.isDigit(bytes[i]) else { throw fail(.invalidNumber, at: start) }
        let leadingZero = bytes[i] == UInt8(ascii: "0")
        i += 1
        while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
        if leadingZero, i - start > (bytes[start] == UInt8(ascii: "-") ? 2 : 1) { throw fail(.leadingZero, at: start) }
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard i < bytes.count, Self.isDigit(bytes[i]) else { throw fail(.invalidNumber, at: start) }
            while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, Self.isDigit(bytes[i]) else { throw fail(.invalidNumber, at: start) }
            while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
        }
        guard i - start <= Self.maximumNumberLength else {
            throw fail(.numberTooLong(limit: Self.maximumNumberLength), at: start)
        }
        let negative = bytes[start] == UInt8(ascii: "-")
        if isInteger, !(negative && leadingZero), i - start - (negative ? 1 : 0) <= 18 {
            // Up to 18 digits always fit 64 bits: read without text or parsing.
            guard build else { return .null }
            var value: Int64 = 0
            for k in (negative ? start + 1 : start)..<i { value = value * 10 + Int64(bytes[k] - 0x30) }
            return .int(negative ? -value : value)
        }
        if !isInteger, !build, !bytes[start..<i].contains(where: { $0 | 0x20 == UInt8(ascii: "e") }) {
            // No exponent and at most 100 bytes: always finite; nothing to keep.
            return .null
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if isInteger && text != "-0" {
            guard let value = Int64(text) else { throw fail(.integerOutOfRange, at: start) }
            return .int(value)
        }
        guard let value = Double(text), value.isFinite else { throw fail(.numberNotFinite, at: start) }
        return .double(value)
    }
    /// A string token (at its opening quote), unescaped; with `keep` false it is only checked
    /// (the validating mode builds no strings). The bytes were checked as UTF-8 already.
    private mutating func string(keep: Bool = true) throws(JSONError) -> String {
        let open = i
        i += 1
        let contentStart = i
        // Fast path: no escape up to the closing quote.
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let s = keep ? String(decoding: UnsafeBufferPointer(rebasing: bytes[contentStart..<i]), as: UTF8.self) : ""
                i += 1
                return s
            }
            if c < 0x20 { throw fail(.controlCharacter) }
            if c == UInt8(ascii: "\\") { break }
            i += 1
        }
        guard i < bytes.count else { throw fail(.unterminatedString, at: open) }
        var out = keep ? Array(UnsafeBufferPointer(rebasing: bytes[contentStart..<i])) : []
        while true {
            guard i < bytes.count else { throw fail(.unterminatedString, at: open) }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return keep ? String(decoding: out, as: UTF8.self) : ""
            }
            if c < 0x20 { throw fail(.controlCharacter) }
            if c != UInt8(ascii: "\\") {
                if keep { out.append(c) }
                i += 1
                continue
            }
            let escape = i
            i += 1
            guard i < bytes.count else { throw fail(.unterminatedString, at: open) }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): if keep { out.append(0x22) }
            case UInt8(ascii: "\\"): if keep { out.append(0x5C) }
            case UInt8(ascii: "/"): if keep { out.append(0x2F) }
            case UInt8(ascii: "b"): if keep { out.append(0x08) }
            case UInt8(ascii: "f"): if keep { out.append(0x0C) }
            case UInt8(ascii: "n"): if keep { out.append(0x0A) }
            case UInt8(ascii: "r"): if keep { out.append(0x0D) }
            case UInt8(ascii: "t"): if keep { out.append(0x09) }
            case UInt8(ascii: "u"):
                guard var scalar = Self.hex4(bytes, at: i) else { throw fail(.invalidUnicodeEscape, at: escape) }
                i += 4
                if (0xDC00...0xDFFF).contains(scalar) { throw fail(.loneSurrogate(scalar), at: escape) }
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail(.loneSurrogate(scalar), at: escape)
                    }
                    i += 2
                    guard let low = Self.hex4(bytes, at: i) else { throw fail(.invalidUnicodeEscape, at: i - 2) }
                    i += 4
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail(.loneSurrogate(scalar), at: escape) }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                if keep { UTF8Check.append(scalar, to: &out) }
            default:
                throw fail(.invalidEscape, at: escape)
            }
        }
    }
}
