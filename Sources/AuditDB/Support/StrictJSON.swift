import Foundation

/// A signed JSON document (a checkpoint, an export statement) read strictly: it must parse, be
/// an object, carry the expected `format`, and hold no key outside `known` (nothing unproven may
/// sit beside the signed fields: a reader would take it as signed). Each accessor checks its
/// field's type; every error names the document and the field.
struct StrictJSONObject {
    let object: [String: Any]
    /// "checkpoint", "export statement".
    let what: String

    init(_ data: Data, what: String, article: String, format: String, known: Set<String>, unknownNote: String)
        throws(AuditError)
    {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw AuditError(.invalidInput, "\(article) \(what) is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else {
            throw AuditError(.invalidInput, "\(article) \(what) must be a JSON object")
        }
        guard object["format"] as? String == format else {
            throw AuditError(.invalidInput, "not \(article) \(what): its format is not `\(format)`")
        }
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw AuditError(.invalidInput, "\(what) has an unknown field \(OutputEscaping.jsonQuoted(unknown)); \(unknownNote)",
                             field: unknown)
        }
        self.object = object
        self.what = what
    }

    func bytes(_ name: String, _ count: Int) throws(AuditError) -> [UInt8] {
        guard let text = object[name] as? String, let b = Hex.decode(text), b.count == count else {
            throw AuditError(.invalidInput, "\(what) field \(name) must be \(count * 2) hex digits", field: name)
        }
        return b
    }

    func integer(_ name: String) throws(AuditError) -> Int64 {
        guard let n = object[name] as? Int64 else {
            throw AuditError(.invalidInput, "\(what) field \(name) must be an integer", field: name)
        }
        return n
    }

    var storeID: StoreID {
        get throws(AuditError) {
            guard let id = object["storeId"] as? String, let storeID = StoreID(hex: id) else {
                throw AuditError(.invalidInput, "\(what) field storeId must be 32 hex digits", field: "storeId")
            }
            return storeID
        }
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
