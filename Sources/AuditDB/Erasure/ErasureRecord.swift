/// The erasure entry of one erasure (FORMAT.md section 21.3): which fields of which rows were
/// erased, and why — never a value. Appended by AuditDB in the transaction that erases the fields;
/// read back (through verification) by the verifier's step 10.
struct ErasureRecord: Sendable, Hashable {
    static let action = "auditdb.erasure"
    static let resourceType = "erasure"
    /// At most this many seqs per entry, so that its details stay well inside their 64 KiB limit
    /// (2,000 seqs of 19 digits and a comma are 40,000 bytes). A larger erasure writes several entries.
    static let maximumSeqs = 2_000
    /// The longest reason, in UTF-8 bytes.
    static let maximumReasonBytes = 1_024

    /// Why (a ticket reference); never a value of the erased fields.
    var reason: String
    /// How the rows were chosen: `actor`, `tenant`, `resource` or `seqs` (the kind only, no value).
    var subject: String
    /// The fields erased in every row of `seqs`.
    var fields: Set<WithholdableField>
    /// The rows, strictly increasing, each below the entry's own seq.
    var seqs: [Int64]

    /// The fields as a bit mask: bit 0 actor, bit 1 source, bit 2 details (FORMAT.md section 21.1).
    var mask: UInt8 { Self.mask(fields) }

    static func mask(_ fields: Set<WithholdableField>) -> UInt8 {
        fields.reduce(0) { $0 | (1 << ($1.id - 1)) }
    }

    static let subjects: Set<String> = ["actor", "tenant", "resource", "seqs"]

    /// The entry that records it.
    var event: AuditEvent {
        let details: [String: JSONValue] = [
            "reason": .string(reason), "subject": .string(subject),
            "fields": .array(WithholdableField.allCases.filter(fields.contains).map { .string($0.rawValue) }),
            "seqs": .array(seqs.map { .int($0) }),
        ]
        return AuditEvent(actor: "auditdb", action: Self.action, resourceType: Self.resourceType, severity: .notice,
                          details: AuditDetails(details))
    }

    init(reason: String, subject: String, fields: Set<WithholdableField>, seqs: [Int64]) {
        self.reason = reason
        self.subject = subject
        self.fields = fields
        self.seqs = seqs
    }

    /// What is wrong with an erasure entry's details.
    struct Unreadable: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Reads a verified erasure entry's details, strictly (21.3: exactly these members).
    init(_ entry: AuditEntry) throws(Unreadable) {
        let object: JSONObject
        switch entry.strictDetails() {
        case .success(let members): object = members
        case .failure(let problem): throw Unreadable(problem.reason)
        }
        if let unknown = object.firstKey(notIn: ["reason", "subject", "fields", "seqs"]) {
            throw Unreadable("its details have the unknown key \(OutputEscaping.jsonQuoted(unknown))")
        }
        guard let reason = object["reason"]?.text, !reason.isEmpty else { throw Unreadable("its details lack the string reason") }
        guard let subject = object["subject"]?.text, Self.subjects.contains(subject) else {
            throw Unreadable("its subject is not one of actor, tenant, resource, seqs")
        }
        guard let names = object["fields"]?.elements, !names.isEmpty else { throw Unreadable("its details lack the array fields") }
        var fields: Set<WithholdableField> = []
        for name in names {
            guard let text = name.text, let field = WithholdableField(rawValue: text), fields.insert(field).inserted else {
                throw Unreadable("its fields are not distinct names among actor, source, details")
            }
        }
        guard let seqs = object["seqs"]?.integerElements ?? (object["seqs"]?.elements?.isEmpty == true ? [] : nil) else {
            throw Unreadable("its seqs are not an array of integers")
        }
        guard !seqs.isEmpty, seqs.count <= Self.maximumSeqs, seqs[0] >= 1, seqs.last! < entry.seq,
              zip(seqs, seqs.dropFirst()).allSatisfy({ $0 < $1 })
        else {
            throw Unreadable("its seqs must be 1 to \(Self.maximumSeqs) increasing seqs from 1, all before the entry's own seq \(entry.seq)")
        }
        self.init(reason: reason, subject: subject, fields: fields, seqs: seqs)
    }
}
