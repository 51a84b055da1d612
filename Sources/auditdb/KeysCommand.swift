import ArgumentParser
import AuditDB

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and rotate HMAC keys, and declare one compromised.",
        subcommands: [Generate.self, List.self, Rotate.self, Compromised.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new key file (mode 0600) holding key version 1. Never overwrites a file.")

        @Option(help: ArgumentHelp("Where to write the key file.", valueName: "file")) var out: String

        func run() async throws {
            let ring = try KeyFile.generate(at: out)
            try Output.line("wrote key file \(OutputEscaping.escapeForMessage(out)) with key version \(ring.signingKey.version) (mode 0600; keep it secret, back it up)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List key versions and their status (never the key bytes).")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let ring = try global.keyRing()
            for version in ring.versions {
                let key = ring.key(version: version)!
                let role = version == ring.signingKey.version ? " (signing)" : ""
                try Output.line("key \(version) \(key.status.rawValue)\(role) created \(key.createdAt?.iso8601 ?? "unknown")")
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new key version to the key file; it signs from now on. No row is rewritten.",
            discussion: """
                The first row the new version signs in a store is a signed rotation entry (action auditdb.key.rotated) \
                naming the version; with a store (--store or AUDITDB_STORE) it is written now. One change of a key \
                file at a time: a second `keys rotate` or `keys compromised` waits for the first (up to 30 seconds) on \
                the lock file KEYFILE.lock, which stays. Processes that loaded the key file before (scan --every, \
                tail --follow, your app) keep their keys: restart them so that they can read the new version's rows.
                """)
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            guard let path = global.keyFilePath() else {
                throw AuditError(.invalidInput, "rotation edits a key file: pass --key-file PATH", field: "--key-file")
            }
            // One rotation of a key file at a time: two at once would each add "the next version",
            // and the second would replace the first's key file, losing a key that signs rows.
            try await KeyFile.withUpdateLock(path) { try await rotate(path) }
        }

        private func rotate(_ path: String) async throws {
            let current = try KeyFile(path: path).load()
            let store = global.store ?? global.environment["AUDITDB_STORE"]
            let taken = try await Keys.attestationVersions(in: store, ring: current, global: global)
            let ring = try current.rotated(skipping: taken)
            try KeyFile.write(ring, to: path, replacing: true)
            try Output.line("added key version \(ring.signingKey.version) to \(OutputEscaping.escapeForMessage(path)); it signs new rows from now on")
            guard let store, !store.isEmpty else { return }
            let opened = try await AuditStore.open(at: store, keys: ring, configuration: try global.configuration())
            let recorded = await Result { try await opened.recordKeyRotation() }
            try await opened.close()
            if let seq = try recorded.get() {
                try Output.line("recorded the rotation in \(OutputEscaping.escapeForMessage(store)) as entry \(seq)")
            } else {
                try Output.line("\(OutputEscaping.escapeForMessage(store)) has no rows signed by another version: no rotation entry is due")
            }
        }
    }

    /// The key versions above the ring's newest that the store's audit_attestations already uses
    /// (foreign rows: no key of the ring made them), for ``KeyRing/rotated(skipping:)``; none
    /// without a store.
    static func attestationVersions(in store: String?, ring: KeyRing, global: GlobalOptions) async throws -> Set<UInt32> {
        guard let store, !store.isEmpty else { return [] }
        let opened = try await AuditStore.open(at: store, keys: ring, configuration: try global.configuration())
        let taken = await Result { try await opened.attestationKeyVersions(above: ring.versions.last ?? 0) }
        try await opened.close()
        return try taken.get()
    }

    struct Compromised: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Declare a key version compromised: re-attest its rows with the newest key, then mark it in the key file.",
            discussion: """
                Verifies the store first and refuses if it is not intact. If VERSION is the signing key, a new key \
                version is added to the key file first. Rows are never modified: attestations go to their own \
                append-only table, and the declaration is recorded as a critical entry. Afterwards a row under \
                VERSION passes verification only with its attestation, so rows forged with the stolen key are reported.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The key version to declare compromised.", transform: StrictNumber.version) var version: UInt32

        func run() async throws {
            guard let path = global.keyFilePath() else {
                throw AuditError(.invalidInput, "declaring a key compromised edits a key file: pass --key-file PATH", field: "--key-file")
            }
            try await KeyFile.withUpdateLock(path) { try await declare(path) }
        }

        private func declare(_ path: String) async throws {
            var ring = try KeyFile(path: path).load()
            guard ring.key(version: version) != nil else {
                throw AuditError(.invalidInput, "key version \(version) is not in \(path) (it has \(ring.versions))", field: "version")
            }
            if ring.signingKey.version == version {
                ring = try ring.rotated(skipping: try await Keys.attestationVersions(in: try global.storePath(), ring: ring, global: global))
                try KeyFile.write(ring, to: path, replacing: true)
                try Output.line("added key version \(ring.signingKey.version) to \(OutputEscaping.escapeForMessage(path)) to replace the compromised signing key")
            }
            let store = try await AuditStore.open(at: try global.storePath(), keys: ring, configuration: try global.configuration())
            let receipt: ReattestationReceipt
            do {
                receipt = try await store.reattest(compromisedVersion: version)
                try await store.close()
            } catch {
                try? await store.close()  // cleanup; the original error is rethrown
                throw error
            }
            if receipt.alreadyDeclared {
                let marked = ring.compromisedVersions.contains(version)
                if !marked { try KeyFile.write(try ring.markingCompromised(version), to: path, replacing: true) }
                try Output.line("key version \(version) was already declared compromised at seq \(receipt.declarationSeq) and every row it signed is attested; nothing was written to the store\(marked ? "" : "; key version \(version) is now marked compromised in \(OutputEscaping.escapeForMessage(path))")")
                return
            }
            try KeyFile.write(try ring.markingCompromised(version), to: path, replacing: true)
            // Rows of versions declared compromised before are re-attested too: their attestations
            // may be signed by `version`, which is no longer trusted.
            let earlier = ring.compromisedVersions.subtracting([version]).sorted()
            let signedBy = earlier.isEmpty ? "key version \(version)"
                : "key version \(version) or by a version declared compromised before (\(earlier.map(String.init).joined(separator: ", ")))"
            try Output.line("re-attested \(receipt.rowsAttested) row(s) signed by \(signedBy) with key version \(receipt.attestingVersion); declaration recorded at seq \(receipt.declarationSeq); key version \(version) is marked compromised in \(OutputEscaping.escapeForMessage(path))")
        }
    }
}
