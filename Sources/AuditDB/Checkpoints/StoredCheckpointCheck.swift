import CAuditCore
import Foundation
import GRDB

/// Plain verification checks the checkpoints the store recorded itself against its rows
/// (docs/FORMAT.md, section 11 step 8): a cut tail below a recorded checkpoint is `truncated`,
/// a row that no longer has the chain head a checkpoint signed is `anchor-mismatch`.
///
/// The table is attacker-controlled, so a row speaks only if its signature verifies: under the
/// public key file when one is given (``AuditStore/Configuration/checkpointPublicKeys``), else
/// under the public key the row names itself (then a forged row cannot be told from a real one,
/// and the message says to pass the public key). A row that does not verify, or that agrees with
/// nothing it could, is `foreign-row`. An incremental pass checks signatures only where a row
/// disagrees with the log (O(checkpoints) lookups); a full pass also checks every row that agrees
/// with it: its signature under the public key it names and its frontier (a damaged or edited
/// row there changes no verdict, but a checkpoint or export would silently skip it).
enum StoredCheckpointCheck {
    /// At most this many disagreeing rows are examined one by one.
    static let examinedLimit = 100

    static func findings(_ db: Database, storeID: StoreID, trusted: CheckpointPublicKeys?, full: Bool = false) throws -> [Finding] {
        guard try db.tableExists("audit_checkpoints"), try db.tableExists("audit_entries") else { return [] }
        let lastSeq = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED WHERE seq >= 1") ?? 0
        // Rows that disagree with the log: beyond its end, or a chain head that is not row seq's MAC
        // (an expired row's: its tombstone's, FORMAT.md section 20.4). One lookup by seq per
        // checkpoint row in each table: a join with the union of both tables made SQLite
        // materialise every row's MAC on each pass (O(rows), seconds at 1M rows).
        let rows = try Row.fetchAll(db, sql: disagreeingSQL(expiredTable: try db.tableExists("audit_expired")), arguments: [lastSeq])
        var findings: [Finding] = []
        var reportedTruncation = false
        for row in rows.prefix(examinedLimit) {
            let seq: Int64 = row[0]
            let checkpoint = checkpoint(row, storeID: storeID)
            let invalid = row.stored(8, as: Bool.self) != true || checkpoint.keyVersion == 0
                ? "its created_at or key_version is not an integer, or its key version is not 1...2^32-1"
                : trusted.map { checkpoint.invalidity(under: $0) } ?? checkpoint.selfInvalidity()
            let named = "the store's own checkpoint at seq \(seq) (made \(checkpoint.time.iso8601), checkpoint key version \(checkpoint.keyVersion))"
            let caveat = trusted == nil
                ? " (its signature was checked only against the public key it names; verify with --public-key to rule out a forged checkpoint row)"
                : ""
            if let invalid {
                findings.append(Finding(
                    kind: .foreignRow, seqs: nil,
                    message: "audit_checkpoints row at seq \(seq) is not a checkpoint of this store: \(invalid). AuditDB ignores it; another SQLite client inserted it"))
            } else if seq > lastSeq {
                guard !reportedTruncation else { continue }  // the highest one says it all
                reportedTruncation = true
                findings.append(Finding(
                    kind: .truncated, seqs: (lastSeq + 1)...seq,
                    message: "the log ends at seq \(lastSeq) but \(named) covers \(seq) rows: rows \(lastSeq + 1)...\(seq) were cut from the tail after it was made\(caveat)"))
            } else if row.stored(7, as: Bool.self) == true {
                findings.append(Finding(
                    kind: .anchorMismatch, seqs: seq...seq,
                    message: "row \(seq) does not have the chain head signed by \(named): the log up to it was rewritten or forked\(caveat)"))
            }
            // A checkpoint at a seq whose row is missing: the row pass reports missing-rows there.
        }
        if rows.count > examinedLimit {
            findings.append(Finding(kind: .foreignRow, seqs: nil,
                                    message: "more than \(examinedLimit) audit_checkpoints rows disagree with the log; only the newest \(examinedLimit) were examined"))
        }
        if full {
            let disagreeing = Set(rows.map { $0[0] as Int64 })
            findings += try agreeingFindings(db, storeID: storeID, lastSeq: lastSeq, skipping: disagreeing,
                                             unexamined: rows.count > examinedLimit)
        }
        return findings
    }

