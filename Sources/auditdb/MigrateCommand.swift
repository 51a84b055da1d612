import ArgumentParser
import AuditDB
import Foundation

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Schema migrations (the default) and adoption of legacy audit tables.",
        subcommands: [Schema.self, Adopt.self],
        defaultSubcommand: Schema.self)
}

struct Schema: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Bring a store to this binary's schema: verify, back up, migrate, verify again.",
        discussion: """
            Each migration runs in its own transaction; a store written by a newer AuditDB is refused. \
            A consistent copy is written first (VACUUM INTO <store>.backup-<time>) unless --no-backup. \
            To roll back, stop the app and restore that copy. Running it again is a no-op.

            EXIT STATUS: 0 migrated or already current; 1 the store did not verify; 2 could not run.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print the plan and change nothing.") var dryRun = false
    @Flag(help: "Skip the backup copy (only if you made your own).") var noBackup = false
    @Option(help: ArgumentHelp("Where to write the backup (must not exist).", valueName: "path")) var backup: String?

    func validate() throws {
        if noBackup && backup != nil { throw ValidationError("--no-backup and --backup contradict each other") }
    }

    func run() async throws {
        let path = try global.storePath()
        let configuration = try global.configuration()
        let plan = try await AuditStore.migrationPlan(at: path, configuration: configuration)
        try Output.line("applied: \(plan.applied.isEmpty ? "none" : plan.applied.joined(separator: ", "))")
        try Output.line("pending: \(plan.pending.isEmpty ? "none (the store is current)" : plan.pending.joined(separator: ", "))")
        if dryRun {
            try Output.line("dry run: nothing was changed")
            return
        }
        let policy: AuditStore.BackupPolicy = noBackup ? .none : backup.map { .at($0) } ?? .automatic
        let report = try await AuditStore.migrate(at: path, keys: try global.keyRing(), backup: policy, configuration: configuration) { step in
            switch step {
            case .verifying: Output.lineDeferringFailure("verifying the store before migrating...")
            case .backingUp(let backupPath): Output.lineDeferringFailure("backing up to \(OutputEscaping.escapeForMessage(backupPath))...")
            case .applying(let name, let index, let count): Output.lineDeferringFailure("applying \(name) (\(index)/\(count))...")
            case .verifyingAfter(let name): Output.lineDeferringFailure("verifying after \(name)...")
            }
        }
        if report.applied.isEmpty {
            try Output.line("the store is current; nothing was changed")
        } else {
            try Output.line("migrated: \(report.applied.joined(separator: ", ")); \(report.verification)")
        }
        try Output.throwDeferredFailure()
    }
}
