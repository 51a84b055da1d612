import CAuditCore
import CSodium
import Glibc
import Synchronization

/// The seeds of fresh format-2 rows (FORMAT.md section 21.1), from libsodium's CSPRNG.
///
/// Drawing one 32-byte seed per row cost 0.54 µs (a `getrandom` call each), about 6% of a batched
/// append (docs/performance.md); the pool draws 128 seeds per call instead. Each seed is handed out
/// once: its bytes are zeroed in the pool as they are copied into the row. A fork empties the pool
/// in the child, so a parent and its child never hand out the same seed (two rows sharing a seed
/// would let the one that keeps its seed confirm the other's erased values).
enum FreshSeeds {
    private struct Pool {
        var bytes = [UInt8](repeating: 0, count: 128 * 32)
        var next = 128 * 32  // empty: the first use fills it
        var forkGeneration = 0
    }

    private static let pool = Mutex(Pool())
    /// Incremented in the child of every fork (pthread_atfork), so that the child refills.
    private static let forks = Atomic<Int>(0)
    private static let forkHandler: Void = {
        _ = pthread_atfork(nil, nil, { FreshSeeds.forks.add(1, ordering: .relaxed) })
    }()

    /// Appends a fresh row's seals, `00 || seed` (ADB_SEALS_FRESH_LEN bytes), to `arena`.
    static func appendSeals(into arena: inout [UInt8]) -> EncodedEvent.Span {
        _ = forkHandler
        let offset = arena.count
        arena.append(contentsOf: repeatElement(0, count: Int(ADB_SEALS_FRESH_LEN)))
        let generation = forks.load(ordering: .relaxed)
        pool.withLock { pool in
            if pool.next == pool.bytes.count || pool.forkGeneration != generation {
                pool.bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
                pool.next = 0
                pool.forkGeneration = generation
            }
            let next = pool.next
            pool.bytes.withUnsafeMutableBufferPointer { seeds in
                arena.withUnsafeMutableBufferPointer { out in
                    adb_seals_fresh(seeds.baseAddress! + next, out.baseAddress! + offset)
                }
                sodium_memzero(seeds.baseAddress! + next, 32)
            }
            pool.next += 32
        }
        return EncodedEvent.Span(offset: Int32(offset), length: ADB_SEALS_FRESH_LEN)
    }
}
