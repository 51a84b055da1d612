import ArgumentParser
import AuditDB

struct Compact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give the store file's free pages back to the file system.",
        discussion: """
            Expiry frees pages; `retain` gives them back online on stores that release space (every store \
            `init` makes). A store created before that keeps its free pages for later appends until one \
            `compact`: it rewrites the whole file (VACUUM), needs free disk space as large as the store, and \
            makes appends wait until it is done; readers go on. Rows, MACs and seqs do not change, so \
            checkpoints, anchors and exports stay valid. EXIT STATUS: 0 done; 1 the file is not the store --store-id pins (nothing done); 2 could not run.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let report = try await withStore(global) { store in try await store.compact() }
        try Output.line(SpaceLine.describe(report))
    }
}

/// One line about a store file's size, for `compact` and `retain`.
enum SpaceLine {
    static func describe(_ report: SpaceReport) -> String {
        var line = "store file \(mib(report.fileBytesBefore)) -> \(mib(report.fileBytesAfter))"
        line += ", \(report.pagesReleased) free page(s) released"
        if !report.incrementalVacuum {
            line += "; \(report.freePagesLeft) free page(s) stay for later appends: this store was created before "
                + "AuditDB released space online, run `auditdb compact` once"
        }
        return line
    }

    private static func mib(_ bytes: Int64) -> String {
        let tenths = (bytes * 10 + 524_288) / 1_048_576
        return "\(tenths / 10).\(tenths % 10) MiB"
    }
}
