// A child process for the crash tests: appends to a store as fast as it can and prints
// "ack SEQ INDEX" (flushed) for every append that returned, until it is killed.
// Usage: AuditDBCrashChild STORE KEYFILE MODE FIRST-INDEX
//   MODE: single (one task, one event per append), batch (batches of 50), concurrent (8 tasks),
//   retain (expires every row but the newest, in batches of 20; FIRST-INDEX unused).
// Also: AuditDBCrashChild STORE KEYFILE stream TENANT — streams every entry of TENANT through
// AuditStore.stream and prints "streamed COUNT FIRST LAST baseline_kb B peak_kb P" (peak RSS from
// /proc/self/status), for the bounded-memory test.
import AuditDB
import Foundation

@main
struct CrashChild {
    static func event(_ index: Int) -> AuditEvent {
        AuditEvent(
            actor: "child-\(index)", action: "crash.test", resourceId: "r-\(index)", tenant: "t\(index % 4)",
            details: AuditDetails(json: #"{"index":\#(index),"pad":"\#(String(repeating: "x", count: index % 97))"}"#))
    }

    static func ack(_ seq: Int64, _ index: Int) {
        let line = "ack \(seq) \(index)\n"
        FileHandle.standardOutput.write(Data(line.utf8))
    }

    /// VmHWM (peak resident set) of this process, in KiB.
    static func peakKB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    static func stream(_ store: AuditStore, tenant: String) async throws {
        let baseline = peakKB()
        var count = 0
        var first: Int64 = 0
        var last: Int64 = 0
        for try await entry in store.stream(EntryQuery(tenant: tenant)) {
            guard entry.tenant == tenant, entry.isVerified, entry.seq > last else {
                FileHandle.standardError.write(Data("out of order or wrong tenant at seq \(entry.seq)\n".utf8))
                exit(1)
            }
            if count == 0 { first = entry.seq }
            last = entry.seq
            count += 1
        }
        try await store.close()
        print("streamed \(count) \(first) \(last) baseline_kb \(baseline) peak_kb \(peakKB())")
    }

    static func main() async {
        let args = CommandLine.arguments
        guard args.count == 5, let first = args[3] == "stream" ? 0 : Int(args[4]) else {
            FileHandle.standardError.write(Data("usage: AuditDBCrashChild STORE KEYFILE MODE FIRST-INDEX\n".utf8))
            exit(2)
        }
        do {
            let store = try await AuditStore.open(at: args[1], keys: try KeyFile(path: args[2]).load())
            if args[3] == "stream" {
                try await stream(store, tenant: args[4])
                exit(0)
            }
            FileHandle.standardOutput.write(Data("ready\n".utf8))
            switch args[3] {
            case "retain":
                // Expires every row but the newest, as if two days had passed, in batches of 20,
                // printing "expired N" per run, until killed.
                let policy = try RetentionPolicy(parsingDefault: "1d")
                let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000)
                while true {
                    let report = try await store.applyRetention(policy, now: later, batchSize: 20)
                    FileHandle.standardOutput.write(Data("expired \(report.expired)\n".utf8))
                    if report.expired == 0 { try await Task.sleep(for: .seconds(60)) }
                }
            case "batch":
                var index = first
                while true {
                    let seqs = try await store.append(contentsOf: (index..<index + 50).map(event))
                    for (offset, seq) in seqs.enumerated() { ack(seq, index + offset) }
                    index += 50
                }
            case "concurrent":
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for task in 0..<8 {
                        group.addTask {
                            var index = first + task
                            while true {
                                ack(try await store.append(event(index)), index)
                                index += 8
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            default:
                var index = first
                while true {
                    ack(try await store.append(event(index)), index)
                    index += 1
                }
            }
        } catch {
            FileHandle.standardError.write(Data("child failed: \(error)\n".utf8))
            exit(1)
        }
    }
}
