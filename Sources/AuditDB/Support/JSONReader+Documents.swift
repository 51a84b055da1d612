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
}
