import AuditDBPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import AuditDB
@testable import AuditDBPostgres

/// TLS to PostgreSQL (docs/fleet.md "TLS"): a real server with a certificate from a private CA
/// made here by `openssl`, reached with each `sslmode`; a role that pg_hba.conf allows only over
/// TLS proves the connection was encrypted.
@Suite("Fleet: TLS to PostgreSQL", .serialized)
final class WitnessTLSTests: Sendable {
    let server: PostgresServer
    let ca: String, otherCA: String

    init() throws {
        var files: (String, String) = ("", "")
        server = try PostgresServer { dir in
            files = try Self.certificates(in: dir)
            // `tlsonly` may connect only over TLS; everyone else as before (trust on loopback).
            let hba = dir + "/data/pg_hba.conf"
            let rules = try String(contentsOfFile: hba, encoding: .utf8)
            try ("hostnossl all tlsonly 127.0.0.1/32 reject\n" + rules).write(toFile: hba, atomically: false, encoding: .utf8)
            return "-c ssl=on -c ssl_cert_file=\(dir)/server.crt -c ssl_key_file=\(dir)/server.key"
        }
        (ca, otherCA) = files
        try server.psql("CREATE ROLE tlsonly LOGIN")
    }

    deinit { server.stop() }

    /// A private CA, a server certificate it signs for 127.0.0.1 and localhost, and a second CA
    /// that signed nothing; returns the two CA files.
    static func certificates(in dir: String) throws -> (String, String) {
        func openssl(_ arguments: [String]) throws {
            let result = try run("/usr/bin/openssl", arguments)
            guard result.status == 0 else { throw TestFailure("openssl \(arguments.first ?? ""): \(result.stderr)") }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ["ca", "other-ca"] {
            try openssl(["req", "-x509"] + ec + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).crt", "-days", "2",
                                                  "-subj", "/CN=AuditDB test \(name)"])
        }
        try openssl(["req"] + ec + ["-keyout", "\(dir)/server.key", "-out", "\(dir)/server.csr", "-subj", "/CN=127.0.0.1"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: "\(dir)/server.ext", atomically: false, encoding: .utf8)
        try openssl(["x509", "-req", "-in", "\(dir)/server.csr", "-CA", "\(dir)/ca.crt", "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
                     "-out", "\(dir)/server.crt", "-days", "2", "-extfile", "\(dir)/server.ext"])
        // PostgreSQL reads its key only if no one else may (0600, owned by the server's user).
        guard chmod("\(dir)/server.key", 0o600) == 0 else { throw TestFailure("chmod server.key") }
        if getuid() == 0 {
            let chown = try run("/bin/chown", ["postgres", "\(dir)/server.key", "\(dir)/server.crt"])
            guard chown.status == 0 else { throw TestFailure("chown: \(chown.stderr)") }
        }
        return ("\(dir)/ca.crt", "\(dir)/other-ca.crt")
    }

    /// Connects with `query` appended to tlsonly's URL; the server's word on TLS, or why not.
    /// PostgresNIO's pool retries a connection it cannot make instead of failing the query, so a
    /// connection that has not answered within `patience` counts as refused (an accepted one
    /// answers within a second on a quiet machine, within several under the whole suite's load).
    func connect(_ query: String, patience: Duration = .seconds(60)) async -> Result<String, AuditError> {
        let url = "postgresql://tlsonly@127.0.0.1:\(server.port)/\(PostgresServer.database)?\(query)"
        do {
            return .success(try await withWitness(url) { witness in
                try await withThrowingTaskGroup(of: String.self) { group in
                    group.addTask {
                        var out = ""
                        let rows = try await witness.client.query("SELECT ssl::text, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                                                                  logger: Logger(label: "test"))
                        for try await (ssl, version) in rows.decode((String, String).self) { out = "\(ssl) \(version)" }
                        return out
                    }
                    group.addTask {
                        try await Task.sleep(for: patience)
                        throw AuditError(.storage, "no connection within \(patience)")
                    }
                    defer { group.cancelAll() }
                    return try await group.next() ?? ""
                }
            })
        } catch {
            return .failure(AuditError.witness(error, while: "connect"))
        }
    }

    @Test("sslmode=verify-full with the private CA: encrypted and verified; require: encrypted")
    func encrypted() async throws {
        for query in ["sslmode=verify-full&sslrootcert=\(ca)", "sslmode=verify-ca&sslrootcert=\(ca)", "sslmode=require",
                      "sslmode=require&sslrootcert=\(ca)"]
        {
            let result = await connect(query)
            guard case .success(let text) = result else {
                Issue.record("\(query): \(result)")
                continue
            }
            #expect(text.hasPrefix("true TLSv1."), "\(query): \(text)")
        }
    }

    @Test("a certificate no trusted CA signed is refused (verify-full, verify-ca, require with sslrootcert); without TLS the server refuses")
    func refused() async throws {
        let queries = ["sslmode=verify-full&sslrootcert=\(otherCA)", "sslmode=verify-ca&sslrootcert=\(otherCA)",
                       "sslmode=require&sslrootcert=\(otherCA)", "sslmode=verify-full", "sslmode=disable"]
        // At once: each refusal waits out its patience.
        let results = await withTaskGroup(of: (String, Result<String, AuditError>).self) { group in
            for query in queries { group.addTask { (query, await self.connect(query, patience: .seconds(10))) } }
            var all: [(String, Result<String, AuditError>)] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.count == queries.count)
        for (query, result) in results {
            guard case .failure(let error) = result else {
                Issue.record("\(query) connected: \(result)")
                continue
            }
            #expect(error.code == .storage, "\(query): \(error.message)")
        }
        // The accepted URL still connects: the refusals were the certificates', not the server's.
        guard case .success = await connect("sslmode=verify-full&sslrootcert=\(ca)") else {
            Issue.record("verify-full with the right CA no longer connects")
            return
        }
        // A CA file that is not there is a usage error naming it, before any connection.
        #expect(throws: AuditError.self) {
            _ = try WitnessConnection(url: "postgresql://tlsonly@127.0.0.1:\(server.port)/w?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        }
    }
}
