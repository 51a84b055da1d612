import AuditDB
import AuditDBPostgres
import Foundation
import Logging
import Testing

/// A real PostgreSQL server of a test's own: `initdb` into a temporary directory, `pg_ctl start`
/// on a free loopback port, stopped by ``stop()`` (and by `deinit`, so a failing test stops it
/// too). Debian's PostgreSQL 15 (`make setup` installs the `postgresql` package). As root, the
/// server runs as the `postgres` user: PostgreSQL refuses to run as root.
final class PostgresServer: @unchecked Sendable {
    // @unchecked: `stopped` is written only by stop(), which the owning test calls once (or deinit).
    static let bin = "/usr/lib/postgresql/15/bin"
    let directory: String
    let port: Int
    private var stopped = false

    /// The superuser, the witness owner and the witness database the tests use.
    static let superuser = "postgres", owner = "witness_owner", database = "witness"

    /// A server; `configure`, given the server's directory after `initdb` (the data directory is
    /// `DIR/data`), may write files there (certificates, pg_hba.conf lines) and returns extra
    /// server options (`-c name=value ...`).
    init(configure: ((String) throws -> String)? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.bin + "/initdb") else {
            throw TestFailure("PostgreSQL 15 is not installed at \(Self.bin): run `make setup` (Debian package postgresql)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("auditdb-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        directory = dir
        port = try Self.freePort()
        if getuid() == 0 {
            let chown = try run("/bin/chown", ["postgres", dir])
            guard chown.status == 0 else { throw TestFailure("chown postgres \(dir): \(chown.stderr)") }
        }
        try asServerUser("\(Self.bin)/initdb -D \(dir)/data -A trust -U \(Self.superuser) --no-sync")
        let options = try configure?(dir) ?? ""
        // The server is a daemon: it keeps every descriptor pg_ctl had. Those of this process
        // (pipes of other tests' child processes, opened meanwhile) would keep those pipes open
        // and their readers waiting for ever; the script closes every descriptor above 2 and
        // sends pg_ctl's own output to a file.
        let script = """
            for f in /proc/$$/fd/*; do n=${f##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done 2>/dev/null
            exec \(Self.bin)/pg_ctl -D \(dir)/data -o '-p \(port) -k \(dir) -c listen_addresses=127.0.0.1 -c fsync=off \(options)' -l \(dir)/log -w start < /dev/null > \(dir)/pg_ctl.out 2>&1
            """
        try script.write(toFile: "\(dir)/start.sh", atomically: false, encoding: .utf8)
        try asServerUser("/bin/bash \(dir)/start.sh", output: "\(dir)/pg_ctl.out")
        try psql("CREATE ROLE \(Self.owner) LOGIN CREATEROLE", database: "postgres")
        try psql("CREATE DATABASE \(Self.database) OWNER \(Self.owner)", database: "postgres")
    }

    deinit { stop() }

    /// Stops the server (fast shutdown) and removes its directory.
    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? asServerUser("\(Self.bin)/pg_ctl -D \(directory)/data -m immediate -w stop < /dev/null > /dev/null 2>&1")  // cleanup: the test's own verdict stands
        try? FileManager.default.removeItem(atPath: directory)  // cleanup
    }

    /// Restarts the server as after a crash (immediate stop, then start on the same port):
    /// every connection is cut, committed transactions stay, open ones are rolled back.
    func restart() throws {
        try asServerUser("\(Self.bin)/pg_ctl -D \(directory)/data -m immediate -w stop < /dev/null > /dev/null 2>&1")
        try asServerUser("/bin/bash \(directory)/start.sh", output: "\(directory)/pg_ctl.out")
    }

    /// The URL for `user` on the witness database.
    func url(_ user: String) -> String { "postgresql://\(user)@127.0.0.1:\(port)/\(Self.database)" }

