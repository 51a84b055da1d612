import Foundation
import GRDB

/// The erasure's check that its index found every row of its subject (docs/erasure.md).
extension AuditStore {
    /// The rows of an actor, tenant or resource are found through the query indexes; an index
    /// entry removed (the b-tree edited, which only `verify`'s index proof sees) would leave that
    /// row's values in the store for good, and the erasure entry, which names seqs, would not
    /// show it. So the rows are also looked for in the table itself (every row read: O(n), the
    /// price of an erasure that cannot miss one), and any the index missed stops the erasure.
    /// Only rows up to `bound` (the last seq before the stream began) are looked for: each of
    /// those was there for the whole stream, unless it expired meanwhile (then it is not found
    /// here either).
    func refuseRowsMissedByTheIndex(_ subject: ErasureSubject, found: [Int64], upTo bound: Int64) async throws {
        let condition: String, arguments: StatementArguments, index: String
        switch subject {
        case .actor(let actor): (condition, arguments, index) = ("actor = ?", [actor], "audit_entries_actor")
        case .tenant(let tenant): (condition, arguments, index) = ("tenant = ?", [tenant], "audit_entries_tenant_seq")
        case .resource(let type?, let id): (condition, arguments, index) = ("resource_id = ? AND resource_type = ?", [id, type], "audit_entries_resource")
        case .resource(nil, let id): (condition, arguments, index) = ("resource_id = ?", [id], "audit_entries_resource")
        case .seqs: return
        }
        let found = found.sorted()  // (already in order: then a linear pass)
        // Both sides in seq order, walked in step: nothing but `found` is held, however many rows match.
        let missed = try await pool.read { db -> Int64? in
            let cursor = try Int64.fetchCursor(
                db, sql: "SELECT seq FROM audit_entries NOT INDEXED WHERE seq >= 1 AND seq <= \(bound) AND \(condition) ORDER BY seq",
                arguments: arguments)
            var next = 0
            while let seq = try cursor.next() {
                while next < found.count && found[next] < seq { next += 1 }
                if next == found.count || found[next] != seq { return seq }
                next += 1
            }
            return nil
        }
        if let missed {
            throw AuditError(
                .integrityViolation,
                "row \(missed) matches the erasure's subject, but the index \(index) does not list it (the index was edited: `auditdb verify` reports index-mismatch); nothing was erased. Run `auditdb repair-indexes` (after keeping a copy of the file as evidence), then the erasure again")
        }
    }
}
