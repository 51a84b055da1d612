// The witness client and its publisher, WitnessAnchor, in one file (460 lines): the anchor is a
// thin caller of the witness's trusted-checkpoint reads, whose rules (registered key, valid
// signature, every row at a seq) must be read side by side with the way it uses them.
public import AuditDB
import Foundation
public import Logging
public import PostgresNIO
public import ServiceLifecycle

/// The PostgreSQL witness: tables in schema `auditdb_witness` that keep every store's
/// published checkpoints and consistency proofs, append-only inside PostgreSQL
/// (`postgres/witness.sql`, docs/fleet.md, FORMAT.md section 22.6).
///
/// One value owns one PostgresNIO connection pool; run it as a `Service` (its ``run()`` runs
/// the pool) in your `ServiceGroup`, or in a task of its own, for as long as you use it.
///
/// ```swift
/// let witness = PostgresWitness(try WitnessConnection(url: "postgresql://instance-7@db/witness"), logger: logger)
/// let group = ServiceGroup(services: [witness, checkpointService], logger: logger)
/// ```
public final class PostgresWitness: Service, Sendable {
    /// The pool.
    public let client: PostgresClient
    /// Where it connects (no password).
    public let connection: WitnessConnection
    let logger: Logger

    /// A witness client for `connection`; nothing connects before ``run()``.
    public init(_ connection: WitnessConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
        client = PostgresClient(configuration: connection.configuration, backgroundLogger: logger)
    }

