import Synchronization

/// Lost rows (docs/scanning.md, "Lost rows stay reported"): rows a pass of this scanner had
/// verified, gone or changed at its position. No later pass can see that from the file alone, so
/// the finding is kept for the scanner's lifetime and put first in every later pass.
extension IntegrityScanner {
    /// The finding that rows this scanner had verified are gone or changed, once one was made:
    /// every pass since has reported it (see "Lost rows stay reported" above). Nil otherwise.
    public var lostRowsFinding: Finding? { state.withLock { $0.lostRows } }

    /// Why a checkpoint must not be made now, or nil: rows this scanner verified were lost, or
    /// its last completed pass found damage (also when a later pass, or that pass's record,
    /// failed: a failure proves nothing intact).
    var damageForCheckpoints: String? {
        state.withLock { state in
            if let lost = state.lostRows { return "rows it had verified were lost (\(lost)); checkpoints resume once the scanner is restarted after that is dealt with" }
            if let report = state.lastReport, !report.integrity.isIntact {
                return "its last completed pass found damage (\(report.integrity.firstFinding.map(String.init(describing:)) ?? "\(report.integrity.totalFindings) finding(s)")); checkpoints resume after an intact pass"
            }
            return nil
        }
    }

    /// `report`, with the lost-rows finding of an earlier pass put first if this pass does not
    /// make it itself; and remembers this pass's own, if it finds rows lost at `position`.
    func carryingLostRows(_ report: IntegrityReport, from position: Verifier.Position?) -> IntegrityReport {
        // The position checks come first in a pass's findings (Verifier.run), at the position's seq.
        let own = position.flatMap { position in
            report.findings.first {
                ($0.kind == .macMismatch || $0.kind == .missingRows) && $0.seqs?.contains(position.seq) == true
            }
        }
        let kept: Finding? = state.withLock { state in
            if state.lostRows == nil, let own {
                state.lostRows = Finding(kind: own.kind, seqs: own.seqs, message: own.message
                    + ". The rows this scanner had verified there are not in the log any more, and later passes cannot see that from the file alone: compare with anchored checkpoints (auditdb verify --anchor), restore what a backup holds, then restart the scanner (it reports this finding until then)")
                return nil
            }
            return state.lostRows
        }
        guard let kept, own == nil else { return report }
        return report.prepending(kept)
    }
}
