import ArgumentParser
import AuditDB
import Foundation
import UnixSignals

struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print verified entries after a position; with --follow, keep printing them as they are appended.",
        discussion: """
            Entries come oldest first, each verified (MAC and chain link) as it is read, with the filters of \
            `query`. The start is --after SEQ, or the seq saved in --cursor-file (from the first entry if the \
            file does not exist yet). With --cursor-file, the seq of the last entry printed is saved after \
            each page is written and flushed (a temporary file, fsync'd, renamed over the old one; mode 0600; \
            a cursor file group or others can write is refused, and so is one that cannot be saved, before \
            anything is printed), \
            so a restart resumes exactly after it: nothing lost, nothing printed twice. Only a process killed \
            with SIGKILL (or a power cut) between writing a page and saving its cursor prints that page again \
            on restart; the seq of each entry tells a consumer which ones it has. SIGTERM and SIGINT stop it \
            cleanly: the page being printed is finished and its cursor saved. Before each read, the last \
            entry printed (its seq and MAC, kept in the cursor file too) must still be in the store: a store \
            rolled back below it or replaced stops the tail with exit status 1 rather than skip the rows \
            written again at seqs it already passed.

            EXIT STATUS
              0  stopped by SIGTERM/SIGINT, or (without --follow) caught up
              1  a row failed verification: it is not printed, and nothing after it; or the
                 last entry printed is gone or changed (the store was rolled back or
                 replaced)
              2  could not run: bad arguments, missing key, unreadable store or cursor
                 file; or masking rules set while it ran that it cannot apply (a hash rule
                 without --mask-key, a rule that conflicts with --mask): it stops rather
                 than print unmasked
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case jsonl, table }

    @OptionGroup var global: GlobalOptions
    @OptionGroup var filters: EntryFilterOptions
    @Flag(help: "Keep waiting for new entries until SIGTERM/SIGINT.") var follow = false
    @Option(parsing: .unconditional, help: ArgumentHelp("Start after this seq (0: from the first entry).", valueName: "seq"),
            transform: StrictNumber.integer) var after: Int64?
    @Option(name: .customLong("cursor-file"), help: ArgumentHelp("Resume after the seq saved here, and save it after each page.", valueName: "path"))
    var cursorFile: String?
    @Option(name: .customLong("poll-interval"), parsing: .unconditional, help: ArgumentHelp("With --follow: seconds between looks once caught up (0.05-3600).", valueName: "seconds"),
            transform: StrictNumber.seconds)
    var pollInterval = 1.0
    @Option(help: "jsonl | table") var format: Format = .jsonl
    @OptionGroup var masks: MaskOptions

    func validate() throws {
        if after != nil && cursorFile != nil { throw ValidationError("give --after or --cursor-file, not both") }
        if let after, after < 0 { throw ValidationError("--after must be a seq (0 or more)") }
        if cursorFile?.isEmpty == true { throw ValidationError("--cursor-file needs a path (got an empty one)") }
        guard pollInterval >= 0.05, pollInterval <= 3_600 else { throw ValidationError("--poll-interval must be from 0.05 to 3600 seconds") }
    }

    func run() async throws {
        // Trapped first: a signal while the store opens is then a clean stop (exit 0) once it is
        // open, not the default action's exit 143 or 130.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let query = try filters.filter().entryQuery()
        let extraMasks = try masks.rules()
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration(readOnly: true))
        let result = await Result { try await tail(store, query, extraMasks: extraMasks, signals: signals) }
        try await store.close()
        try result.get()
    }

    private func tail(_ store: AuditStore, _ query: EntryQuery, extraMasks: [MaskRule], signals: UnixSignalsSequence) async throws {
        let masks = self.masks
        let startPolicy = try await masks.policy(for: store, extra: extraMasks)
        let startPolicySeq = try await store.maskingConfiguration().seq
        let cursor = cursorFile.map { TailCursor(path: $0, storeID: store.storeID) }
        let saved = try cursor?.load()
        // Before anything is printed: a cursor that cannot be saved would print the same entries
        // again on every restart.
        if let cursorFile { try StateFile.checkReplaceable(cursorFile, what: "cursor file") }
        // A v1 cursor has no MAC to prove its entry is still there (v2 does): at least it must not
        // point past the log's end, or the rows written again below it would be skipped unseen.
        if let saved, saved.mac == nil, after == nil, saved.seq > 0 {
            let last = try await store.lastSeq()
            guard saved.seq <= last else {
                throw AuditError(.integrityViolation,
                                 "cursor file \(cursorFile ?? "") points after seq \(saved.seq), but the store's last entry is seq \(last): the store was rolled back or replaced since (or the cursor belongs to another copy). Nothing was printed; check the store (`auditdb verify`), then pass --after SEQ or another --cursor-file",
                                 field: "--cursor-file")
            }
        }
        let start = after ?? saved?.seq ?? 0
        // --after past the log's end skips the entries appended up to it, unseen: say so (a typo,
        // or a seq of another store), but go on (it may be meant).
        if let after, after > 0 {
            let last = try await store.lastSeq()
            if after > last {
                Output.notice("warning: --after \(after) is past the store's last entry (seq \(last)): entries \(last + 1) to \(after) will not be printed when they are appended; pass --after \(last) to print every entry from the next one on")
            }
        }
        let stream = store.follow(after: start, mac: after == nil ? saved?.mac : nil, matching: query,
                                  pollInterval: .milliseconds(Int64(pollInterval * 1000)), follow: follow)
        let format = self.format
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals { return }
            }
            group.addTask {
                var printed = start
                do {
                    if format == .table { try Output.line(TableFormat.header.joined(separator: "  ")) }
                    var policy = startPolicy, policySeq = startPolicySeq
                    for try await page in stream.batches {
                        // The store's rules as they are now, read after the page: a masking entry
                        // set while the tail runs (in this page or before it) applies at once.
                        let current = try await store.maskingConfiguration().seq
                        if current != policySeq {
                            policy = try await masks.policy(for: store, extra: extraMasks)
                            policySeq = current
                        }
                        // One write per page, then the cursor: both synchronous, so a stop (task
                        // cancellation) falls between pages, never between a page and its cursor.
                        var text = ""
                        for entry in page.map(policy.apply) {
                            text += (format == .jsonl ? EntryJSON.encode(entry) : TableFormat.row(entry)) + "\n"
                        }
                        try Output.writeAll(text)
                        printed = page[page.count - 1].seq
                        try cursor?.save(page[page.count - 1].seq, mac: page[page.count - 1].mac)
                    }
                } catch let error as AuditError {
                    // Where to go on from, once the cause is dealt with: the last entry printed.
                    // Not after damage or a rollback: the same position meets the same finding.
                    let resume = cursor == nil ? "--after \(printed)" : "the same --cursor-file (or --after \(printed))"
                    let next = error.code == .integrityViolation
                        ? "the store no longer verifies from there: check it with `auditdb verify` (and restore it) before tailing it again"
                        : "to go on from there, run tail again with \(resume)"
                    throw AuditError(error.code, error.message + " (the last entry printed is seq \(printed); \(next))",
                                     field: error.field, underlying: error.underlying)
                }
            }
            // The first to end (a signal, the tail caught up, or a failure) stops the other.
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}

/// The position `tail --cursor-file` keeps: one line `auditdb-tail-cursor v2 store=HEX after=SEQ
/// mac=HEX` (the MAC of the entry at SEQ, checked before the tail goes on: a store rolled back
/// below it is refused rather than skipped). A v1 line (`… v1 store=HEX after=SEQ`, no MAC) is
/// still read. The store id keeps a cursor of one store from being used with another.
struct TailCursor {
    let path: String
    let storeID: StoreID

    static let mode: UInt32 = 0o600

    /// The saved seq and, from a v2 file, the MAC of its entry; nil if the file does not exist yet.
    func load() throws -> (seq: Int64, mac: [UInt8]?)? {
        guard let bytes = try StateFile.read(path, what: "cursor file", limit: 4_096) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        for version in ["v2", "v1"] {
            let prefix = "auditdb-tail-cursor \(version) store=\(storeID.hex) after="
            guard text.hasPrefix(prefix) else { continue }
            let rest = text.dropFirst(prefix.count)
            if text.hasSuffix("\n") {
                let fields = rest.dropLast().split(separator: " ", omittingEmptySubsequences: false)
                if version == "v1", fields.count == 1, let seq = DecimalText.nonNegativeInt64(fields[0]) { return (seq, nil) }
                if version == "v2", fields.count == 2, let seq = DecimalText.nonNegativeInt64(fields[0]), fields[1].hasPrefix("mac="),
                   let mac = Hex.decodeLowercase(String(fields[1].dropFirst(4))), mac.count == 32
                {
                    return (seq, mac)
                }
            }
            throw AuditError(.invalidInput, "cursor file \(path) is damaged: after `after=` it must hold a seq (decimal, 0 or more)\(version == "v2" ? ", then ` mac=` and 64 lowercase hex digits," : "") and end with a newline; pass another --cursor-file, or --after SEQ",
                             field: "--cursor-file")
        }
        if text.hasPrefix("auditdb-tail-cursor v1 store=") || text.hasPrefix("auditdb-tail-cursor v2 store=") {
            throw AuditError(.invalidInput, "cursor file \(path) belongs to another store (or is damaged); pass another --cursor-file, or --after SEQ",
                             field: "--cursor-file")
        }
        throw AuditError(.invalidInput, "cursor file \(path) is not an auditdb tail cursor; pass another --cursor-file, or --after SEQ",
                         field: "--cursor-file")
    }

    func save(_ seq: Int64, mac: [UInt8]) throws {
        // A marked row (--include-unverified) may hold a MAC of another length: no MAC then.
        let line = mac.count == 32 ? "auditdb-tail-cursor v2 store=\(storeID.hex) after=\(seq) mac=\(Hex.encode(mac))\n"
            : "auditdb-tail-cursor v1 store=\(storeID.hex) after=\(seq)\n"
        try StateFile.replace(path, with: Array(line.utf8), mode: Self.mode, what: "cursor file")
    }
}
