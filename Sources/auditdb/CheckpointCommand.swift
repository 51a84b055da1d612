import ArgumentParser
import AuditDB
import Foundation

struct CheckpointKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint-key",
        abstract: "Create and rotate the Ed25519 checkpoint signing key (separate from the HMAC keys).",
        subcommands: [Generate.self, Rotate.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new secret checkpoint key file (mode 0600, version 1) and its public key file. Never overwrites either file.")

        @Option(help: ArgumentHelp("Where to write the secret key file.", valueName: "file")) var out: String
        @Option(name: .customLong("public-out"), help: ArgumentHelp("Where to write the public key file (hand it to verifiers).", valueName: "file"))
        var publicOut: String

        func validate() throws {
            if URL(fileURLWithPath: out).standardizedFileURL.path == URL(fileURLWithPath: publicOut).standardizedFileURL.path {
                throw ValidationError("--out and --public-out name the same file; the public key would replace the secret key. Give two paths")
            }
        }

        func run() async throws {
            // The public file first: an existing one is refused before a secret file is made
            // (verifiers may hold it; `checkpoint-key rotate` rewrites it with every version).
            var existing = stat()
            if lstat(out, &existing) == 0 {
                throw AuditError(.invalidInput, "\(out) already exists; refusing to overwrite a checkpoint key file (choose another path)", field: "--out")
            }
            if lstat(publicOut, &existing) == 0 {
                throw AuditError(.invalidInput, "the public key file \(publicOut) already exists; nothing was written. Verifiers may hold it: "
                                 + "to add a key to an existing checkpoint key, run `auditdb checkpoint-key rotate`; otherwise choose another path",
                                 field: "--public-out")
            }
            let signer = try CheckpointSigner([CheckpointSigningKey.generate(version: 1)])
            try signer.write(to: out, replacing: false)
            try signer.publicKeys.write(to: publicOut, replacing: false)
            try Output.line("wrote checkpoint key file \(OutputEscaping.escapeForMessage(out)) (version 1, mode 0600; keep it secret) and public key file \(OutputEscaping.escapeForMessage(publicOut))")
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new checkpoint key version to the secret key file and rewrite the public key file with every version.")

        @Option(name: .customLong("signing-key"), help: ArgumentHelp("The secret checkpoint key file.", valueName: "file"))
        var signingKey: String
        @Option(name: .customLong("public-out"), help: ArgumentHelp("The public key file to rewrite.", valueName: "file"))
        var publicOut: String

        func validate() throws {
            if URL(fileURLWithPath: signingKey).standardizedFileURL.path == URL(fileURLWithPath: publicOut).standardizedFileURL.path {
                throw ValidationError("--signing-key and --public-out name the same file; the public keys would replace the secret keys. Give two paths")
            }
        }

        func run() async throws {
            let signer = try CheckpointSigner.load(path: signingKey).rotated()
            try signer.write(to: signingKey, replacing: true)
            try signer.publicKeys.write(to: publicOut)
            try Output.line("added checkpoint key version \(signer.signingKey.version) to \(OutputEscaping.escapeForMessage(signingKey)); it signs from now on; \(OutputEscaping.escapeForMessage(publicOut)) lists every version")
        }
    }
}

struct CheckpointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Sign a checkpoint of the log, record it in the store and write it to anchors.",
        discussion: """
            The first checkpoint verifies the whole store. A later one checks that the last checkpoint still \
            matches the store (its chain head and Merkle root) and verifies only the rows appended since, chained \
            from it: the new checkpoint's root extends the signed one, so a row changed below the last checkpoint \
            is not signed over (it no longer matches the root), but it is not looked at either; `auditdb verify` \
            or `scan --full` finds it. Each --anchor is a directory that receives one \
            JSON file per checkpoint, never overwritten; put it on another disk, a WORM mount or a remote host. \
            `auditdb verify --anchor DIR --public-key FILE` later detects truncation, rollback and rewrites. \
            The directory must exist: a missing one (a typo, an unmounted volume) is refused before anything \
            is read, never created.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("signing-key"), help: ArgumentHelp("The secret checkpoint key file.", valueName: "file"))
    var signingKey: String
    @Option(name: .customLong("anchor"), help: ArgumentHelp("An anchor directory (repeatable).", valueName: "dir"))
    var anchors: [String] = []
    @Flag(help: "No progress on standard error.") var quiet = false

    func run() async throws {
        let signer = try CheckpointSigner.load(path: signingKey)
        // Never created here: a missing directory is a typo or an unmounted volume, and a
        // checkpoint "anchored" on the local disk instead would protect nothing.
        let anchors = self.anchors.map { DirectoryAnchor(path: $0, createsDirectory: false) }
        for anchor in anchors { try anchor.checkDirectoryExists() }
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        let checkpoint: Checkpoint
        let display = Progress("checkpoint", unit: "rows", quiet: quiet)
        do {
            checkpoint = try await store.checkpoint(signer: signer, anchors: anchors,
                                                    progress: { display.update($0.rowsChecked, total: $0.totalRows) })
            display.finish()
            try await store.close()
        } catch {
            display.finish()
            try? await store.close()  // cleanup; the original error is rethrown
            throw error
        }
        try Output.line("checkpoint at seq \(checkpoint.seq) of store \(checkpoint.storeID), signed by checkpoint key version \(checkpoint.keyVersion)")
        try Output.line("merkle root \(checkpoint.merkleRoot.map { String(format: "%02x", $0) }.joined())")
        for anchor in anchors { try Output.line("anchored in \(OutputEscaping.escapeForMessage(anchor.path))") }
    }
}
