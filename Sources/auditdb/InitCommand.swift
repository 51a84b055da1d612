import ArgumentParser
import AuditDB

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new, empty store.",
        discussion: "Prints the new store's id. Pin it with --store-id (or AUDITDB_STORE_ID) when verifying.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let store = try await AuditStore.create(at: try global.storePath(), keys: try global.keyRing())
        try Output.line("created store \(store.storeID) at \(OutputEscaping.escapeForMessage(store.path)) (signing key version \(store.keys.signingKey.version))")
        try await store.close()
    }
}
