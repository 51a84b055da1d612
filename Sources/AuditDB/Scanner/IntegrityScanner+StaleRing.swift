import GRDB

extension IntegrityScanner {
    /// Throws `key-unavailable` instead of letting a pass with findings be recorded when keys were
    /// rotated after this scanner loaded them: the rows of the new version (and the entries they
    /// sign, and what those entries vouch for) are not damage, and the pass fails, unrecorded,
    /// rather than write findings into the log. Asked of any pass with findings: the report keeps
    /// only the first ones, which may all be of another kind (erased rows whose erasure entry the
    /// new version signed). Damage a missing version cannot explain is still recorded.
    func refuseIfStaleRing(_ integrity: IntegrityReport) async throws {
        let (keys, path) = (target.keys, target.path)
        if let stale = try await target.reader.read({ db in try KeyVersionCache.staleRing(db, keys: keys, path: path) }),
           !integrity.findings.contains(where: { Self.isBeyondStaleRing($0, below: stale.firstSeq) })
        {
            throw stale.error
        }
    }

    /// Whether `finding` is damage a missing key version cannot explain, so that the pass is
    /// recorded as it is: a finding about rows below `firstSeq` (the first row a missing version
    /// claims) that judges the row itself, or one without a seq about the schema, the header or
    /// the file. The verdicts that rest on entries (erasure, expiry, retention) or attestations
    /// may be signed by the missing version, whatever seq they name. (Anyone can make a version
    /// look rotated in: a row claiming it, and a cache row naming that row. Damage before it must
    /// still be recorded.)
    static func isBeyondStaleRing(_ finding: Finding, below firstSeq: Int64) -> Bool {
        if finding.kind.restsOnSignedEntries || finding.kind == .unknownKeyVersion { return false }
        return finding.seqs.map { $0.lowerBound < firstSeq } ?? true
    }
}
