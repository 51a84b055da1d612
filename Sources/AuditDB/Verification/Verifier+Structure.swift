import Foundation
import GRDB

/// Step 12 of a full pass (docs/FORMAT.md, section 11): the file's structure as SQLite itself
/// checks it. The steps before read what AuditDB reads; a damaged free-page list or the free space
/// of a page is read only by SQLite's writer, so such a file verified intact while every append
/// failed ("database disk image is malformed"). `PRAGMA quick_check` walks every b-tree and the
/// free-page list, without comparing index entries with rows (step 7 proves those): about a sixth
/// of a full pass of 1M rows in a debug build (docs/performance.md).
extension Verifier {
    /// The step's finding, or nil when SQLite finds the structure sound. Run only when the pass has
    /// no `corruption` finding yet: damage already reported is not reported twice. A value SQLite
    /// finds of the wrong type, or NULL, is not this step's: steps 2–4 name its row.
    static func structureFinding(_ db: Database) throws -> Finding? {
        // quick_check(1): the first problem only, however damaged the file. SQLite checks every
        // b-tree and the free-page list first, then each row's NULLs and STRICT types: a row's
        // value as the first problem means the structure is sound (the steps before judge values).
        guard let first = try String.fetchOne(db, sql: "PRAGMA quick_check(1)"), first != "ok" else { return nil }
        let problem = problem(first)
        guard !isValueProblem(problem) else { return nil }
        return Finding(kind: .corruption, seqs: nil,
                       message: "SQLite's own check of the file (PRAGMA quick_check) finds its structure damaged: \(problem). "
                           + "Appends may fail; restore the store from a backup and keep this copy as evidence")
    }

    /// Whether quick_check's problem is a column's value ("NULL value in T.C", "non-INTEGER value
    /// in T.C"), not the file's structure.
    static func isValueProblem(_ problem: String) -> Bool {
        if problem.hasPrefix("NULL value in ") { return true }
        guard problem.hasPrefix("non-"), let range = problem.range(of: " value in ") else { return false }
        let type = problem[problem.index(problem.startIndex, offsetBy: 4)..<range.lowerBound]
        return !type.isEmpty && type.allSatisfy { ("A"..."Z").contains($0) }
    }

    /// quick_check's first row on one line, without the line naming the database ("*** in
    /// database main ***") that SQLite puts before the first problem.
    static func problem(_ row: String) -> String {
        row.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            .filter { $0 != "*** in database main ***" }.joined(separator: "; ")
    }
}
