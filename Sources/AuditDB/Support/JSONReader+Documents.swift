// The strict reader's other entry points (JSONReader.swift holds the parser and readObject).

extension JSONReader {
    /// Reads one JSON array: a line of a v2 `entries.jsonl` (FORMAT.md 17.5), the one document
    /// whose top-level value is not an object. The same rules and checks otherwise.
    static func readArray(_ bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits) throws(JSONError) -> [JSON] {
        var reader = JSONReader(bytes, limits: limits, build: true)
        try reader.checkEncoding(validUTF8: false)
        reader.skipSpace()
        guard reader.i < bytes.count, bytes[reader.i] == UInt8(ascii: "[") else { throw reader.fail(.expectedArray) }
        let array = try reader.value()
        reader.skipSpace()
        guard reader.i == bytes.count else { throw reader.fail(.trailingTextAfterArray) }
        return array.elements ?? []
    }

    /// Checks one JSON object without building its values (the append path's validation of `details`).
    static func validateObject(_ bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits, validUTF8: Bool = false)
        throws(JSONError)
    {
        var reader = JSONReader(bytes, limits: limits, build: false)
        try reader.checkEncoding(validUTF8: validUTF8)
        _ = try reader.topLevelObject()
    }

    /// ``readObject(_:limits:validUTF8:)`` over an array.
    static func readObject(_ bytes: [UInt8], limits: JSONLimits) throws(JSONError) -> JSONDocument {
        let result: Result<JSONDocument, JSONError> = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(JSONError) in try readObject(buffer, limits: limits) }
        }
        return try result.get()
    }

    /// Reads one JSON object as ``readObject(_:limits:validUTF8:shallow:)`` does with `shallow`
    /// true, handing each top-level member to `visit` (its key, its value, where the value's text
    /// lies) instead of building a document: for a reader that knows its members by name
    /// (`AuditEvent(jsonLine:)`, once per input line).
    static func readMembers(_ bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits, validUTF8: Bool,
                            _ visit: (String, JSON, Range<Int>) -> Void) throws(JSONError)
    {
        var reader = JSONReader(bytes, limits: limits, build: true, shallow: true)
        try reader.checkEncoding(validUTF8: validUTF8)
        try reader.topLevelMembers(visit)
    }

    /// Where the value of each member path lies, and the value (object keys from the top, e.g.
    /// `["user", "email"]`), by index into `paths`; a path that is absent, or runs through an array or a
    /// non-object, has no range. The document is read strictly, as ``readObject(_:limits:validUTF8:shallow:)`` does.
    static func valueRanges(of paths: [[String]], in bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits)
        throws(JSONError) -> [Int: (range: Range<Int>, value: JSON)]
    {
        var reader = JSONReader(bytes, limits: limits, build: true)
        reader.targets = paths.map { $0.map(JSONObject.Key.init) }
        try reader.checkEncoding(validUTF8: true)
        _ = try reader.topLevelObject()
        return reader.found
    }

    /// Steps into a member (`key`) or an array element (nil), and out of it noting its value's range.
    mutating func enterPath(_ key: String?) {
        guard !targets.isEmpty else { return }
        path.append(key.map(JSONObject.Key.init))
        keyStarts.append(key == nil ? -1 : lastKeyStart)
    }
    mutating func leavePath(valueFrom start: Int, _ value: JSON) {
        guard !targets.isEmpty else { return }
        for (n, target) in targets.enumerated() where target.count == path.count && zip(target, path).allSatisfy({ $0 == $1 }) {
            found[n] = (start..<i, value)
            memberStarts[n] = keyStarts.last
        }
        path.removeLast()
        keyStarts.removeLast()
    }

    /// Where each member path lies as a whole, from its key's opening quote to the end of its value
    /// (the member ``valueRanges(of:in:limits:)`` finds the value of), by index into `paths`.
    static func memberRanges(of paths: [[String]], in bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits)
        throws(JSONError) -> [Int: Range<Int>]
    {
        var reader = JSONReader(bytes, limits: limits, build: true)
        reader.targets = paths.map { $0.map(JSONObject.Key.init) }
        try reader.checkEncoding(validUTF8: true)
        _ = try reader.topLevelObject()
        var ranges: [Int: Range<Int>] = [:]
        for (n, hit) in reader.found { if let start = reader.memberStarts[n] { ranges[n] = start..<hit.range.upperBound } }
        return ranges
    }

    /// The value of the 4 hex digits at `at` (of a `\u` escape), or nil.
    static func hex4(_ bytes: UnsafeBufferPointer<UInt8>, at: Int) -> UInt32? {
        guard at + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = bytes[at + k]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            default: return nil
            }
            v = v << 4 | d
        }
        return v
    }
}
