/// The erasure entry of one erasure (FORMAT.md section 21.3): which fields of which rows were
/// erased, and why — never a value. Appended by AuditDB in the transaction that erases the fields;
/// read back (through verification) by the verifier's step 10.
struct ErasureRecord: Sendable, Hashable {
    static let action = "auditdb.erasure"
    static let resourceType = "erasure"
    /// At most this many seqs per entry, so that its details stay well inside their 64 KiB limit
    /// (2,000 seqs of 19 digits and a comma are 40,000 bytes). A larger erasure writes several entries.
    static let maximumSeqs = 2_000
    /// At most this many seqs in an entry that erases paths inside `details`: each seq also has a
    /// 64-hex residual hash, and the entry stays inside the 64 KiB limit (FORMAT.md 21.7).
    static let maximumSeqsWithPaths = 500
    /// The longest reason, in UTF-8 bytes.
    static let maximumReasonBytes = 1_024

    /// Why (a ticket reference); never a value of the erased fields.
    var reason: String
    /// How the rows were chosen: `actor`, `tenant`, `resource` or `seqs` (the kind only, no value).
    var subject: String
    /// The fields erased whole in every row of `seqs`.
    var fields: Set<WithholdableField>
    /// The paths inside `details` erased in every row of `seqs` that held them (FORMAT.md 21.7).
    var paths: [MaskPath] = []
    /// With `paths`: for each seq, RESIDUAL_HASH of the row's `details` column as this erasure left
    /// it, or nil where no path was erased (the row had none of them, or no details).
    var residuals: [[UInt8]?] = []
    /// The rows, strictly increasing, each below the entry's own seq.
    var seqs: [Int64]

    /// The fields erased whole as a bit mask: bit 0 actor, bit 1 source, bit 2 details (FORMAT.md 21.1).
    var mask: UInt8 { Self.mask(fields) }

    /// What it erased in the row of `seqs[index]`: ``mask``, and bits 2 and 3 (0x0C) where it
    /// erased paths inside details (FORMAT.md 21.7).
    func mask(at index: Int) -> UInt8 {
        mask | (index < residuals.count && residuals[index] != nil ? Self.partialDetails : 0)
    }

    /// Seals bit 3: details partially erased (with bit 2: its nonce is destroyed too).
    static let partialDetails: UInt8 = 0x0C

    static func mask(_ fields: Set<WithholdableField>) -> UInt8 {
        fields.reduce(0) { $0 | (1 << ($1.id - 1)) }
    }

    static let subjects: Set<String> = ["actor", "tenant", "resource", "seqs"]

    /// The entry that records it.
    var event: AuditEvent {
        var details: [String: JSONValue] = [
            "reason": .string(reason), "subject": .string(subject),
            "fields": .array(WithholdableField.allCases.filter(fields.contains).map { .string($0.rawValue) }),
            "seqs": .array(seqs.map { .int($0) }),
        ]
        if !paths.isEmpty {
            details["paths"] = .array(paths.map { .string($0.description) })
            details["residuals"] = .array(residuals.map { $0.map { .string(Hex.encode($0)) } ?? .null })
        }
        return AuditEvent(actor: "auditdb", action: Self.action, resourceType: Self.resourceType, severity: .notice,
                          details: AuditDetails(details))
    }

    init(reason: String, subject: String, fields: Set<WithholdableField>, paths: [MaskPath] = [], residuals: [[UInt8]?] = [],
         seqs: [Int64])
    {
        self.reason = reason
        self.subject = subject
        self.fields = fields
        self.paths = paths
        self.residuals = residuals
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
        if let unknown = object.firstKey(notIn: ["reason", "subject", "fields", "seqs", "paths", "residuals"]) {
            throw Unreadable("its details have the unknown key \(OutputEscaping.jsonQuoted(unknown))")
        }
        guard let reason = object["reason"]?.text, !reason.isEmpty else { throw Unreadable("its details lack the string reason") }
        guard let subject = object["subject"]?.text, Self.subjects.contains(subject) else {
            throw Unreadable("its subject is not one of actor, tenant, resource, seqs")
        }
        guard let names = object["fields"]?.elements else { throw Unreadable("its details lack the array fields") }
        var fields: Set<WithholdableField> = []
        for name in names {
            guard let text = name.text, let field = WithholdableField(rawValue: text), fields.insert(field).inserted else {
                throw Unreadable("its fields are not distinct names among actor, source, details")
            }
        }
        guard let seqs = object["seqs"]?.integerElements ?? (object["seqs"]?.elements?.isEmpty == true ? [] : nil) else {
            throw Unreadable("its seqs are not an array of integers")
        }
        let (paths, residuals) = try Self.paths(object, seqs: seqs.count)
        guard !fields.isEmpty || !paths.isEmpty else { throw Unreadable("it erases no field and no path") }
        guard !fields.isEmpty || !residuals.contains(where: { $0 == nil }) else {
            throw Unreadable("it erases only paths, yet records a row where it erased none")
        }
        guard !(fields.contains(.details) && !paths.isEmpty) else { throw Unreadable("it erases details both whole and by paths") }
        let limit = paths.isEmpty ? Self.maximumSeqs : Self.maximumSeqsWithPaths
        guard !seqs.isEmpty, seqs.count <= limit, seqs[0] >= 1, seqs.last! < entry.seq,
              zip(seqs, seqs.dropFirst()).allSatisfy({ $0 < $1 })
        else {
            throw Unreadable("its seqs must be 1 to \(limit) increasing seqs from 1, all before the entry's own seq \(entry.seq)")
        }
        self.init(reason: reason, subject: subject, fields: fields, paths: paths, residuals: residuals, seqs: seqs)
    }

    /// The optional `paths` and `residuals` (FORMAT.md 21.7): both or neither; 1 to 16 distinct
    /// `details.KEY…` paths in order, none inside another; one 64-hex hash or null per seq.
    private static func paths(_ object: JSONObject, seqs: Int) throws(Unreadable) -> ([MaskPath], [[UInt8]?]) {
        guard object["paths"] != nil || object["residuals"] != nil else { return ([], []) }
        guard let names = object["paths"]?.elements, let hashes = object["residuals"]?.elements else {
            throw Unreadable("its paths and residuals must both be arrays")
        }
        var paths: [MaskPath] = []
        for name in names {
            guard let text = name.text, let path = try? MaskPath(parsing: text), path.field == .details, !path.members.isEmpty,
                  text.utf8.count <= ErasedDetails.maximumPathBytes, paths.last.map({ $0 < path }) ?? true,
                  !paths.contains(where: { $0.covers(path) })  // every earlier path, not only the last: "details.a-x" sorts between "details.a" and "details.a.b"
            else { throw Unreadable("its paths are not distinct details.KEY paths in order, none inside another") }
            paths.append(path)
        }
        guard !paths.isEmpty, paths.count <= ErasedDetails.maximumPathsPerErasure else {
            throw Unreadable("its paths must be 1 to \(ErasedDetails.maximumPathsPerErasure)")
        }
        var residuals: [[UInt8]?] = []
        for hash in hashes {
            if hash.isNull {
                residuals.append(nil)
                continue
            }
            guard let text = hash.text, text.utf8.count == 64, let bytes = Hex.decodeLowercase(text) else {
                throw Unreadable("its residuals are not 64 lowercase hex digits each")
            }
            residuals.append(bytes)
        }
        guard residuals.count == seqs else { throw Unreadable("it has \(residuals.count) residuals for \(seqs) seqs") }
        return (paths, residuals)
    }
}
