import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// `help` followed by a word that names no command is refused (ArgumentParser's own `help`
/// printed the help of the command before it and exited 0).
@Suite("CLI: help for a command that does not exist")
struct HelpTopicTests {
    @Test("auditdb help NAME: exit 2 naming the commands there are; known topics still print their help, exit 0")
    func unknownTopics() throws {
        let cases: [([String], String)] = [
            (["help", "nosuch"],
             "auditdb: error: `auditdb` has no command \"nosuch\"; its commands are: init, append, query, tail, verify, scan, status, keys, migrate, checkpoint-key, checkpoint, export, verify-export, repair-indexes, hold, retain, erase, masking, compact, report, verify-report. Run `auditdb help` for the list\n"),
            (["help", "keys", "nosuch"],
             "auditdb: error: `auditdb keys` has no command \"nosuch\"; its commands are: generate, list, rotate, compromised. Run `auditdb help keys` for the list\n"),
            (["help", "query", "nosuch"],
             "auditdb: error: `auditdb query` has no subcommands (\"nosuch\" is not one); run `auditdb help query` for its help\n"),
            (["help", "no\u{1B}[2Jsuch"],
             "auditdb: error: `auditdb` has no command \"no\\u001b[2Jsuch\"; its commands are: init, append, query, tail, verify, scan, status, keys, migrate, checkpoint-key, checkpoint, export, verify-export, repair-indexes, hold, retain, erase, masking, compact, report, verify-report. Run `auditdb help` for the list\n"),
        ]
        for (arguments, message) in cases {
            let result = try run(try cliPath(), arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stdout.isEmpty, "\(arguments)")
            #expect(result.stderr == message, "\(arguments): \(result.stderr.debugDescription)")
        }
        for (arguments, overview) in [(["help"], "OVERVIEW: An immutable, signed audit log in one SQLite file."),
                                      (["help", "keys", "generate"], "OVERVIEW: Write a new key file (mode 0600) holding key version 1."),
                                      (["help", "help"], "OVERVIEW: Show subcommand help information.")] {
            let result = try run(try cliPath(), arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(result.stdout.hasPrefix(overview) || result.stdout.replacingOccurrences(of: "\n", with: " ").hasPrefix(overview),
                    "\(arguments): \(result.stdout.prefix(120))")
        }
    }

    @Test("auditdb-fleet help NAME: the same rule")
    func fleet() throws {
        let result = try run(try builtProduct("auditdb-fleet"), ["help", "nope"])
        #expect(result.status == 2)
        #expect(result.stderr == "error: `auditdb-fleet` has no command \"nope\"; its commands are: audit, install-schema, register, ship, verify-shipped. Run `auditdb-fleet help` for the list\n",
                "\(result.stderr.debugDescription)")
    }
}
