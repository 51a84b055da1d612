import Synchronization

/// How far a verification pass is: rows checked of the rows it will check.
///
/// Reported by ``AuditStore/verify(progress:)``, ``AuditStore/verify(storeAt:keys:configuration:progress:)``
/// and ``IntegrityScanner/scan(_:progress:)`` about every 65,536 rows, from the reader threads
/// that check them (two at once on a large store): keep the handler quick and thread-safe.
public struct VerificationProgress: Sendable, Hashable {
    /// Rows checked so far.
    public let rowsChecked: Int64
    /// Rows this pass checks in all (those present when it started).
    public let totalRows: Int64
}

/// The rows checked by the parallel ranges of one pass, summed, reported every ``step`` rows.
/// A class shared by the ranges' reader threads; the count is an atomic.
final class RowsProgress: Sendable {
    /// Rows between reports (and the most the C fast path checks per call while reporting).
    static let step: Int64 = 65_536

    let total: Int64
    let report: @Sendable (VerificationProgress) -> Void
    private let checked = Atomic<Int64>(0)

    init(total: Int64, report: @escaping @Sendable (VerificationProgress) -> Void) {
        self.total = total
        self.report = report
    }

    func add(_ rows: Int64) {
        let (_, now) = checked.add(rows, ordering: .relaxed)
        if (now - rows) / Self.step != now / Self.step || now == total {
            report(VerificationProgress(rowsChecked: now, totalRows: total))
        }
    }
}
