import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Reads rows into ``AuditEntry`` values, checking each with the verifier's own row check
/// (MAC, and the link to the row before it: the previous row read, or the stored one), and that
/// the row is what the verified erasure entries made it (FORMAT.md section 21.4, step 10 rules 2
/// and 4 for that row): an erasure keeps the MAC valid by construction, so neither an erasure
/// made without an entry nor a value restored after its erasure changes the MAC, and the rest of
/// a partially erased details is authenticated by its erasure entry, not by the MAC.
struct EntryReader {
    let context: RowContext
    let previousMac: StoredMacs
    /// When some key version is compromised: the attestations of one row.
    let attestations: AttestationLookup
    let mode: EntryQuery.UnverifiedRows
    let storeID: StoreID
    let keys: KeyRing
    /// The connection the rows are read on (the erasure entries are read on it too, in the same snapshot).
    let db: Database
    /// Whether erased rows are checked against the erasure entries (not when reading the
    /// erasure entries themselves).
    let checksErasures: Bool
    /// What the verified erasure entries claim per seq, loaded when the first erased row is read.
    var erasureClaims: [Int64: ErasureCheck.Claim]?
    /// The open store's claims, extended by the entries appended since (nil: read them all).
    let claimsCache: ErasureClaimsCache?
    /// The last row read, and the chain state after it (as the verifier has it after that row: a
    /// bad row's successor is not checked against its MAC).
    var lastSeq: Int64?
    var lastChain = RowChain()

    init(_ db: Database, storeID: StoreID, keys: KeyRing, mode: EntryQuery.UnverifiedRows, checksErasures: Bool = true,
         claimsCache: ErasureClaimsCache? = nil) throws
    {
        self.storeID = storeID
        self.claimsCache = claimsCache
        self.keys = keys
        self.db = db
        self.checksErasures = checksErasures
        context = RowContext(storeID: storeID.bytes, keys: keys, attestations: [:])
        previousMac = try StoredMacs(db)
        attestations = try AttestationLookup(db, keys: keys)
        self.mode = mode
    }

    /// The error for a row that failed verification, read in mode `.throw`.
    static func refusal(seq: Int64, _ finding: Finding) -> AuditError {
        AuditError(.integrityViolation,
                   "entry \(seq) failed verification (\(finding)); it is not returned. Run `auditdb verify` for a full report.")
    }

    /// Steps `statement` (arguments already set) to the end, appending its rows to `entries`.
    mutating func read(_ statement: Statement, into entries: inout [AuditEntry]) throws {
        let stmt = statement.sqliteStatement
        defer { SQLite.reset(stmt) }
        while try SQLite.step(stmt, while: "read entries") {
            let seq = SQLite.int64(stmt, RowLayout.seq)
            var chain: RowChain
            var previousMissing = false
            var previousMacLength: Int?  // the length of a stored MAC before seq that is not 32 bytes
            if seq <= 1 {
                chain = RowChain()
            } else if lastSeq == seq - 1 {
                chain = lastChain
            } else if let stored = try previousMac.mac(at: seq - 1) {
                // Never a shorter MAC as the link: the check reads 32 bytes of it.
                chain = stored.count == 32 ? RowChain(prevMac: stored) : RowChain(prevKnown: false)
                if stored.count != 32 { previousMacLength = stored.count }
            } else {
                chain = RowChain(prevKnown: false)
                previousMissing = true
            }
            var view = RowView(stmt)
            var finding = view.check(seq: seq, chain: &chain, context: try context.forRow(view, seq: seq, lookup: attestations))
            if previousMissing && finding == nil {
                finding = Finding(kind: .missingRows, seqs: (seq - 1)...(seq - 1), message: "the row before seq \(seq) is missing")
            }
            if let length = previousMacLength, finding == nil {
                finding = Finding(kind: .malformedRow, seqs: (seq - 1)...(seq - 1),
                                  message: "the row before seq \(seq) has a stored MAC of \(length) bytes, not 32, so seq \(seq)'s link cannot be checked")
            }
            // With the store's cache (queries, tail: rows of any kind) every row is looked up, so
            // that a row restored whole after its erasure is refused too; the readers of engine
            // entries, which are never erased, look only at rows with erased fields.
            if finding == nil, checksErasures, claimsCache != nil || view.erasedMask != 0 {
                if erasureClaims == nil {
                    erasureClaims = try claimsCache?.claims(db, storeID: storeID, keys: keys)
                        ?? ErasureCheck.claims(db, storeID: storeID, keys: keys).claims
                }
                if let claims = erasureClaims, let problem = ErasureCheck.problem(view, claims: claims) {
                    finding = Finding(kind: .erasureTampered, seqs: seq...seq, message: problem)
                }
            }
            if let finding, mode == .throw { throw Self.refusal(seq: seq, finding) }
            entries.append(view.entry(finding: finding))
            lastSeq = seq
            lastChain = chain
        }
    }
}
