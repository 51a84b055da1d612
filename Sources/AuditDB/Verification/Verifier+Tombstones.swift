// Expired rows met by the row scan (FORMAT.md 20.4): a gap of the log is walked through the
// tombstones of its seqs.
import CAuditCore
import Foundation

extension Verifier {
    /// Walks a gap of the log (FORMAT.md 20.4): expired rows are checked through their tombstones
    /// (link tag only), seqs in neither table are `missing-rows`.
    static func walkExpired(_ gap: ClosedRange<Int64>, _ tombstones: TombstoneReader, chain: inout RowChain,
                            context: RowContext, keyEntries: [adb_key_entry], result: inout RangeResult) throws
    {
        func missing(_ seqs: ClosedRange<Int64>, _ chain: inout RowChain) {
            result.add(Finding(kind: .missingRows, seqs: seqs,
                               message: "\(seqs.count) row(s) missing before seq \(seqs.upperBound + 1) (removed)"))
            chain.prevKnown = false
        }
        let next = try tombstones.walk(gap, keyEntries: keyEntries, storeID: context.storeID, chain: &chain) { link, expected, chain in
            if link.seq > expected { missing(expected...(link.seq - 1), &chain) }
            if let finding = check(link, chain: &chain, context: context) { result.add(finding) }
        }
        if next <= gap.upperBound { missing(next...gap.upperBound, &chain) }
    }

    /// The end of a range's scan at a damaged page of `audit_expired` met by the walk: step 4's
    /// `corruption` finding from the seq the walk expected next, as for a page of the log's rows
    /// (FORMAT.md section 11, step 5; 20.4 makes the tombstones part of step 4).
    static func tombstonesUnreadable(_ damage: TombstoneReader.Damage, range: ClosedRange<Int64>,
                                     digest: adb_index_digest?, result: RangeResult) -> RangeResult
    {
        var result = result
        let from = damage.expected
        result.add(Finding(kind: .corruption, seqs: from...max(from, range.upperBound),
                           message: "SQLite cannot read the rows from seq \(from) on: \(damage.message)"))
        if let digest { result.indexDigest = digest }
        return result
    }

    /// The verdict on one tombstone in the chain, as RowView.check for a row (its link tag only).
    static func check(_ link: TombstoneReader.Link, chain: inout RowChain, context: RowContext) -> Finding? {
        let seq = link.seq
        guard let mac = link.mac else {
            chain.prevKnown = false
            return Finding(kind: .malformedRow, seqs: seq...seq, message: "the expired row's MAC is missing or not 32 bytes")
        }
        defer { chain.prevMac = mac }
        guard let kv = link.keyVersion else {
            chain.prevKnown = false
            return Finding(kind: .malformedRow, seqs: seq...seq, message: "the expired row's key version is invalid")
        }
        guard let key = context.keys.key(version: kv) else {
            chain.prevKnown = false
            return Finding(kind: .unknownKeyVersion, seqs: seq...seq,
                           message: "signed with key version \(kv), which the key ring lacks; load the key file that holds it")
        }
        guard chain.prevKnown else {
            chain.prevKnown = true
            return nil
        }
        let follows = chain.prevMac.withUnsafeBufferPointer { prev in adb_link_check(key.keyset, context.storeID, seq, mac, prev.baseAddress) }
        guard follows == 1 else {
            chain.prevKnown = false
            return Finding(kind: .chainBreak, seqs: seq...seq,
                           message: "the expired row's MAC does not follow seq \(seq - 1) (its tombstone was changed, or rows removed, inserted or reordered)")
        }
        return nil
    }
}
