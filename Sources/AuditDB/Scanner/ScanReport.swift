/// Which rows a pass checks.
public enum ScanMode: String, Sendable, Hashable, CaseIterable {
    /// Every row from seq 1, plus schema and header.
    case full
    /// Schema and header, the row at the last verified position, and the rows after it.
    case incremental
}

/// One pass of the scanner.
public struct ScanReport: Sendable {
    /// The mode that ran (an incremental request without a verified position runs full).
    public let mode: ScanMode
    /// What was found.
    public let integrity: IntegrityReport
    /// The seq of the `auditdb.scan` entry that records this pass, if it was recorded.
    public internal(set) var recordSeq: Int64?

    /// True when nothing is wrong.
    public var isIntact: Bool { integrity.isIntact }
    /// The seqs whose rows were read and checked (empty when there were no new rows).
    public var checkedSeqs: ClosedRange<Int64>? {
        integrity.firstCheckedSeq <= integrity.lastSeq ? integrity.firstCheckedSeq...integrity.lastSeq : nil
    }
}

/// The scanner's latest result, kept in memory.
public struct ScanStatus: Sendable, Hashable {
    /// How a pass ended.
    public enum Result: Sendable, Hashable {
        /// No pass has completed yet.
        case never
        /// Nothing wrong.
        case intact
        /// Damage was found (see the findings stream, the log, or the scan record).
        case findings
        /// The pass could not be completed or recorded (the message says why).
        case failed(String)
    }

    /// Passes completed since the scanner was made.
    public var passes = 0
    /// Whether a pass is running now.
    public var isScanning = false
    /// When the last pass ended.
    public var lastPassAt: AuditTimestamp?
    /// Its mode.
    public var lastMode: ScanMode?
    /// Rows it checked.
    public var lastRowsVerified = 0
    /// How it ended.
    public var lastResult: Result = .never
    /// How many findings it had.
    public var lastFindingsCount = 0
    /// How long it took.
    public var lastPassDuration: Duration?
    /// When the last full pass started, and how it ended.
    public var lastFullPassAt: AuditTimestamp?
    public var lastFullPassResult: Result = .never
    /// When the last full pass that found nothing wrong started (this scanner's passes only):
    /// the figure to alert on, since a full pass with findings proves nothing intact.
    public var lastIntactFullPassAt: AuditTimestamp?
    /// Rows 1 through this seq were proven (by a full pass, extended by incremental ones).
    public var verifiedThroughSeq: Int64 = 0

    /// True when the last pass completed and found nothing wrong.
    public var isHealthy: Bool { lastResult == .intact }

    /// Time since the last full pass started, measured against `now`; nil if there was none.
    public func timeSinceLastFullPass(now: AuditTimestamp = .now()) -> Duration? {
        lastFullPassAt.map { .microseconds(now.microseconds(since: $0)) }
    }
}

extension Duration {
    var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
