/// The expiry entry of one expiry (FORMAT.md section 20.3): the policy applied, its time, the
/// seqs it expired and the digest of their tombstones. Written by AuditDB in the transaction that
/// expires the rows; read back (through verification) by the verifier's step 9.
struct ExpiryRecord: Sendable, Hashable {
    static let action = "auditdb.retention.expired"
    static let resourceType = "retention"

    var policy: RetentionPolicy
    var now: AuditTimestamp
    var first: Int64
    var last: Int64
    var count: Int64
    var digest: [UInt8]
    /// The archive bundle of the rows, if they were archived first.
    var archive: Archive?

    /// An archive bundle: its directory name and the SHA-256 of its `manifest.json`.
    struct Archive: Sendable, Hashable {
        var bundle: String
        var manifest: [UInt8]
    }

    /// The entry that records it.
    var event: AuditEvent {
        // Written as text, members in code point order: a [String: JSONValue] would keep only one of
        // two canonically equivalent tenants, which the policy holds apart.
        func quoted(_ s: String) -> String {
            var out = ""
            JSONText.appendQuoted(s, to: &out)
            return out
        }
        func limit(_ l: RetentionPolicy.Limit) -> String {
            if case .maximumAge(let period) = l { return quoted(period.description) }
            return "null"
        }
        let tenants = policy.tenantOverrides.map { "\(quoted($0.tenant)):\(limit($0.limit))" }.joined(separator: ",")
        var text = "{"
        if let archive {
            text += "\"archive\":{\"bundle\":\(quoted(archive.bundle)),\"manifest\":\"\(Hex.encode(archive.manifest))\"},"
        }
        text += "\"count\":\(count),\"first\":\(first),\"last\":\(last),\"now\":\(now.microsecondsSinceEpoch),"
        text += "\"policy\":{\"default\":\(limit(policy.defaultLimit)),\"tenants\":{\(tenants)}},"
        text += "\"tombstones\":\"\(Hex.encode(digest))\"}"
        return AuditEvent(actor: "auditdb", action: Self.action, resourceType: Self.resourceType, severity: .notice,
                          details: AuditDetails(json: text))
    }

    /// What is wrong with an expiry entry's details.
    struct Unreadable: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Reads a verified expiry entry's details, strictly (20.3: exactly these members).
    init(_ entry: AuditEntry) throws(Unreadable) {
        let object: JSONObject
        switch entry.strictDetails() {
        case .success(let members): object = members
        case .failure(let problem): throw Unreadable(problem.reason)
        }
        if let unknown = object.firstKey(notIn: ["policy", "now", "first", "last", "count", "tombstones", "archive"]) {
            throw Unreadable("its details have the unknown key \(OutputEscaping.jsonQuoted(unknown))")
        }
        func integer(_ name: String) throws(Unreadable) -> Int64 {
            guard let value = object[name]?.integer else { throw Unreadable("its details lack the integer \(name)") }
            return value
        }
        func limit(_ value: JSON?, _ name: String) throws(Unreadable) -> RetentionPolicy.Limit {
            guard let value else { throw Unreadable("its policy lacks \(name)") }
            if value.isNull { return .forever }
            guard let text = value.text else { throw Unreadable("its policy's \(name) is not a period or null") }
            do {
                return .maximumAge(try RetentionPeriod(parsing: text, field: name))
            } catch {
                throw Unreadable("its policy's \(name) is not a period (\(error.message))")
            }
        }
        guard let policy = object["policy"]?.object else { throw Unreadable("its details lack the object policy") }
        if let unknown = policy.firstKey(notIn: ["default", "tenants"]) {
            throw Unreadable("its policy has the unknown key \(OutputEscaping.jsonQuoted(unknown))")
        }
        guard let tenantObject = policy["tenants"]?.object else { throw Unreadable("its policy lacks the object tenants") }
        var tenants: [RetentionPolicy.TenantLimit] = []  // JSONObject's keys are apart byte for byte, as the policy's
        for name in tenantObject.sortedKeys {
            tenants.append(RetentionPolicy.TenantLimit(tenant: name, limit: try limit(tenantObject[name], "tenants[\(OutputEscaping.jsonQuoted(name))]")))
        }
        let defaultLimit = try limit(policy["default"], "default")
        do throws(AuditError) {
            self.policy = try RetentionPolicy(default: defaultLimit, overrides: tenants)
        } catch {
            throw Unreadable("its policy is invalid (\(error.message))")
        }
        now = AuditTimestamp(microsecondsSinceEpoch: try integer("now"))
        first = try integer("first")
        last = try integer("last")
        count = try integer("count")
        guard let hex = object["tombstones"]?.text, hex.utf8.count == 64, let bytes = Hex.decodeLowercase(hex) else {
            throw Unreadable("its tombstones digest is not 64 lowercase hex digits")
        }
        digest = bytes
        if let value = object["archive"] {
            guard let archive = value.object, archive.firstKey(notIn: ["bundle", "manifest"]) == nil,
                  let bundle = archive["bundle"]?.text, let manifestHex = archive["manifest"]?.text, manifestHex.utf8.count == 64,
                  let manifest = Hex.decodeLowercase(manifestHex)
            else { throw Unreadable("its archive is not an object of a bundle name and a manifest digest") }
            self.archive = Archive(bundle: bundle, manifest: manifest)
        } else {
            archive = nil
        }
        guard count >= 1, first >= 1, first <= last, last - first + 1 >= count, last < entry.seq else {
            throw Unreadable("its seqs (first \(first), last \(last), count \(count)) are impossible for an entry at seq \(entry.seq)")
        }
    }

    init(policy: RetentionPolicy, now: AuditTimestamp, first: Int64, last: Int64, count: Int64, digest: [UInt8],
         archive: Archive? = nil) {
        self.archive = archive
        self.policy = policy
        self.now = now
        self.first = first
        self.last = last
        self.count = count
        self.digest = digest
    }
}
