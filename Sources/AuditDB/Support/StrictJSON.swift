/// A signed JSON document (a checkpoint, an export statement) read strictly (``JSONReader``,
/// docs/FORMAT.md section 18): it must be one JSON object within ``JSONLimits/signedDocument``,
/// carry the expected `format`, and hold no key outside `known` (nothing unproven may sit
/// beside the signed fields: a reader would take it as signed). Each accessor checks its field's
/// type; every error names the document and the field.
struct StrictJSONObject {
    let object: JSONObject
    /// "checkpoint", "export statement".
    let what: String

    init(_ bytes: [UInt8], what: String, article: String, format: String, known: Set<String>, unknownNote: String)
        throws(AuditError)
    {
        try self.init(bytes, what: what, article: article, formats: [format], known: { _ in known }, unknownNote: unknownNote)
    }

    /// A document of one of several `formats` (newest first in the error), whose known keys
    /// depend on the format read.
    init(_ bytes: [UInt8], what: String, article: String, formats: [String], known: (String) -> Set<String>, unknownNote: String)
        throws(AuditError)
    {
        let document: JSONDocument
        do {
            document = try JSONReader.readObject(bytes, limits: .signedDocument)
        } catch {
            throw AuditError(.invalidInput, "not \(article) \(what): \(error)", field: error.member)
        }
        let object = document.members
        guard let format = object["format"]?.text, formats.contains(format) else {
            throw AuditError(.invalidInput, "not \(article) \(what): its format is not \(formats.map { "`\($0)`" }.joined(separator: " or "))")
        }
        if let unknown = object.firstKey(notIn: known(format)) {
            throw AuditError(.invalidInput, "\(what) has an unknown field \(OutputEscaping.jsonQuoted(unknown)); \(unknownNote)",
                             field: unknown)
        }
        self.object = object
        self.what = what
    }

    /// A byte string field: exactly `count` bytes as `2 × count` lowercase hex digits.
    func bytes(_ name: String, _ count: Int) throws(AuditError) -> [UInt8] {
        guard let text = object[name]?.text, let b = Hex.decodeLowercase(text), b.count == count else {
            throw AuditError(.invalidInput, "\(what) field \(name) must be \(count * 2) lowercase hex digits", field: name)
        }
        return b
    }

    /// An integer field (an integer token: not `1.0`, `1e0`, `-0`, `true` or a string).
    func integer(_ name: String) throws(AuditError) -> Int64 {
        guard let n = object[name]?.integer else {
            throw AuditError(.invalidInput, "\(what) field \(name) must be an integer", field: name)
        }
        return n
    }

    var storeID: StoreID {
        get throws(AuditError) { StoreID(bytes: try bytes("storeId", StoreFormat.storeIDLength)) }
    }

    var keyVersion: UInt32 {
        get throws(AuditError) {
            guard let kv = UInt32(exactly: try integer("keyVersion")) else {
                throw AuditError(.invalidInput, "\(what) field keyVersion is out of range", field: "keyVersion")
            }
            return kv
        }
    }
}