    /// Runs the connection pool until the task is cancelled (or a graceful shutdown).
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.client.run() }
    }

    /// Checks that the database answers (`SELECT 1`).
    /// - Throws: ``AuditError`` `storage` when it does not.
    public func ping() async throws {
        do {
            _ = try await client.query("SELECT 1", logger: logger).collect()
        } catch {
            throw AuditError.witness(error, while: "reach the database")
        }
    }

    /// Runs `body` in one read-only REPEATABLE READ transaction: every query it makes sees the one
    /// snapshot taken at its first query, so that tables read one after the other agree (no
    /// publication, registration or batch lands between two of the reads).
    func snapshot<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        let logger = self.logger
        return try await client.withConnection { connection in
            try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            do {
                let result = try await body(connection)
                try await connection.query("COMMIT", logger: logger)
                return result
            } catch {
                // A session the server ended (a restart, pg_terminate_backend) was rolled back by
                // the server, and takes no ROLLBACK: a query sent on a closed connection never
                // returns (PostgresNIO 1.33.2). On a live one the ROLLBACK is cleanup; the
                // body's error is the one thrown.
                if !connection.isClosed { _ = try? await connection.query("ROLLBACK", logger: logger) }
                throw error
            }
        }
    }

    /// Every row of `query`, read as the rows arrive (PostgresNIO's future-based query asks the
    /// server for more at once) rather than through its back-pressured async row sequence:
    /// PostgresNIO 1.33.2 stops on a precondition (RowStreamStateMachine.channelReadComplete,
    /// printing the buffered rows) when the server closes the connection while that sequence
    /// waits for a slower consumer. Read in pages (a cursor's FETCH) to bound memory. A
    /// connection already closed fails at once: a query sent on it would never return.
    /// - Throws: ``AuditError`` `storage` for a lost connection; PostgresNIO's errors otherwise.
    static func collected(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        guard !connection.isClosed else {
            throw AuditError(.storage, "the connection to PostgreSQL was lost (the server closed it: a restart, a stop, or an administrator ended the session); nothing was verified; run again")
        }
        let result: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        return try await result.get().rows
    }

    /// Refuses to audit as a publisher role that is not an auditor: row-level security shows a
    /// publisher its own stores only, so its audit would report the fleet intact from a part of
    /// it. (A superuser is a member of every role; the owner reads everything too.)
    static func requireAuditor(_ connection: PostgresConnection, logger: Logger, for what: String) async throws {
        let rows = try await connection.query(
            "SELECT current_user::text, pg_has_role(current_user, 'auditdb_publisher', 'MEMBER') AND NOT pg_has_role(current_user, 'auditdb_auditor', 'MEMBER')",
            logger: logger)
        for try await (role, publisherOnly) in rows.decode((String, Bool).self) where publisherOnly {
            throw AuditError(.permissionDenied, "role \(OutputEscaping.jsonQuoted(role)) is a publisher, not an auditor: row-level security shows it its own stores only, so \(what) would judge part of the fleet. Connect as a member of auditdb_auditor (GRANT auditdb_auditor TO <role>)")
        }
    }

    /// Creates or updates the witness schema, roles `auditdb_publisher` and `auditdb_auditor`,
    /// triggers and row-level security. Run once by the witness owner (the role that will own
    /// the tables; it needs CREATEROLE for the two group roles). Idempotent.
    public func installSchema() async throws {
        let statements = EmbeddedSQL.postgres.flatMap { Self.statements($0.sql) }
        do {
            try await client.withTransaction(logger: logger) { connection in
                for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
            }
        } catch {
            throw AuditError.witness(error, while: "install the witness schema")
        }
    }

    /// The statements of an SQL script (the extended protocol takes one at a time): split at
    /// each `;` outside quotes, dollar quotes and `--` comments.
    static func statements(_ sql: String) -> [String] {
        var out: [String] = [], current = ""
        var inQuote = false, inDollar = false, inComment = false
        var chars = sql.makeIterator(), previous: Character = " "
        while let c = chars.next() {
            current.append(c)
            if inComment {
                if c == "\n" { inComment = false }
            } else if inQuote {
                if c == "'" { inQuote = false }
            } else if c == "$" && previous == "$" {
                inDollar.toggle()
            } else if !inDollar {
                if c == "'" { inQuote = true }
                if c == "-" && previous == "-" { inComment = true }
                if c == ";" {
                    let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                    if statement.count > 1 { out.append(statement) }
                    current = ""
                }
            }
            previous = c == "$" && previous == "$" ? " " : c
        }
        let rest = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty, !rest.split(separator: "\n").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }) {
            out.append(rest)
        }
        return out
    }

    /// Registers a store out of band (witness owner only): the login role allowed to publish
    /// for it, and its public checkpoint keys. Registering again with the same role and keys
    /// changes nothing; new key versions (after a rotation) are added; a different role or a
    /// different key for a registered version is refused (nothing registered is ever changed).
    ///
    /// - Parameters:
    ///   - storeID: The store.
    ///   - publisher: The PostgreSQL login role of the instance that owns the store; it must be
    ///     a member of `auditdb_publisher`.
    ///   - publicKeys: The store's public checkpoint keys (`auditdb checkpoint-key` public file).
    ///   - label: A name for reports (e.g. the instance's host name).
    public func register(store storeID: StoreID, publisher: String, publicKeys: CheckpointPublicKeys, label: String = "")
        async throws
    {
        let id = ByteBuffer(bytes: storeID.bytes)
        do {
            try await client.withTransaction(logger: logger) { connection in
                // A registration is never changed: a misspelt role would bind the store id for good.
                // Checked for a new store only: adding a rotated key to a registered store must
                // not depend on the role's memberships since.
                let roles = try await connection.query(
                    """
                    SELECT r.rolname IS NOT NULL, r.rolname IS NOT NULL AND pg_has_role(r.rolname, 'auditdb_publisher', 'MEMBER'),
                           coalesce(r.rolsuper OR r.rolbypassrls, false)
                    FROM (SELECT \(publisher)::name AS n) asked LEFT JOIN pg_roles r ON r.rolname = asked.n
                    WHERE NOT EXISTS (SELECT 1 FROM auditdb_witness.stores WHERE store_id = \(id))
                    """, logger: logger)
                for try await (exists, publishes, privileged) in roles.decode((Bool, Bool, Bool).self) where !exists || !publishes || privileged {
                    // pg_has_role is true for a superuser in any role, and row-level security binds
                    // neither a superuser nor a BYPASSRLS role: it could write any store's rows.
                    if privileged {
                        throw AuditError(.invalidInput, "role \(OutputEscaping.jsonQuoted(publisher)) is a superuser or has BYPASSRLS, so row-level security would not bind it to store \(storeID); a publisher needs a role of its own (CREATE ROLE … LOGIN IN ROLE auditdb_publisher; a registration is never changed)")
                    }
                    throw AuditError(.invalidInput, exists
                        ? "role \(OutputEscaping.jsonQuoted(publisher)) is not a member of auditdb_publisher, so it could never publish for store \(storeID); GRANT auditdb_publisher TO it first (a registration is never changed)"
                        : "role \(OutputEscaping.jsonQuoted(publisher)) does not exist; create it first (CREATE ROLE … LOGIN IN ROLE auditdb_publisher): a registration is never changed, so a misspelt role would bind store \(storeID) for good")
                }
                try await connection.query(
                    "INSERT INTO auditdb_witness.stores (store_id, publisher, label) VALUES (\(id), \(publisher)::name, \(label)) ON CONFLICT (store_id) DO NOTHING",
                    logger: logger)
                let rows = try await connection.query("SELECT publisher::text FROM auditdb_witness.stores WHERE store_id = \(id)", logger: logger)
                for try await owner in rows.decode(String.self) where owner != publisher {
                    throw AuditError(.invalidInput, "store \(storeID) is already registered to role \(owner); a registration is never changed")
                }
                for key in publicKeys.keys {
                    let version = Int64(key.version), bytes = ByteBuffer(bytes: key.bytes)
                    try await connection.query(
                        "INSERT INTO auditdb_witness.keys (store_id, key_version, public_key) VALUES (\(id), \(version), \(bytes)) ON CONFLICT DO NOTHING",
                        logger: logger)
                    let held = try await connection.query(
                        "SELECT public_key FROM auditdb_witness.keys WHERE store_id = \(id) AND key_version = \(version)", logger: logger)
                    for try await existing in held.decode(Data.self) where Array(existing) != key.bytes {
                        throw AuditError(.invalidInput, "store \(storeID) already has another public key registered for checkpoint key version \(key.version); a registration is never changed")
                    }
                }
            }
        } catch {
            throw AuditError.witness(error, while: "register store \(storeID)")
        }
    }

    /// What a publication did.
    public enum Publication: Sendable, Equatable {
        /// Recorded. `keyRegistered` is false when the checkpoint's key is not registered for
        /// its store (the auditor reports `unknown-key`); `proofValid` is the witness's own
        /// check of the consistency proof (nil for a store's first publication).
        case recorded(keyRegistered: Bool, proofValid: Bool?)
        /// The witness already held this exact checkpoint: nothing was added (a replay).
        case alreadyHeld
    }

    /// Publishes `checkpoint` with the consistency proof from an earlier checkpoint of the
    /// same store that the witness holds (none for the store's first publication).
    ///
    /// PostgreSQL refuses (and this throws): a store not registered to the connecting role
    /// (row-level security), a malformed row, a proof of another store or from a seq the
    /// witness does not hold, a later publication without a proof. It records, as evidence for
    /// the auditor, whatever else is signed: forks, rollbacks, unregistered keys.
    /// - Throws: ``AuditError`` `invalidInput` for a checkpoint whose own signature fails (it is
    ///   not sent) or a refused row; `permissionDenied` for another store's id; `storage`.
    public func publish(_ checkpoint: Checkpoint, proof: ConsistencyProof?) async throws -> Publication {
        if let why = checkpoint.invalidityUnderOwnKey {
            throw AuditError(.invalidInput, "not publishing \(checkpoint): \(why)")
        }
        let hashes = proof.map { ByteBuffer(bytes: $0.hashes.joined()) }
        let proofStore = proof.map { ByteBuffer(bytes: $0.storeID.bytes) }
        let query: PostgresQuery = """
            INSERT INTO auditdb_witness.checkpoints
                (store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature, proof_store_id, proof_from, proof)
            VALUES (\(ByteBuffer(bytes: checkpoint.storeID.bytes)), \(checkpoint.seq), \(ByteBuffer(bytes: checkpoint.chainHead)),
                    \(ByteBuffer(bytes: checkpoint.merkleRoot)), \(checkpoint.time.microsecondsSinceEpoch), \(Int64(checkpoint.keyVersion)),
                    \(ByteBuffer(bytes: checkpoint.publicKey)), \(ByteBuffer(bytes: checkpoint.signature)), \(proofStore), \(proof?.fromSeq), \(hashes))
            RETURNING key_registered, proof_valid
            """
        do {
            let rows = try await client.query(query, logger: logger)
            for try await (registered, valid) in rows.decode((Bool, Bool?).self) {
                return .recorded(keyRegistered: registered, proofValid: valid)
            }
            return .alreadyHeld
        } catch {
            throw AuditError.witness(error, while: "publish \(checkpoint)")
        }
    }

    /// The public checkpoint key registered for `storeID` at `version`, or nil when none is (or
    /// the store is not registered to the connecting role: row-level security hides it).
    public func registeredKey(of storeID: StoreID, version: UInt32) async throws -> CheckpointPublicKey? {
        do {
            let rows = try await client.query(
                """
                SELECT public_key FROM auditdb_witness.keys
                WHERE store_id = \(ByteBuffer(bytes: storeID.bytes)) AND key_version = \(Int64(version))
                """, logger: logger)
            for try await key in rows.decode(Data.self) { return CheckpointPublicKey(version: version, bytes: Array(key)) }
            return nil
        } catch {
            throw AuditError.witness(error, while: "read the registered checkpoint keys of store \(storeID)")
        }
    }

    /// Throws unless `key` is registered for `storeID` at the witness. Checked before publishing:
    /// a checkpoint under an unregistered key, once published, stays in the witness for good (the
    /// fleet auditor reports it as `unknown-key`).
    /// - Throws: ``AuditError`` `invalidInput` saying what is wrong and how to fix it.
    public func requireRegistered(_ key: CheckpointPublicKey, for storeID: StoreID) async throws {
        guard let registered = try await registeredKey(of: storeID, version: key.version) else {
            throw AuditError(.invalidInput, "checkpoint key version \(key.version) is not registered for store \(storeID) at the witness (or the store is not registered to this role): nothing was published. Sign with the key registered for this store, or have the witness owner register its public checkpoint key file (`auditdb-fleet register`)", field: "signing-key")
        }
        // Public keys: nothing secret to leak through the comparison's timing.
        guard registered.bytes == key.bytes else {
            throw AuditError(.invalidInput, "checkpoint key version \(key.version) of this signing key is not the public key registered for store \(storeID) at the witness (registered \(registered.hex), this key \(key.hex)): nothing was published. Sign with this store's own checkpoint key file", field: "signing-key")
        }
    }

    /// The checkpoints of `storeID` the witness holds below `seq`, newest first (at most
    /// `limit`); the publisher's role sees its own stores only.
    public func checkpoints(of storeID: StoreID, below seq: Int64, limit: Int = 16) async throws -> [Checkpoint] {
        let id = ByteBuffer(bytes: storeID.bytes), limit = Int64(limit)
        do {
            let rows = try await client.query(
                "SELECT \(unescaped: Self.checkpointColumns) FROM auditdb_witness.checkpoints WHERE store_id = \(id) AND seq < \(seq) ORDER BY seq DESC, id DESC LIMIT \(limit)",
                logger: logger)
            var out: [Checkpoint] = []
            for try await row in rows.decode((Data, Int64, Data, Data, Int64, Int64, Data, Data).self) {
                out.append(Self.checkpoint(row))
            }
            return out
        } catch {
            throw AuditError.witness(error, while: "read the checkpoints of store \(storeID)")
        }
    }

    /// The newest checkpoint of `storeID` below `seq` that the store's owner could have signed:
    /// its key registered for the store now (in `auditdb_witness.keys`, which only the witness
    /// owner writes: a key registered after the checkpoint was published counts, as it does for
    /// the auditor) and its Ed25519 signature valid under that key. Rows a publisher role
    /// inserted without the signing key (junk signatures, its own key) are passed over, however
    /// many there are.
    public func newestTrustedCheckpoint(of storeID: StoreID, below seq: Int64 = .max) async throws -> Checkpoint? {
        try await trustedCheckpoints(of: storeID, below: seq, limit: 1).first
    }

    /// The checkpoints of `storeID` with `floor` < seq < `seq` that the store's owner could have
    /// signed (as ``newestTrustedCheckpoint(of:below:)`` says), newest first (by seq, then
    /// publication), at most `limit`. Two at one seq (a fork) are both there.
    public func trustedCheckpoints(of storeID: StoreID, below seq: Int64 = .max, above floor: Int64 = 0,
                                   limit: Int = .max) async throws -> [Checkpoint] {
        let id = ByteBuffer(bytes: storeID.bytes)
        var found: [Checkpoint] = []
        var position = (seq: seq, id: Int64.min)  // rows before it in (seq, id) descending order
        while found.count < limit {
            var page: [(Checkpoint, Int64)] = []
            do {
                let rows = try await client.query(
                    """
                    SELECT \(unescaped: Self.checkpointColumns), id FROM auditdb_witness.checkpoints c
                    WHERE store_id = \(id) AND \(unescaped: Self.registeredKey) AND seq > \(floor)
                      AND (seq < \(position.seq) OR (seq = \(position.seq) AND id < \(position.id)))
                    ORDER BY seq DESC, id DESC LIMIT 64
                    """, logger: logger)
                for try await row in rows.decode((Data, Int64, Data, Data, Int64, Int64, Data, Data, Int64).self) {
                    page.append((Self.checkpoint((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7)), row.8))
                }
            } catch {
                throw AuditError.witness(error, while: "read the checkpoints of store \(storeID)")
            }
            found += page.lazy.map(\.0).filter { $0.invalidityUnderOwnKey == nil }.prefix(limit - found.count)
            guard page.count == 64, let last = page.last else { break }
            position = (last.0.seq, last.1)
        }
        return found
    }

    /// The checkpoints of `storeID` with `floor` < seq ≤ `ceiling` under a key registered for the
    /// store, in (seq, publication) order, their signatures not checked (the caller checks those
    /// it acts on: most rows need no Ed25519 check then).
    func registeredCheckpoints(of storeID: StoreID, above floor: Int64, through ceiling: Int64) async throws -> [Checkpoint] {
        let id = ByteBuffer(bytes: storeID.bytes)
        var found: [Checkpoint] = []
        var position = (seq: floor, id: Int64.max)  // rows after it in (seq, id) ascending order
        while true {
            var page: [(Checkpoint, Int64)] = []
            do {
                let rows = try await client.query(
                    """
                    SELECT \(unescaped: Self.checkpointColumns), id FROM auditdb_witness.checkpoints c
                    WHERE store_id = \(id) AND \(unescaped: Self.registeredKey) AND seq <= \(ceiling)
                      AND (seq > \(position.seq) OR (seq = \(position.seq) AND id > \(position.id)))
                    ORDER BY seq, id LIMIT 1000
                    """, logger: logger)
                for try await row in rows.decode((Data, Int64, Data, Data, Int64, Int64, Data, Data, Int64).self) {
                    page.append((Self.checkpoint((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7)), row.8))
                }
            } catch {
                throw AuditError.witness(error, while: "read the checkpoints of store \(storeID)")
            }
            found += page.map(\.0)
            guard page.count == 1000, let last = page.last else { return found }
            position = (last.0.seq, last.1)
        }
    }

    /// The checkpoint of `storeID` at `seq` with `signature`, if the witness holds it under a key
    /// registered for the store and its signature is valid.
    public func trustedCheckpoint(of storeID: StoreID, seq: Int64, signature: [UInt8]) async throws -> Checkpoint? {
        let id = ByteBuffer(bytes: storeID.bytes), signed = ByteBuffer(bytes: signature)
        do {
            let rows = try await client.query(
                "SELECT \(unescaped: Self.checkpointColumns) FROM auditdb_witness.checkpoints c WHERE store_id = \(id) AND seq = \(seq) AND signature = \(signed) AND \(unescaped: Self.registeredKey)",
                logger: logger)
            for try await row in rows.decode((Data, Int64, Data, Data, Int64, Int64, Data, Data).self) {
                let checkpoint = Self.checkpoint(row)
                if checkpoint.invalidityUnderOwnKey == nil { return checkpoint }
            }
            return nil
        } catch {
            throw AuditError.witness(error, while: "read the checkpoint at seq \(seq) of store \(storeID)")
        }
    }

    static let checkpointColumns = "store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature"

    /// Checkpoint row `c`'s key is registered for its store now. Not the `key_registered` column:
    /// the witness sets that once, at the publication, and a key registered afterwards (a
    /// rotation registered late) would leave it false for good.
    static let registeredKey = """
        EXISTS (SELECT 1 FROM auditdb_witness.keys k WHERE k.store_id = c.store_id AND k.key_version = c.key_version AND k.public_key = c.public_key)
        """

    static func checkpoint(_ row: (Data, Int64, Data, Data, Int64, Int64, Data, Data)) -> Checkpoint {
        Checkpoint(storeID: StoreID(exactly: Array(row.0)) ?? StoreID(exactly: [UInt8](repeating: 0, count: 16))!, seq: row.1, chainHead: Array(row.2), merkleRoot: Array(row.3),
                   time: AuditTimestamp(microsecondsSinceEpoch: row.4), keyVersion: UInt32(clamping: row.5),
                   publicKey: Array(row.6), signature: Array(row.7))
    }
}

