import AuditDB
import AuditDBCLISupport
import Foundation
import Synchronization

/// The one progress display of the command-line tool, always on standard error (standard
/// output carries only data): on a terminal one line redrawn in place with the rate and, when
/// the total is known, the ETA; otherwise (a log file, a pipe, systemd) a plain line every
/// ``lineInterval``; nothing when quiet.
///
/// `AUDITDB_PROGRESS_INTERVAL` (seconds, e.g. `0.5`) sets the interval of plain lines.
final class Progress: Sendable {
    enum Style: Sendable, Equatable {
        /// Redrawn in place (stderr is a terminal).
        case terminal
        /// A plain line every interval.
        case lines
        /// Nothing.
        case none
    }

    private struct State {
        var done: Int64 = 0
        var total: Int64?
        var note = ""
        var lastShown: ContinuousClock.Instant
        var drawn = false
        var updated = false
    }

    let style: Style
    private let label: String
    private let unit: String
    private let started: ContinuousClock.Instant
    private let interval: Duration
    private let state: Mutex<State>

    /// The plain-line interval: 5 s unless `AUDITDB_PROGRESS_INTERVAL` says otherwise.
    static var lineInterval: Duration {
        guard let text = ProcessInfo.processInfo.environment["AUDITDB_PROGRESS_INTERVAL"] else { return .seconds(5) }
        if let seconds = StrictNumber.decimal(text), seconds > 0, seconds <= 3_600 {
            return .milliseconds(max(1, Int64(seconds * 1000)))
        }
        Output.notice("warning: AUDITDB_PROGRESS_INTERVAL=\(OutputEscaping.jsonQuoted(text)) is not a number of seconds above 0 and at most 3600 (e.g. 0.5); progress lines come every 5 s")
        return .seconds(5)
    }

    /// - Parameters:
    ///   - label: What runs (`verify`, `export`...): starts each plain line.
    ///   - unit: What is counted (`rows`, `lines`).
    ///   - quiet: No output at all (`--quiet`).
    init(_ label: String, unit: String, total: Int64? = nil, quiet: Bool, style: Style? = nil) {
        self.label = label
        self.unit = unit
        self.style = quiet ? .none : style ?? (Platform.standardErrorIsTerminal ? .terminal : .lines)
        let now = ContinuousClock.now
        started = now
        switch self.style {
        case .terminal: interval = .milliseconds(200)
        case .lines: interval = Self.lineInterval
        case .none: interval = .seconds(5)  // never used; `--quiet` does not read (or warn about) the variable
        }
        state = Mutex(State(total: total, lastShown: now))
    }

    /// Records that `done` units are done (of `total`, if now known), with an optional note
    /// (e.g. which lines are committed); shows it if the interval has passed.
    func update(_ done: Int64, total: Int64? = nil, note: String? = nil) {
        guard style != .none else { return }
        let text = state.withLock { state -> String? in
            state.done = done
            state.updated = true
            if let total { state.total = total }
            if let note { state.note = note }
            let now = ContinuousClock.now
            guard now - state.lastShown >= interval else { return nil }
            state.lastShown = now
            state.drawn = true
            return render(state, now: now)
        }
        if let text { write(text) }
    }

    /// Ends the display: on a terminal, the last state and a newline (only if anything was
    /// drawn, so that a short run leaves no trace).
    func finish() {
        guard style == .terminal else { return }
        let text = state.withLock { state -> String? in
            guard state.drawn || state.updated else { return nil }
            return render(state, now: .now) + "\n"
        }
        if let text { write(text) }
    }

    /// Terminal: `label: [#####.....] 12/40 rows  3000 rows/s  ETA 9s` (without a total:
    /// `label: 12 rows  3000 rows/s  4s`). Plain: `label: 12/40 rows, 3000 rows/s, 30%, ETA 9s,
    /// 4s elapsed`. Both end with `; note` when a note is set.
    private func render(_ state: State, now: ContinuousClock.Instant) -> String {
        let elapsed = Self.seconds(now - started)
        let rate = elapsed > 0 ? Int((Double(state.done) / elapsed).rounded()) : 0
        let left = state.total.flatMap { total -> String? in
            guard rate > 0 else { return nil }
            return Self.clock(Double(max(0, total - state.done)) / Double(rate))
        }
        var parts: [String]
        if style == .terminal {
            var first = "\(label): "
            if let total = state.total {
                let width = 30, filled = total <= 0 ? width : Int(min(total, state.done) * Int64(width) / total)
                first += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                first += "\(state.done)/\(total) \(unit)"
            } else {
                first += "\(state.done) \(unit)"
            }
            parts = [first, "\(rate) \(unit)/s", left.map { "ETA \($0)" } ?? Self.clock(elapsed)]
            var text = parts.joined(separator: "  ")
            if !state.note.isEmpty { text += "; \(state.note)" }
            return "\r\u{1B}[K" + OutputEscaping.escapeForMessage(text)
        }
        parts = ["\(label): \(state.done)\(state.total.map { "/\($0)" } ?? "") \(unit)", "\(rate) \(unit)/s"]
        if let total = state.total, total > 0 { parts.append("\(min(100, state.done * 100 / total))%") }
        if let left { parts.append("ETA \(left)") }
        parts.append("\(Self.clock(elapsed)) elapsed")
        var text = parts.joined(separator: ", ")
        if !state.note.isEmpty { text += "; \(state.note)" }
        return OutputEscaping.escapeForMessage(text) + "\n"
    }

    private func write(_ text: String) {
        StandardStreams.error(text)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// `42s`, `3m05s`, `2h03m`.
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3_600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3_600)h\(String(format: "%02d", s % 3_600 / 60))m"
    }
}
