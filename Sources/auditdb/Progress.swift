import AuditDB
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
    }

    let style: Style
    private let label: String
    private let unit: String
    private let started: ContinuousClock.Instant
    private let interval: Duration
    private let state: Mutex<State>

    /// The plain-line interval: 5 s unless `AUDITDB_PROGRESS_INTERVAL` says otherwise.
    static var lineInterval: Duration {
        if let text = ProcessInfo.processInfo.environment["AUDITDB_PROGRESS_INTERVAL"], let seconds = Double(text),
           seconds > 0, seconds <= 3_600
        {
            return .milliseconds(Int64(seconds * 1000))
        }
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
        interval = self.style == .terminal ? .milliseconds(200) : Self.lineInterval
        state = Mutex(State(total: total, lastShown: now))
    }

    /// Records that `done` units are done (of `total`, if now known), with an optional note
    /// (e.g. which lines are committed); shows it if the interval has passed.
    func update(_ done: Int64, total: Int64? = nil, note: String? = nil) {
        guard style != .none else { return }
        let text = state.withLock { state -> String? in
            state.done = done
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
            guard state.drawn else { return nil }
            return render(state, now: .now) + "\n"
        }
        if let text { write(text) }
    }

    private func render(_ state: State, now: ContinuousClock.Instant) -> String {
        let elapsed = Self.seconds(now - started)
        let rate = elapsed > 0 ? Double(state.done) / elapsed : 0
        var text = "\(label): \(state.done)"
        if let total = state.total { text += "/\(total)" }
        text += " \(unit), \(Int(rate.rounded()))/s"
        if let total = state.total, total > 0 {
            text += ", \(min(100, state.done * 100 / total))%"
            if rate > 0, state.done < total { text += ", ETA \(Self.clock(Double(total - state.done) / rate))" }
        }
        text += ", \(Self.clock(elapsed)) elapsed"
        if !state.note.isEmpty { text += "; \(state.note)" }
        text = OutputEscaping.escapeForTerminal(text)
        return style == .terminal ? "\r\u{1B}[K" + text : text + "\n"
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
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