/// An ``AnchorSink`` that publishes each checkpoint to a ``PostgresWitness`` with the
/// consistency proof from the newest checkpoint of the store the witness holds below it.
///
/// If the store cannot prove consistency from the newest one (it does not extend it: a fork,
/// or a rollback followed by new rows), the others are tried, newest first, every one at a seq
/// included; the auditor then reports the fork, and a ``CentralShipper`` ships nothing on top
/// of either history. With none provable, the publication fails with the prover's error.
public struct WitnessAnchor: AnchorSink {
    /// The witness.
    public let witness: PostgresWitness

    /// Publishes to `witness`.
    public init(witness: PostgresWitness) { self.witness = witness }

    public var name: String { witness.connection.description }

    /// Publishes without a proof: only a store's first publication is accepted so. Use
    /// ``write(_:prover:)`` (``AuditStore/checkpoint(signer:anchors:)`` does).
    public func write(_ checkpoint: Checkpoint) async throws {
        try await write(checkpoint, prover: .unavailable(for: checkpoint))
    }

    public func write(_ checkpoint: Checkpoint, prover: ConsistencyProver) async throws {
        // An unregistered key's checkpoint could not be taken back once published.
        try await witness.requireRegistered(CheckpointPublicKey(version: checkpoint.keyVersion, bytes: checkpoint.publicKey),
                                            for: checkpoint.storeID)
        // The proof starts at a checkpoint the owner signed (registered key, valid signature),
        // newest first, at most 16 tried: rows a publisher role inserted without the signing key
        // must not push the real ones out of reach. Only when none is held does the proof start
        // at whatever the witness holds (the witness then asks for one from some held row).
        // Every one at a seq is tried (after a fork the witness holds two, and the newest may be
        // the other copy's).
        var proof: ConsistencyProof?
        var lastError: (any Error)?
        let trusted = try await witness.trustedCheckpoints(of: checkpoint.storeID, below: checkpoint.seq, limit: 16)
        for older in trusted where proof == nil {
            do {
                proof = try await prover.proof(from: older)
            } catch {
                lastError = error
            }
        }
        let tried = trusted.count
        if proof == nil, tried == 0 {
            for older in try await witness.checkpoints(of: checkpoint.storeID, below: checkpoint.seq) {
                do {
                    proof = try await prover.proof(from: older)
                    break
                } catch {
                    lastError = error
                }
            }
        }
        if proof == nil, let lastError { throw lastError }
        switch try await witness.publish(checkpoint, proof: proof) {
        case .alreadyHeld, .recorded(keyRegistered: true, _):
            return
        case .recorded(keyRegistered: false, _):
            throw AuditError(.invalidInput, "published \(checkpoint), but its key (version \(checkpoint.keyVersion)) is not registered for the store at the witness: the fleet auditor reports it as unknown-key. Register the store's public checkpoint key file out of band, or sign with the registered key")
        }
    }
}