    /// Runs SQL through `psql` (an outside client) as `user`; fails on any error.
    @discardableResult
    func psql(_ sql: String, user: String = superuser, database: String = database) throws -> String {
        let result = try run("/usr/bin/psql", ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)",
                                               "-U", user, "-d", database, "-c", sql])
        guard result.status == 0 else { throw TestFailure("psql as \(user): \(result.stderr)") }
        return result.stdout
    }

    /// Runs the SQL file at `path` through `psql` as `user` and returns its output; fails on any error.
    func psql(file path: String, user: String = superuser) throws -> String {
        let result = try run("/usr/bin/psql", ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)",
                                               "-U", user, "-d", Self.database, "-f", path])
        guard result.status == 0 else { throw TestFailure("psql -f \(path) as \(user): \(result.stderr)") }
        return result.stdout
    }

    /// Runs the SQL file at `path` through `psql` as `user` (stopping at the first error): its
    /// status, output and messages (notices and warnings go to standard error).
    func psqlFile(_ path: String, user: String) throws -> ProcessResult {
        try run("/usr/bin/psql", ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)",
                                  "-U", user, "-d", Self.database, "-f", path])
    }

    /// Runs SQL through `psql` as `user` and returns its error output (empty if it succeeded).
    func psqlError(_ sql: String, user: String) throws -> String {
        let result = try run("/usr/bin/psql", ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)",
                                               "-U", user, "-d", Self.database, "-c", sql])
        return result.status == 0 ? "" : result.stderr
    }

    /// Runs `command` as the server's user; `output`: a file the command writes its messages to.
    private func asServerUser(_ command: String, output: String? = nil) throws {
        let result = getuid() == 0 ? try run("/bin/su", ["postgres", "-c", command]) : try run("/bin/sh", ["-c", command])
        guard result.status == 0 else {
            let messages = output.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""  // for the message only
            throw TestFailure("\(command): exit \(result.status): \(result.stderr)\(result.stdout)\(messages)")
        }
    }

    /// A free TCP port on 127.0.0.1 (bound, read, released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("cannot bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Runs `body` with a witness client for `url` whose pool runs meanwhile, and stops it after.
func withWitness<R: Sendable>(_ url: String, _ body: @Sendable @escaping (PostgresWitness) async throws -> R) async throws -> R {
    let witness = PostgresWitness(try WitnessConnection(url: url), logger: Logger(label: "test-witness"))
    return try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask {
            try await witness.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body(witness)
    }
}

extension PostgresServer {
    /// A new server with the witness schema installed, the role `auditor` and one login role per
    /// publishing instance (what a DBA creates out of band).
    static func withWitnessSchema(publishers: [String]) async throws -> PostgresServer {
        let server = try PostgresServer()
        try await withWitness(server.url(PostgresServer.owner)) { try await $0.installSchema() }
        try server.psql("CREATE ROLE auditor LOGIN IN ROLE auditdb_auditor;"
            + publishers.map { " CREATE ROLE \($0) LOGIN IN ROLE auditdb_publisher;" }.joined())
        return server
    }
}

/// A checkpoint of `store` signed with `signer`, sent straight to the witness as a store's first
/// publication: what a publisher role can do without the registered key. ``WitnessAnchor``
/// refuses an unregistered key before publishing; this is how the tests put one there anyway, as
/// the evidence the fleet auditor must report (`unknown-key`).
@discardableResult
func publishBypassingRegistration(_ store: AuditStore, signer: CheckpointSigner, to witness: PostgresWitness) async throws
    -> PostgresWitness.Publication
{
    let checkpoint = try await store.checkpoint(signer: signer)
    return try await witness.publish(checkpoint, proof: nil)
}

/// A psql session that holds a table lock (taken by ``PostgresServer/holdLock(_:)``) until
/// ``release()``: other sessions' statements on the table wait meanwhile.
final class PostgresLockHolder: Sendable {
    let process: Process
    let input: Pipe

    init(process: Process, input: Pipe) {
        self.process = process
        self.input = input
    }

    /// Commits the holder's transaction (the lock goes) and waits for psql to end.
    func release() throws {
        input.fileHandleForWriting.write(Data("COMMIT;\n".utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

extension PostgresServer {
    /// Starts a superuser session that runs `lock` (e.g. `LOCK TABLE t IN EXCLUSIVE MODE`) in an
    /// open transaction, and returns once the lock is held.
    func holdLock(_ lock: String) throws -> PostgresLockHolder {
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        holder.arguments = ["-X", "-q", "-At", "-h", "127.0.0.1", "-p", "\(port)", "-U", Self.superuser, "-d", Self.database]
        let input = Pipe(), output = Pipe()
        holder.standardInput = input
        holder.standardOutput = output
        try holder.run()
        input.fileHandleForWriting.write(Data("BEGIN; \(lock); SELECT 'locked';\n".utf8))
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("locked") {
            let data = output.fileHandleForReading.availableData
            guard !data.isEmpty else { throw TestFailure("psql ended before it took the lock") }
            seen.append(data)
        }
        return PostgresLockHolder(process: holder, input: input)
    }
}
