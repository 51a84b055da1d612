public import ServiceLifecycle

/// The store as a swift-service-lifecycle `Service`: open while the service group runs, flushed
/// and closed when the group shuts down.
extension AuditStore: Service {
    /// Keeps the store open until the service group shuts down gracefully (or the task running
    /// this is cancelled), then closes it with ``close()``: appends accepted before then are
    /// written and acknowledged, the WAL is checkpointed into the database file, and every
    /// connection is closed. Appends made after that fail with ``AuditError/Code/closed``.
    ///
    /// A `ServiceGroup` shuts its services down in reverse order, so list the store before the
    /// services that use it; they stop first (the ``CheckpointService`` makes its shutdown
    /// checkpoint, the ``IntegrityScanner`` abandons its pass) and the store closes last:
    ///
    /// ```swift
    /// let store = try await AuditStore.open(at: path, keys: keys)
    /// let scanner = IntegrityScanner(store: store)
    /// let checkpoints = CheckpointService(store: store, signer: signer, anchors: anchors)
    /// let group = ServiceGroup(services: [store, scanner, checkpoints, app],
    ///                          gracefulShutdownSignals: [.sigterm], logger: logger)
    /// try await group.run()   // returns after SIGTERM, with the store closed
    /// ```
    ///
    /// Outside a service group, `run()` waits until its task is cancelled. Calling ``close()``
    /// yourself as well is harmless: the store closes once.
    ///
    /// - Throws: ``AuditError`` if closing fails (the WAL could not be checkpointed, a
    ///   connection could not be closed).
    public func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled: the group is tearing down (another service failed). Close all the same,
            // so that what was accepted is flushed. GRDB's async accesses stop at cancellation, so
            // the close runs in a task of its own, awaited here (it does not outlive run()).
            try await Task { try await self.close() }.value
            return
        }
        try await close()
    }
}
