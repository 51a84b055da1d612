import ArgumentParser
import AuditDB

struct RepairIndexes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair-indexes",
        abstract: "Rebuild the query indexes from the rows, after verify reported index-mismatch.",
        discussion: """
            The indexes hold derived data only: rebuilding them changes no row and no MAC. Keep a copy of \
            the damaged file first if it is evidence. A full verification runs afterwards.

            EXIT STATUS: 0 rebuilt and intact; 1 rebuilt, but the store has other findings; 2 could not run.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        let report: IntegrityReport
        do {
            report = try await store.repairIndexes()
        } catch {
            try? await store.close()  // the repair's error is the one to report
            throw error
        }
        try await store.close()
        try Output.line("indexes rebuilt; " + OutputEscaping.escapeForMessage(report.description))
        if !report.isIntact { throw ExitCode(ExitStatus.violation) }
    }
}
