// The parallel row scan's parts: how a pass splits its seq range, what each range reports, and
// how the findings of two ranges are joined so that the report equals one pass in seq order.
import CAuditCore
import Foundation

extension Verifier {
    /// Splits the seq range in two for two reader connections when it is large enough to pay.
    static func split(_ range: ClosedRange<Int64>, rows: Int64) -> [ClosedRange<Int64>] {
        guard rows >= 20_000, ProcessInfo.processInfo.activeProcessorCount > 1 else { return [range] }
        let mid = range.lowerBound + (range.upperBound - range.lowerBound) / 2
        return [range.lowerBound...mid, (mid + 1)...range.upperBound]
    }

    /// What the scan of one range found and where it stopped.
    struct RangeResult: Sendable {
        var range: ClosedRange<Int64> = 1...1
        var rowsChecked = 0
        var findings: [Finding] = []
        var totalFindings = 0
        /// The last row read, and whether the next row's link may be checked against its MAC.
        var lastSeq: Int64?
        var endTrusted = true
        /// The stored MAC of `lastSeq`.
        var lastMac: [UInt8] = []
        /// When rescanning to converge with a parallel pass: the seq after which both agree.
        var convergedAt: Int64?
        /// The index entries the rows of this range imply (IndexProof), when asked for.
        var indexDigest: adb_index_digest?
        /// The rows read with erased fields (a 97-byte seals value), by seq: their mask.
        var erased: [Int64: UInt8] = [:]
        /// Whether the scan read the range to its end (not stopped by corruption or convergence).
        var readToEnd = false

        mutating func add(_ finding: Finding) {
            totalFindings += 1
            if findings.count < IntegrityReport.findingLimit { findings.append(finding) }
        }
    }

    /// Joins consecutive `missing-rows` findings into one (FORMAT.md section 11, "merging"): a
    /// gap that spans the point between two scanned ranges, as one pass in seq order reports it,
    /// and rows moved out of the tail one after another (step 5). Only `missing-rows` findings
    /// are compared with each other, whatever other findings lie between them.
    static func joinedAtSplitPoints(_ findings: [Finding], removed total: inout Int) -> [Finding] {
        let ordered = findings.sorted { ($0.seqs?.lowerBound ?? .min) < ($1.seqs?.lowerBound ?? .min) }
        var out: [Finding] = []
        var lastMissing: Int?
        for finding in ordered {
            if finding.kind == .missingRows, let at = lastMissing, let a = out[at].seqs,
               let b = finding.seqs, a.upperBound < b.lowerBound, a.upperBound + 1 == b.lowerBound, b.upperBound < .max
            {
                out[at] = Finding(
                    kind: .missingRows, seqs: a.lowerBound...b.upperBound,
                    message: "\(b.upperBound - a.lowerBound + 1) row(s) missing before seq \(b.upperBound + 1) (removed)")
                total -= 1
                continue
            }
            if finding.kind == .missingRows { lastMissing = out.count }
            out.append(finding)
        }
        return out
    }
}
