extension Duration {
    /// The duration in whole nanoseconds (truncated toward zero), as metrics timers and dispatch
    /// timeouts take it; saturating at `Int64`'s bounds (about ±292 years).
    var wholeNanoseconds: Int64 {
        let (seconds, overflow) = components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return components.seconds < 0 ? .min : .max }
        let (sum, overflowed) = seconds.addingReportingOverflow(components.attoseconds / 1_000_000_000)
        return overflowed ? (seconds < 0 ? .min : .max) : sum
    }

    /// The longest wait AuditDB's services and follows hand to a clock: a century. The standard
    /// library's `Task.sleep` traps on durations it cannot turn into nanoseconds (an app that
    /// passes `.seconds(Int64.max)` to mean "rarely"); waiting a century instead is the same.
    package static let longestSleep: Duration = .seconds(100 * 366 * 86_400)

    /// This duration, at most ``longestSleep``.
    package var sleepable: Duration { min(self, Self.longestSleep) }
}
