import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL 15 server of the benchmark's own (Debian's `postgresql` package): `initdb` into a
/// temporary directory, started on a loopback port, stopped and removed at the end. As root it
/// runs as the `postgres` user (PostgreSQL refuses root). Children start through posix_spawn
/// (Foundation's `Process.run()` can crash this toolchain).
final class BenchPostgres: Sendable {
    // Sendable: every property is a constant.
    static let bin = "/usr/lib/postgresql/15/bin"
    static let superuser = "postgres", owner = "witness_owner", database = "witness"
    let directory: String
    let port: Int

    init(port: Int) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.bin + "/initdb") else {
            throw BenchFailure("PostgreSQL 15 is not installed at \(Self.bin): apt-get install -y postgresql")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("auditdb-fleet-bench-\(getpid())").path
        self.port = port
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        if getuid() == 0 { try shell("chown postgres \(directory)") }
        try asServer("\(Self.bin)/initdb -D \(directory)/data -A trust -U \(Self.superuser) --no-sync > \(directory)/initdb.log 2>&1")
        // Default durability (fsync on); a larger WAL so that checkpoints do not dominate the bulk loads.
        try asServer("\(Self.bin)/pg_ctl -D \(directory)/data -o '-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c max_wal_size=4GB -c shared_buffers=512MB' -l \(directory)/log -w start < /dev/null > \(directory)/pg_ctl.out 2>&1")
        try psql("CREATE ROLE \(Self.owner) LOGIN CREATEROLE", database: "postgres")
        try psql("CREATE DATABASE \(Self.database) OWNER \(Self.owner)", database: "postgres")
    }

    func stop() {
        _ = try? asServer("\(Self.bin)/pg_ctl -D \(directory)/data -m fast -w stop < /dev/null > /dev/null 2>&1")  // cleanup
        try? FileManager.default.removeItem(atPath: directory)  // cleanup
    }

    func url(_ user: String) -> String { "postgresql://\(user)@127.0.0.1:\(port)/\(Self.database)" }

    /// Runs SQL through psql; its output (unaligned, tuples only).
    @discardableResult
    func psql(_ sql: String, user: String = superuser, database: String = database) throws -> String {
        let sqlFile = directory + "/q-\(UUID().uuidString).sql"
        try sql.write(toFile: sqlFile, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: sqlFile) }  // cleanup
        let out = directory + "/q.out"
        try shell("/usr/bin/psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p \(port) -U \(user) -d \(database) -f \(sqlFile) > \(out) 2>&1")
        return try String(contentsOfFile: out, encoding: .utf8)
    }

    private func asServer(_ command: String) throws {
        if getuid() == 0 {
            try spawn(["/bin/su", "postgres", "-c", command])
        } else {
            try shell(command)
        }
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `/bin/sh -c command`; throws on a non-zero exit.
func shell(_ command: String) throws { try spawn(["/bin/sh", "-c", command]) }

func spawn(_ argv: [String]) throws {
    var pid: pid_t = 0
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs where p != nil { free(p) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    let rc = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, environ)
    guard rc == 0 else { throw BenchFailure("cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    guard status == 0 else { throw BenchFailure("\(argv.joined(separator: " ")) failed (wait status \(status))") }
}