    /// The checkpoint a row of both statements here states: columns 0-6 are seq, created_at,
    /// key_version, public_key, chain_head, merkle_root, signature (a value of the wrong type reads
    /// as 0 or empty, and then does not verify).
    private static func checkpoint(_ row: Row, storeID: StoreID) -> Checkpoint {
        func blob(_ index: Int) -> [UInt8] { Array(row.stored(index, as: Data.self) ?? Data()) }
        return Checkpoint(
            storeID: storeID, seq: row[0], chainHead: blob(4), merkleRoot: blob(5),
            time: AuditTimestamp(microsecondsSinceEpoch: row.stored(1, as: Int64.self) ?? 0),
            keyVersion: row.stored(2, as: Int64.self).flatMap(UInt32.init(exactly:)) ?? 0, publicKey: blob(3), signature: blob(6))
    }

    /// Full passes (FORMAT.md section 11, step 8): every row that agrees with the log, newest
    /// first, must be a checkpoint under the public key it names, with a frontier of
    /// 32 × popcount(seq) bytes that folds to its root; each that is not is `foreign-row`.
    private static func agreeingFindings(_ db: Database, storeID: StoreID, lastSeq: Int64, skipping disagreeing: Set<Int64>,
                                         unexamined: Bool) throws -> [Finding]
    {
        // With more disagreeing rows than were examined, the ones not examined are not told
        // apart from agreeing ones here: only the rows at seqs up to the log's end that a lookup
        // confirms are judged.
        let cursor = try Row.fetchCursor(db, sql: """
            SELECT seq, created_at, key_version, public_key, chain_head, merkle_root, signature, frontier,
                   typeof(created_at) = 'integer' AND typeof(key_version) = 'integer'
            FROM audit_checkpoints WHERE seq >= 1 AND seq <= ? ORDER BY seq DESC
            """, arguments: [lastSeq])
        var findings: [Finding] = []
        let macs = try StoredMacs(db)
        while let row = try cursor.next() {
            let seq: Int64 = row[0]
            guard !disagreeing.contains(seq) else { continue }
            let checkpoint = checkpoint(row, storeID: storeID)
            if unexamined {
                // Agreeing means the chain head is the stored MAC at seq (or its tombstone's).
                guard let mac = try macs.mac(at: seq), mac.count == 32, checkpoint.chainHead.count == 32,
                      adb_ct_equal(Array(mac), checkpoint.chainHead, 32) == 1 else { continue }
            }
            let why: String?
            if row.stored(8, as: Bool.self) != true || checkpoint.keyVersion == 0 {
                why = "its created_at or key_version is not an integer, or its key version is not 1...2^32-1"
            } else if let invalid = checkpoint.selfInvalidity() {
                why = invalid
            } else if let frontier = MerkleTree.Frontier(size: seq, bytes: Array(row.stored(7, as: Data.self) ?? Data())),
                      frontier.root == checkpoint.merkleRoot
            {
                why = nil
            } else {
                why = "its frontier is not 32 × popcount(seq) bytes that fold to its Merkle root"
            }
            if let why {
                findings.append(Finding(
                    kind: .foreignRow, seqs: nil,
                    message: "audit_checkpoints row at seq \(seq) has the chain head of the log but is not a checkpoint of this store: \(why). AuditDB ignores it (a checkpoint or export skips it); another SQLite client changed or inserted it"))
            }
        }
        return findings
    }

    /// The checkpoint rows that disagree with the log (`?1`: the log's last seq), newest first:
    /// one lookup by seq per checkpoint row in each table, never a scan of the log.
    static func disagreeingSQL(expiredTable expired: Bool) -> String {
        """
        WITH k AS (
            SELECT c.seq, c.created_at, c.key_version, c.public_key, c.chain_head, c.merkle_root, c.signature,
                   c.seq >= 1 AND EXISTS (SELECT 1 FROM audit_entries WHERE seq = c.seq) AS live,
                   (SELECT mac FROM audit_entries WHERE seq = c.seq) AS live_mac,
                   \(expired ? "c.seq >= 1 AND EXISTS (SELECT 1 FROM audit_expired WHERE seq = c.seq)" : "0") AS gone,
                   \(expired ? "(SELECT mac FROM audit_expired WHERE seq = c.seq)" : "NULL") AS gone_mac
            FROM audit_checkpoints c)
        SELECT seq, created_at, key_version, public_key, chain_head, merkle_root, signature,
               live OR gone AS present,
               typeof(created_at) = 'integer' AND typeof(key_version) = 'integer' AS typed
        FROM k
        WHERE seq > ?1 OR NOT (live OR gone) OR (live AND live_mac IS NOT chain_head) OR (gone AND NOT live AND gone_mac IS NOT chain_head)
        ORDER BY seq DESC LIMIT \(examinedLimit + 1)
        """
    }
}
