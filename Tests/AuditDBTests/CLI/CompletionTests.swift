import Foundation
import Testing

/// Shell completion scripts come from the argument parser and know every subcommand.
@Suite("Shell completions")
struct CompletionTests {
    @Test("bash, zsh and fish completion scripts name the subcommands and the new options", arguments: ["bash", "zsh", "fish"])
    func script(shell: String) throws {
        let result = try run(try cliPath(), ["--generate-completion-script", shell], environment: environmentWithoutAuditDBOptions())
        #expect(result.status == 0, "\(result.stderr)")
        for word in ["tail", "verify-export", "cursor-file", "batch-size", "atomic"] {
            #expect(result.stdout.contains(word), "\(shell) completion lacks \(word)")
        }
    }
}
