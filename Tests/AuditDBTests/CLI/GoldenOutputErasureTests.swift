import Foundation
import Testing

@testable import AuditDB

/// The whole output of `erase`, and of `query` showing erased fields (table, JSON, JSONL), compared
/// with golden files (GoldenFile.swift). ErasureTests check the bytes and the proofs.
@Suite("Golden output: erase")
struct GoldenOutputErasureTests {
    let cli: GoldenCLI

    init() throws { cli = try GoldenCLI() }

    @Test("erase: an actor's fields, again (nothing left), seqs, a path inside details, and refusals; query shows erased fields and paths")
    func erase() async throws {
        try await cli.createStore(count: 6)
        try cli.golden("erase-actor", ["erase", "--actor", "user-2", "--fields", "actor,details", "--reason", "TICKET-1"] + cli.options)
        try cli.golden("erase-actor-again", ["erase", "--actor", "user-2", "--fields", "actor", "--reason", "TICKET-1"] + cli.options)
        try cli.golden("erase-seqs", ["erase", "--seqs", "4,5", "--fields", "source", "--reason", "TICKET-2"] + cli.options)
        try cli.golden("erase-engine-entry", ["erase", "--seqs", "7", "--fields", "actor", "--reason", "TICKET-3"] + cli.options)
        // A path inside details (FORMAT.md 21.7): the rest of details stays readable; the query shows the path erased.
        try cli.golden("erase-path", ["erase", "--seqs", "3", "--fields", "details.note", "--reason", "TICKET-6"] + cli.options)
        try cli.golden("erase-bad-path", ["erase", "--seqs", "3", "--fields", "details..note", "--reason", "TICKET-7"] + cli.options)
        try cli.golden("erase-path-and-details", ["erase", "--seqs", "4", "--fields", "details,details.i", "--reason", "TICKET-8"] + cli.options)
        // A path no matching row holds (a misspelling: paths are case-sensitive) erases nothing, and says why that may be.
        try cli.golden("erase-path-absent", ["erase", "--seqs", "3,5", "--fields", "details.Note", "--reason", "TICKET-9"] + cli.options)
        try cli.golden("erase-no-subject", ["erase", "--fields", "actor", "--reason", "TICKET-4"] + cli.options)
        try cli.golden("erase-bad-field", ["erase", "--actor", "user-1", "--fields", "actor,email", "--reason", "TICKET-5"] + cli.options)
        try cli.golden("erase-no-reason", ["erase", "--actor", "user-1", "--fields", "actor"] + cli.options)
        try cli.golden("erase-query-table", ["query", "--from-seq", "1", "--to-seq", "5"] + cli.options)
        try cli.golden("erase-query-json", ["query", "--from-seq", "1", "--to-seq", "5", "--format", "json"] + cli.options)
        try cli.golden("erase-query-jsonl", ["query", "--from-seq", "1", "--to-seq", "5", "--format", "jsonl"] + cli.options)
        try cli.golden("erase-verify", ["verify"] + cli.options)
        // A misspelt path beside one a row holds: the note names it.
        try cli.golden("erase-path-one-absent", ["erase", "--seqs", "6", "--fields", "details.note,details.nte", "--reason", "TICKET-10"] + cli.options)
        // A field erased before and a path no row holds: nothing erased, and the note names the path.
        try cli.golden("erase-field-done-path-absent", ["erase", "--seqs", "2", "--fields", "actor,details.zzz", "--reason", "TICKET-11"] + cli.options)
    }
}
