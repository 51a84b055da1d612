import CoreMetrics
import Synchronization

/// Counts what the store reports through swift-metrics (counters only), to see how many appends
/// each group commit carried.
final class CountingMetrics: MetricsFactory, Sendable {
    final class Count: CounterHandler, Sendable {
        let value = Atomic<Int64>(0)
        func increment(by amount: Int64) { value.add(amount, ordering: .relaxed) }
        func reset() { value.store(0, ordering: .relaxed) }
    }
    final class Ignored: RecorderHandler, TimerHandler, Sendable {
        func record(_ value: Int64) {}
        func record(_ value: Double) {}
        func recordNanoseconds(_ duration: Int64) {}
    }

    let counters = Mutex<[String: Count]>([:])

    func counter(_ label: String) -> Int64 { counters.withLock { $0[label]?.value.load(ordering: .relaxed) ?? 0 } }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        counters.withLock { counters in
            if let existing = counters[label] { return existing }
            let made = Count()
            counters[label] = made
            return made
        }
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Ignored() }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Ignored() }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
