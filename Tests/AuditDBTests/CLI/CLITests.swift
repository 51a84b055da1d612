import Foundation
import Testing

@testable import AuditDB

/// Runs the real `auditdb` binary and checks its output and exit status.
@Suite("auditdb command line")
struct CLITests {
    let dir: TempDir
    let cli: String
    let store: String
    let keyFile: String

    init() throws {
        dir = try TempDir()
        cli = try cliPath()
        store = dir.path("store.db")
        keyFile = dir.path("audit.keys")
    }

    /// Runs auditdb with the store and key file given as global options.
    func auditdb(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
        try auditdb(arguments, stdinBytes: stdin.map { Data($0.utf8) })
    }

    func auditdb(_ arguments: [String], stdinBytes: Data?) throws -> ProcessResult {
        try run(cli, arguments, stdinBytes: stdinBytes, environment: environmentWithoutAuditDBOptions())
    }

    func setUpStore() throws {
        #expect(try auditdb(["keys", "generate", "--out", keyFile]).status == 0)
        let created = try auditdb(["init", "--store", store, "--key-file", keyFile])
        #expect(created.status == 0)
        #expect(created.stdout.hasPrefix("created store "))
    }

    @Test("a hot rollback journal left beside the store: the command warns that opening rolls the file back, then rolls it back and runs; without one, no warning")
    func hotJournalWarning() throws {
        try setUpStore()
        let append = ["append", "--store", store, "--key-file", keyFile, "--actor", "a", "--action", "x", "--resource-type", "t", "--resource-id", "r"]
        #expect(try auditdb(append).status == 0)
        let quiet = try auditdb(["verify", "--store", store, "--key-file", keyFile])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "\(quiet.stderr)")
        // A writer in rollback-journal mode that dies mid-transaction (another SQLite client).
        let script = """
            import os, sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("PRAGMA journal_mode=DELETE")
            c.execute("BEGIN IMMEDIATE")
            c.execute("CREATE TABLE scratch(x)")
            c.execute("INSERT INTO scratch SELECT zeroblob(4000) FROM (SELECT 1 UNION SELECT 2)")
            c.execute("PRAGMA cache_spill=ON")
            c.execute("PRAGMA cache_size=1")
            c.execute("INSERT INTO scratch SELECT zeroblob(4000) FROM scratch, scratch AS b, scratch AS c")
            os._exit(0)
            """
        let made = try run("/usr/bin/env", ["python3", "-c", script, store])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(StoreFile.companionSize(store, "-journal") > 0)
        let warned = try auditdb(["verify", "--store", store, "--key-file", keyFile])
        #expect(warned.stderr.hasPrefix("auditdb: warning: \(store)-journal is a hot rollback journal (an interrupted transaction): opening the store rolls the file back"), "\(warned.stderr)")
        #expect(warned.status == 0, "\(warned.stdout)\(warned.stderr)")
        #expect(warned.stdout.hasPrefix("intact: 1 rows verified"), "\(warned.stdout)")
        let after = try auditdb(["verify", "--store", store, "--key-file", keyFile])
        #expect(after.status == 0 && after.stderr.isEmpty, "\(after.stderr)")
    }

    @Test("a FIFO (or a directory) where SQLite keeps the store's -journal, -wal or -shm: refused at once, naming it, never waited on", arguments: ["-journal", "-wal", "-shm"])
    func companionNotAFile(_ suffix: String) throws {
        try setUpStore()
        // SQLite leaves no -journal or -shm beside a closed store; a -wal may be there (empty).
        try? FileManager.default.removeItem(atPath: store + suffix)
        #expect(mkfifo(store + suffix, 0o600) == 0)
        for command in [["status"], ["verify"], ["query"]] {
            let refused = try auditdb(command + ["--store", store, "--key-file", keyFile])
            #expect(refused.status == 2, "\(command): \(refused.stdout)\(refused.stderr)")
            #expect(refused.stderr.contains("\(store)\(suffix) is a FIFO (named pipe), where SQLite keeps the store's \(suffix.dropFirst()) file"), "\(command): \(refused.stderr)")
        }
        try FileManager.default.removeItem(atPath: store + suffix)
        try FileManager.default.createDirectory(atPath: store + suffix, withIntermediateDirectories: false)
        let directory = try auditdb(["status", "--store", store, "--key-file", keyFile])
        #expect(directory.status == 2 && directory.stderr.contains("\(store)\(suffix) is a directory, where SQLite keeps"), "\(directory.stderr)")
    }

    @Test("a file name with a newline or an escape sequence cannot forge a line of a success message")
    func pathsInSuccessLinesAreEscaped() throws {
        let name = "k\nwrote key file evil\u{1B}[31m\u{202E}.keys", escaped = "k\\u{A}wrote key file evil\\u{1B}[31m\\u{202E}.keys"
        let keys = try auditdb(["keys", "generate", "--out", dir.path(name)])
        #expect(keys.status == 0 && keys.stdout == "wrote key file \(dir.path(escaped)) with key version 1 (mode 0600; keep it secret, back it up)\n",
                "\(keys.stdout)")
        let created = try auditdb(["init", "--store", dir.path(name + ".db"), "--key-file", dir.path(name)])
        #expect(created.status == 0 && created.stdout.split(separator: "\n").count == 1
                && created.stdout.contains(" at \(dir.path(escaped)).db (signing key version 1)"), "\(created.stdout)")
    }

    @Test("a message shows a value once: a backslash in a path stays one, a value quoted as JSON keeps its one escape, a control character is escaped once, and texts stay distinct")
    func messagesEscapeOnce() throws {
        try setUpStore()
        let missing = try auditdb(["verify", "--store", dir.path(#"C:\audit\x.db"#), "--key-file", keyFile])
        #expect(missing.status == 2 && missing.stderr.contains(dir.path(#"C:\audit\x.db"#)) && !missing.stderr.contains(#"\\"#), "\(missing.stderr)")
        let period = try auditdb(["retain", "--older-than", "9\u{1B}d", "--store", store, "--key-file", keyFile])
        #expect(period.status == 2, "\(period.stderr)")
        #expect(period.stderr.contains(#""9\u001bd""#) && !period.stderr.contains(#"\\u001b"#) && !period.stderr.contains("\u{1B}"), "\(period.stderr)")
        let quote = try auditdb(["retain", "--older-than", #"9"d"#, "--store", store, "--key-file", keyFile])
        #expect(quote.status == 2 && quote.stderr.contains(#""9\"d""#) && !quote.stderr.contains(#"\\""#), "\(quote.stderr)")
        let raw = try auditdb(["verify", "--store", dir.path("bad\u{1B}[31m\nname.db"), "--key-file", keyFile])
        #expect(raw.status == 2 && raw.stderr.contains(dir.path(#"bad\u{1B}[31m\u{A}name.db"#)) && raw.stderr.split(separator: "\n").count == 1,
                "\(raw.stderr)")
        // A path that holds the text of those escapes is told apart from one that holds the characters.
        let literal = try auditdb(["verify", "--store", dir.path(#"bad\u{1B}[31m\nname.db"#), "--key-file", keyFile])
        #expect(literal.status == 2 && literal.stderr.contains(dir.path(#"bad\\u{1B}[31m\nname.db"#)), "\(literal.stderr)")
        // An argument that ArgumentParser echoes in its error cannot forge a line of it.
        let echoed = try auditdb(["query", "--format", "csv\nauditdb: error: forged", "--store", store, "--key-file", keyFile])
        #expect(echoed.status == 2 && !echoed.stderr.split(separator: "\n").contains { $0.hasPrefix("auditdb: error: forged") }
                && echoed.stderr.contains(#"csv\u{A}auditdb: error: forged"#), "\(echoed.stderr)")
        // Nor can an unknown option, of which ArgumentParser echoes the part before "=".
        let option = try auditdb(["query", "--x\nauditdb: error: forged=1", "--store", store, "--key-file", keyFile])
        #expect(option.status == 2 && !option.stderr.split(separator: "\n").contains { $0.hasPrefix("auditdb: error: forged") }
                && option.stderr.contains("Usage: auditdb query"), "\(option.stderr)")
    }

    @Test("query --limit: the next page's cursor in every format (jsonl: on standard error, every line of standard output an entry)")
    func nextPageInEveryFormat() throws {
        try setUpStore()
        for n in 1...5 { #expect(try auditdb(["append", "--store", store, "--key-file", keyFile, "--actor", "a\(n)", "--action", "x"]).status == 0) }
        let options = ["--store", store, "--key-file", keyFile, "--limit", "2"]
        let table = try auditdb(["query", "--format", "table"] + options)
        let cursor = try #require(table.stdout.split(separator: "\n").last.flatMap { $0.hasPrefix("-- next page: --after ") ? $0.dropFirst(22) : nil })
        let json = try auditdb(["query", "--format", "json"] + options)
        #expect(json.stdout.hasSuffix(",\"nextCursor\":\"\(cursor)\"}\n"), "\(json.stdout)")
        let jsonl = try auditdb(["query", "--format", "jsonl"] + options)
        #expect(jsonl.status == 0 && jsonl.stdout.split(separator: "\n").count == 2 && jsonl.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("{\"seq\":") })
        #expect(jsonl.stderr == "auditdb: next page: --after \(cursor)\n", "\(jsonl.stderr)")
        let last = try auditdb(["query", "--format", "jsonl", "--after", String(cursor)] + options.dropLast(2) + ["--limit", "10"])
        #expect(last.status == 0 && last.stdout.split(separator: "\n").count == 3 && last.stderr == "", "\(last.stderr)")
    }

    @Test("append prints the seq; verify exits 0 when intact")
    func appendAndVerify() throws {
        try setUpStore()
        let first = try auditdb(["--store", store, "--key-file", keyFile, "append", "--actor", "alice", "--action", "login"])
        #expect(first.status == 0)
        #expect(first.stdout == "1\n")
        let second = try auditdb([
            "append", "--store", store, "--key-file", keyFile, "--actor", "bob", "--action", "read", "--resource-type",
            "doc", "--resource-id", "d1", "--tenant", "acme", "--outcome", "denied", "--severity", "warning",
            "--details", #"{"ip":"10.0.0.1"}"#, "--occurred-at", "2026-11-23T10:00:00Z",
        ])
        #expect(second.stdout == "2\n")
        let verify = try auditdb(["verify", "--store", store, "--key-file", keyFile])
        #expect(verify.status == 0)
        #expect(verify.stdout.hasPrefix("intact: 2 rows verified (last seq 2)"))
        let json = try auditdb(["verify", "--store", store, "--key-file", keyFile, "--json"])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["intact"] as? Bool == true)
        #expect(object?["rowsChecked"] as? Int == 2)
    }

    @Test("verify exits 1 with the tampered seq named after an edit through the sqlite3 shell")
    func verifyFindsTampering() throws {
        try setUpStore()
        for i in 1...5 {
            _ = try auditdb(["append", "--store", store, "--key-file", keyFile, "--actor", "u\(i)", "--action", "read"])
        }
        try sqlite3Must(store, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = 'mallory' WHERE seq = 4;")
        let result = try auditdb(["verify", "--store", store, "--key-file", keyFile])
        #expect(result.status == 1)
        #expect(result.stdout.contains("INTEGRITY VIOLATION: 2 finding(s)"))
        #expect(result.stdout.contains("mac-mismatch at seq 4:"))
        #expect(result.stdout.contains("schema-tampered: trigger audit_entries_no_update is missing"))
        let json = try auditdb(["verify", "--store", store, "--key-file", keyFile, "--json"])
        #expect(json.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let findings = object?["findings"] as? [[String: Any]]
        #expect(findings?.last?["kind"] as? String == "mac-mismatch")
        #expect(findings?.last?["firstSeq"] as? Int == 4)
    }

    @Test("verify exits 2 when it cannot verify: bad arguments, missing key, missing store, loose key file")
    func verifyCannotVerify() throws {
        try setUpStore()
        let badFlag = try auditdb(["verify", "--store", store, "--key-file", keyFile, "--bogus"])
        #expect(badFlag.status == 2)
        #expect(badFlag.stderr.contains("Unknown option '--bogus'"))
        let noKey = try auditdb(["verify", "--store", store])
        #expect(noKey.status == 2)
        #expect(noKey.stderr.contains("no key given"))
        let noStore = try auditdb(["verify", "--store", dir.path("missing.db"), "--key-file", keyFile])
        #expect(noStore.status == 2)
        #expect(noStore.stderr.contains("no store at"))
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
        let loose = try auditdb(["verify", "--store", store, "--key-file", keyFile])
        #expect(loose.status == 2)
        #expect(loose.stderr.contains("chmod 600"))
    }

    @Test("a whole store file replaced by another store's: exit 1 when the store id is pinned")
    func pinnedStoreID() throws {
        try setUpStore()
        let id = try #require(try auditdb(["init", "--store", dir.path("other.db"), "--key-file", keyFile]).stdout
            .split(separator: " ").dropFirst(2).first).description
        try FileManager.default.removeItem(atPath: store)
        try FileManager.default.copyItem(atPath: dir.path("other.db"), toPath: store)
        #expect(try auditdb(["verify", "--store", store, "--key-file", keyFile, "--store-id", id]).status == 0)
        let swapped = try auditdb(["verify", "--store", store, "--key-file", keyFile, "--store-id", "00112233445566778899aabbccddeeff"])
        #expect(swapped.status == 1)
        #expect(swapped.stdout.contains("store-identity-mismatch"))
        // Every command that opens the replaced file says the same: exit 1, an integrity incident.
        let message = "auditdb: error: \(store) is store \(id), not the expected store 00112233445566778899aabbccddeeff; the file may have been replaced\n"
        let scan = try auditdb(["scan", "--no-record", "--store", store, "--key-file", keyFile, "--store-id", "00112233445566778899aabbccddeeff"])
        #expect(scan.status == 1 && scan.stdout.contains("store-identity-mismatch"), "\(scan.stdout) \(scan.stderr)")
        for command in [["scan"], ["status"], ["query"], ["append", "--actor", "a", "--action", "b"]] {
            let pinned = try auditdb(command + ["--store", store, "--key-file", keyFile, "--store-id", "00112233445566778899aabbccddeeff"])
            #expect(pinned.status == 1 && pinned.stderr == message, "\(command): \(pinned.status) \(pinned.stderr)")
        }
        #expect(try sqlite3Shell(store, "SELECT count(*) FROM audit_entries;").stdout == "0\n")  // append wrote nothing
    }

    @Test("append --jsonl writes a batch; a bad line is reported by number and nothing is written")
    func jsonl() throws {
        try setUpStore()
        let good = """
            {"actor":"a1","action":"login","tenant":"t1"}
            {"actor":"a2","action":"read","resourceType":"doc","resourceId":"d9","details":{"k":[1,2]},"occurredAt":1700000000000000}

            """
        let ok = try auditdb(["append", "--jsonl", "--store", store, "--key-file", keyFile], stdin: good)
        #expect(ok.status == 0)
        #expect(ok.stdout == "1-2\n")
        for (input, message) in [
            ("{\"actor\":\"a\",\"action\":\"x\"}\n{\"actor\":\"a\",\"action\":\"x\",\"severity\":\"loud\"}\n", "line 2: severity: must be one of"),
            ("{\"actor\":\"a\",\"action\":\"x\"}\n{\"actor\":\"a\",\"action\":\n", "line 2: action: invalid JSON at byte 22: unexpected end of text"),
            ("{\"actor\":\"a\",\"action\":\"x\"}\n{\"actor\":\"a\" \"action\":\"x\"}\n", "line 2: line: invalid JSON at byte 13: expected ',' or '}'"),
            ("{\"actor\":\"a\",\"action\":\"x\",\"details\":\"notobject\"}\n", "line 1: details: must be a JSON object"),
            ("{\"actor\":\"a\\u0000b\",\"action\":\"x\"}\n", "line 1: actor: contains a control character"),
        ] {
            let bad = try auditdb(["append", "--jsonl", "--store", store, "--key-file", keyFile], stdin: input)
            #expect(bad.status == 2)
            #expect(bad.stderr.contains(message), "stderr: \(bad.stderr)")
            #expect(bad.stderr.contains("nothing was written"))
        }
        var invalidUTF8 = Data("{\"actor\":\"a\",\"action\":\"x\"}\n{\"actor\":\"".utf8)
        invalidUTF8.append(contentsOf: [0xC3, 0x28])
        invalidUTF8.append(contentsOf: Data("\",\"action\":\"x\"}\n".utf8))
        let utf8 = try auditdb(["append", "--jsonl", "--store", store, "--key-file", keyFile], stdinBytes: invalidUTF8)
        #expect(utf8.status == 2)
        #expect(utf8.stderr == "auditdb: error: line 2: line: invalid JSON at byte 10: invalid UTF-8; nothing was written\n")
        let query = try auditdb(["query", "--store", store, "--key-file", keyFile, "--format", "jsonl"])
        #expect(query.stdout.split(separator: "\n").count == 2)  // still only the good batch
    }

    @Test("query output escapes control characters and terminal escapes in every format")
    func queryEscaping() throws {
        try setUpStore()
        let hostile = #"{"actor":"eve\u202e\u001b","action":"x","resourceId":"r\u0085","details":{"m":"a\nb\u001b[2J\u2028"}}"#
        let added = try auditdb(["append", "--jsonl", "--store", store, "--key-file", keyFile], stdin: hostile + "\n")
        // C1 control U+0085 in resourceId is refused; try without it.
        #expect(added.status == 2)
        let allowed = #"{"actor":"eve\u202e","action":"x","details":{"m":"a\nb\u001b[2J\u2028\u202e"}}"#
        #expect(try auditdb(["append", "--jsonl", "--store", store, "--key-file", keyFile], stdin: allowed + "\n").status == 0)
        for format in ["table", "json", "jsonl"] {
            let out = try auditdb(["query", "--store", store, "--key-file", keyFile, "--format", format])
            #expect(out.status == 0)
            #expect(!out.stdout.unicodeScalars.contains { OutputEscaping.needsEscape($0) && $0 != "\n" })
            #expect(out.stdout.split(separator: "\n").count == (format == "table" ? 2 : 1))
        }
        let json = try auditdb(["query", "--store", store, "--key-file", keyFile, "--format", "json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let array = object?["entries"] as? [[String: Any]]
        #expect(object?["nextCursor"] is NSNull)
        #expect(array?.first?["actor"] as? String == "eve\u{202E}")
        #expect((array?.first?["details"] as? [String: Any])?["m"] as? String == "a\nb\u{1B}[2J\u{2028}\u{202E}")
    }

    @Test("query: every filter flag, cursors that continue, --all streaming, unverified rows marked")
    func queryFiltersAndCursors() async throws {
        try setUpStore()
        let keys = try KeyFile(path: keyFile).load()
        let store = try await AuditStore.open(at: self.store, keys: keys)
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        try await store.close()
        let base = ["query", "--store", self.store, "--key-file", keyFile, "--format", "jsonl"]
        func seqs(_ result: ProcessResult) -> [Int] {
            result.stdout.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["seq"] as? Int
            }
        }
        #expect(seqs(try auditdb(base + ["--actor", "user-3"])) == [3, 10, 17, 24])
        #expect(seqs(try auditdb(base + ["--tenant", "tenant-0", "--action", "write"])) == [6, 18, 30])
        #expect(seqs(try auditdb(base + ["--resource-type", "document", "--resource-id", "doc-9"])) == [9])
        #expect(seqs(try auditdb(base + ["--outcome", "denied", "--descending"])) == [30, 25, 20, 15, 10, 5])
        #expect(seqs(try auditdb(base + ["--severity", "info", "--correlation-id", "req-4"])) == [4])
        #expect(seqs(try auditdb(base + ["--from-seq", "28"])) == [28, 29, 30])
        #expect(seqs(try auditdb(base + ["--occurred-since", "2023-11-14T22:13:20.000010Z", "--occurred-until", "2023-11-14T22:13:20.000012Z"])) == [10, 11])
        #expect(seqs(try auditdb(base + ["--since", "2000-01-01T00:00:00Z", "--limit", "2"])) == [1, 2])
        #expect(seqs(try auditdb(base + ["--until", "2000-01-01T00:00:00Z"])).isEmpty)
        // Table output names the next page's cursor; --after continues from it.
        let first = try auditdb(["query", "--store", self.store, "--key-file", keyFile, "--limit", "4", "--descending"])
        #expect(first.stdout.contains("-- next page: --after 27.desc"))
        #expect(seqs(try auditdb(base + ["--limit", "4", "--descending", "--after", "27.desc"])) == [26, 25, 24, 23])
        let json = try auditdb(["query", "--store", self.store, "--key-file", keyFile, "--format", "json", "--limit", "2"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["nextCursor"] as? String == "2.asc")
        let wrongOrder = try auditdb(base + ["--after", "27.desc"])
        #expect(wrongOrder.status == 2)
        #expect(wrongOrder.stderr.contains("use it with the same order"))
        for bad in [["--outcome", "maybe"], ["--since", "yesterday"], ["--after", "x"], ["--from-seq", "9", "--to-seq", "3"]] {
            let result = try auditdb(base + bad)
            #expect(result.status == 2, "\(bad)")
            #expect(!result.stderr.isEmpty)
        }
        #expect(seqs(try auditdb(base + ["--all", "--tenant", "tenant-1"])) == Array(stride(from: 1, through: 30, by: 3)))
        // A tampered row stops a query (exit 1), or is shown marked with --include-unverified.
        try sqlite3Must(self.store, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = 'x' WHERE seq = 8;")
        let stopped = try auditdb(base)
        #expect(stopped.status == 1)
        #expect(stopped.stderr.contains("entry 8 failed verification (mac-mismatch at seq 8"))
        let marked = try auditdb(base + ["--include-unverified"])
        #expect(marked.status == 1)
        let lines = marked.stdout.split(separator: "\n")
        #expect(lines.count == 30)
        #expect(lines[7].contains("\"verified\":false,\"finding\":\"mac-mismatch at seq 8"))
        #expect(lines.filter { $0.contains("\"verified\":false") }.count == 1)
        let table = try auditdb(["query", "--store", self.store, "--key-file", keyFile, "--include-unverified", "--from-seq", "8", "--to-seq", "8"])
        #expect(table.stdout.contains("UNVERIFIED 8"))
        // Details another client wrote that close the object and add members: shown as a string,
        // so the line still says seq 9 and its own actor.
        let forged = #"{},"actor":"admin","seq":1,"z":0"#
        try sqlite3Must(self.store, "UPDATE audit_entries SET details = '\(forged)' WHERE seq = 9;")
        let spliced = try auditdb(base + ["--include-unverified"]).stdout.split(separator: "\n")
        let line = try #require(JSONSerialization.jsonObject(with: Data(spliced[8].utf8)) as? [String: Any])
        #expect(line["seq"] as? Int == 9 && line["actor"] as? String != "admin" && line["details"] as? String == forged, "\(spliced[8])")
        #expect(line["verified"] as? Bool == false)
    }

    @Test("numbers below zero are refused with their own message (never \"Missing value\"), out of range by the command's check; impossible filters and repeated erase fields are refused")
    func negativeNumbersAndImpossibleInput() throws {
        try setUpStore()
        let global = ["--store", store, "--key-file", keyFile]
        #expect(try auditdb(global + ["append", "--actor", "user-1", "--action", "read"]).status == 0)
        let refusals: [([String], String)] = [
            (["query", "--limit", "-1"], #"--limit <limit>': "-1" is not a whole number in decimal digits (no sign, leading zero, spaces or exponent)"#),
            (["query", "--limit", "0"], "limit must be between 1 and 10000 (got 0)"),
            (["query", "--from-seq", "-1"], #"--from-seq <from-seq>': "-1" is not a whole number in decimal digits"#),
            (["query", "--to-seq", "-7"], #"--to-seq <to-seq>': "-7" is not a whole number in decimal digits"#),
            (["tail", "--after", "-2"], #"--after <seq>': "-2" is not a whole number in decimal digits"#),
            (["export", "--out", dir.path("bundle"), "--limit", "-5"], #"--limit <n>': "-5" is not a whole number in decimal digits"#),
            (["export", "--out", dir.path("bundle"), "--limit", "0"], "--limit must be from 1 to 1000000"),
            (["append", "--jsonl", "--batch-size", "-3"], "batch-size"),
            (["retain", "--older-than", "1d", "--batch-size", "-1"], "batch-size"),
            (["query", "--actor", "user-1\n"], "actor: filter contains a control character at byte 6: no entry can match it"),
            (["query", "--tenant", ""], "tenant: filter must not be empty"),
            (["export", "--out", dir.path("bundle"), "--resource-id", String(repeating: "r", count: 1_025)],
             "resourceId: filter is 1025 bytes of UTF-8, over the field's limit of 1024"),
            (["erase", "--actor", "user-1", "--fields", "actor,actor", "--reason", "T-1"], #"--fields names "actor" twice"#),
            (["erase", "--actor", "user-1", "--fields", "details.ip,source,details.ip", "--reason", "T-1"], #"--fields names "details.ip" twice"#),
            (["erase", "--seqs", "1,1", "--fields", "actor", "--reason", "T-1"], "--seqs names seq 1 twice; name each seq once"),
            (["export", "--out", dir.path("bundle"), "--redact", "actor,source,actor"], #"--redact names actor twice (in "actor,source,actor"); name each field once"#),
            // One spelling of a name: no spaces around it (as erase --fields), a space is no separator.
            (["export", "--out", dir.path("bundle"), "--redact", "actor, source"], #"--redact takes a comma-separated list of actor, source and details (got " source" in "actor, source")"#),
            (["query", "--all", "--limit", "5"], "--all prints every matching entry and --limit one page of them: give one or the other"),
            (["query", "--after", "9223372036854775808"], "--after: 9223372036854775808 is too large"),
            (["erase", "--seqs", "1,9223372036854775808", "--fields", "actor", "--reason", "T-1"], "--seqs: 9223372036854775808 is too large"),
            (["query", "--mask", "actor=partial", "--mask", "actor=partial"], "--mask actor=partial is given twice; give each rule once"),
            (["masking", "set", "--rule", "details.ip=hash", "--rule", "details.ip=hash", "--reason", "T-1"], "--rule details.ip=hash is given twice; give each rule once"),
            (["scan", "--full-every", "1h"], "--full-every needs --every (a single pass is --full or --incremental)"),
            (["scan", "--every", "1h", "--checkpoint-every", "5m"], "--checkpoint-every needs --signing-key"),
            // A value that starts with "-" is the option's value, refused by its own check, not
            // "Missing value"; a seq or a number has one spelling (no sign, no leading zero).
            (["query", "--after", "-3"], "--after: a cursor such as 1234.asc (printed by the previous page) or a seq (0 or more, decimal digits)"),
            (["query", "--after", "+1"], "--after: a cursor such as 1234.asc"),
            (["query", "--after", "007"], "--after: a cursor such as 1234.asc"),
            (["query", "--after", "+1.asc"], "--after: a cursor such as 1234.asc"),
            (["erase", "--seqs", "+1", "--fields", "actor", "--reason", "T-1"], #"--seqs takes comma-separated seqs of 1 or more, not "+1""#),
            (["erase", "--seqs", "01", "--fields", "actor", "--reason", "T-1"], #"--seqs takes comma-separated seqs of 1 or more, not "01""#),
            (["scan", "--every", "-5m"], #"--every takes a whole number from 1 to 1000000 and a unit s, m, h or d (e.g. 5m); got "-5m""#),
            (["scan", "--every", "+5m"], #"--every takes a whole number from 1 to 1000000 and a unit s, m, h or d (e.g. 5m); got "+5m""#),
            (["status", "--max-age", "3650000d"], #"--max-age takes a whole number from 1 to 1000000 and a unit s, m, h or d (e.g. 5m); got "3650000d""#),
            (["--busy-timeout", "-1", "query"], #"--busy-timeout must be a number of seconds from 0 to 86400, in decimal digits with at most one point (got "-1")"#),
            (["retain", "--older-than", "-1d"], #"the retention period "-1d" is negative"#),
            (["report", "--out", dir.path("r"), "--signing-key", dir.path("none.key"), "--key-max-age", "-1d"], #"the key age "-1d" is negative"#),
        ]
        for (arguments, message) in refusals {
            let result = try auditdb(global + arguments, stdin: "")
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("Missing value"), "\(arguments)")
        }
        // Nothing was written by any of them: no erasure, no export access entry.
        let entries = try auditdb(global + ["query", "--format", "jsonl"])
        #expect(entries.stdout.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.path("bundle")))
    }

    @Test("keys rotate and compromised: old rows re-attested, the key file marked, verify intact")
    func keyCommands() throws {
        try setUpStore()
        for i in 1...3 { _ = try auditdb(["append", "--store", store, "--key-file", keyFile, "--actor", "u\(i)", "--action", "a"]) }
        let compromised = try auditdb(["keys", "compromised", "1", "--store", store, "--key-file", keyFile])
        #expect(compromised.status == 0, "\(compromised.stderr)")
        #expect(compromised.stdout.contains("added key version 2"))
        // Seq 4 is the rotation entry version 2 writes when it first signs (FORMAT.md 10.1), then the declaration.
        #expect(compromised.stdout.contains("re-attested 3 row(s) signed by key version 1 with key version 2; declaration recorded at seq 5"))
        let list = try auditdb(["keys", "list", "--key-file", keyFile])
        #expect(list.stdout.contains("key 1 compromised"))
        #expect(list.stdout.contains("key 2 active (signing)"))
        #expect(try auditdb(["verify", "--store", store, "--key-file", keyFile]).status == 0)
        // Declared again: nothing is left to attest, so nothing is written (no second declaration).
        let repeated = try auditdb(["keys", "compromised", "1", "--store", store, "--key-file", keyFile])
        #expect(repeated.status == 0, "\(repeated.stderr)")
        #expect(repeated.stdout == "key version 1 was already declared compromised at seq 5 and every row it signed is attested; nothing was written to the store\n")
        let declarations = try auditdb(["query", "--store", store, "--key-file", keyFile, "--action", "auditdb.key.compromised", "--format", "jsonl"])
        #expect(declarations.stdout.split(separator: "\n").map { $0.prefix(9) } == [#"{"seq":5,"#])
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let rotate = try auditdb(["keys", "rotate", "--key-file", keyFile])
        #expect(rotate.stdout.contains("added key version 3"))
        // Version 3 first signs at seq 6, its rotation entry; the append is seq 7.
        #expect(try auditdb(["append", "--store", store, "--key-file", keyFile, "--actor", "u", "--action", "a"]).stdout == "7\n")
        let rotations = try auditdb(["query", "--store", store, "--key-file", keyFile, "--action", "auditdb.key.rotated", "--format", "jsonl"])
        #expect(rotations.stdout.split(separator: "\n").map { $0.prefix(9) } == [#"{"seq":4,"#, #"{"seq":6,"#])
        #expect(try auditdb(["verify", "--store", store, "--key-file", keyFile]).status == 0)
        // Version 2 compromised in its turn: its own rows (seqs 4 and 5) and the version-1 rows
        // whose attestations it signed (seqs 1-3) are attested again, by version 3, and the line
        // says which versions those rows were signed by.
        let second = try auditdb(["keys", "compromised", "2", "--store", store, "--key-file", keyFile])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("re-attested 5 row(s) signed by key version 2 or by a version declared compromised before (1) with key version 3; declaration recorded at seq 8"), "\(second.stdout)")
        #expect(try auditdb(["verify", "--store", store, "--key-file", keyFile]).status == 0)
    }

    @Test("four keys rotate at once: one at a time (the key file's update lock), so versions 2-5 each sign a rotation entry, no key is lost, verify intact")
    func concurrentRotations() throws {
        try setUpStore()
        #expect(try auditdb(["append", "--store", store, "--key-file", keyFile, "--actor", "u", "--action", "a"]).status == 0)
        // Started together: without the lock, two of them read version 1 and each wrote "version 2".
        let script = """
            pids=""
            for i in 1 2 3 4; do "$0" keys rotate --store "$1" --key-file "$2" > "$3.$i" 2>&1 & pids="$pids $!"; done
            failed=0
            for p in $pids; do wait "$p" || failed=1; done
            exit $failed
            """
        let outputs = dir.path("rotate")
        let result = try run("/bin/bash", ["-c", script, cli, store, keyFile, outputs], environment: environmentWithoutAuditDBOptions())
        let printed = try (1...4).map { try String(contentsOfFile: "\(outputs).\($0)", encoding: .utf8) }
        #expect(result.status == 0, "\(printed)")
        let added = printed.compactMap { $0.split(separator: " ").dropFirst(3).first.flatMap { Int($0) } }.sorted()
        #expect(added == [2, 3, 4, 5], "\(printed)")
        let list = try auditdb(["keys", "list", "--key-file", keyFile])
        #expect(list.stdout.split(separator: "\n").count == 5 && list.stdout.contains("key 5 active (signing)"), "\(list.stdout)")
        let rotations = try auditdb(["query", "--store", store, "--key-file", keyFile, "--action", "auditdb.key.rotated", "--format", "jsonl"])
        #expect(rotations.stdout.split(separator: "\n").count == 4, "\(rotations.stdout)")
        #expect(try auditdb(["verify", "--store", store, "--key-file", keyFile]).status == 0)
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile + ".lock")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("--help documents the exit statuses")
    func helpDocumentsExitStatus() throws {
        let help = try auditdb(["verify", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("1  integrity violation found"))
        #expect(help.stdout.contains("2  could not verify"))
        let root = try auditdb(["--help"])
        #expect(root.stdout.contains("EXIT STATUS"))
    }

    @Test("environment variables stand in for the global options")
    func environment() throws {
        try setUpStore()
        var env = inheritedEnvironment
        env["AUDITDB_STORE"] = store
        env["AUDITDB_KEY_FILE"] = keyFile
        let result = try run(cli, ["append", "--actor", "a", "--action", "b"], environment: env)
        #expect(result.stdout == "1\n")
    }
}
