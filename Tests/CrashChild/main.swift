// A child process for the crash tests: appends to a store as fast as it can and prints
// "ack SEQ INDEX" (flushed) for every append that returned, until it is killed.
// Usage: AuditDBCrashChild STORE KEYFILE MODE FIRST-INDEX
//   MODE: single (one task, one event per append), batch (batches of 50), concurrent (8 tasks).
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

    static func main() async {
        let args = CommandLine.arguments
        guard args.count == 5, let first = Int(args[4]) else {
            FileHandle.standardError.write(Data("usage: AuditDBCrashChild STORE KEYFILE MODE FIRST-INDEX\n".utf8))
            exit(2)
        }
        do {
            let store = try await AuditStore.open(at: args[1], keys: try KeyFile(path: args[2]).load())
            FileHandle.standardOutput.write(Data("ready\n".utf8))
            switch args[3] {
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
