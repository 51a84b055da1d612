extension Duration {
    /// The duration in whole nanoseconds (truncated toward zero), as metrics timers and dispatch
    /// timeouts take it.
    var wholeNanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
