/// The clock a long-running service (``IntegrityScanner``, ``CheckpointService``) schedules its
/// work on, with the clock's type erased so that the services need no generic parameter: an app
/// stores `IntegrityScanner`, not `IntegrityScanner<ContinuousClock>`, and tests inject a manual
/// clock through the same initializer.
struct ServiceClock: Sendable {
    /// Sleeps for a duration of the injected clock; throws `CancellationError` when cancelled.
    let sleep: @Sendable (Duration) async throws -> Void
    /// The time on the injected clock since this value was made.
    let elapsed: @Sendable () -> Duration

    init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let start = clock.now
        sleep = { duration in try await clock.sleep(for: duration.sleepable) }
        elapsed = { start.duration(to: clock.now) }
    }
}
