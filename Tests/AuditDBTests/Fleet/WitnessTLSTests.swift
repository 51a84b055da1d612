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
@Suite("Fleet: TLS to PostgreSQL", .serialized, .timeLimit(.minutes(10)))
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

    func url(_ query: String) -> String { "postgresql://tlsonly@127.0.0.1:\(server.port)/\(PostgresServer.database)?\(query)" }

    /// Connects through a pool with `query` appended to tlsonly's URL: the server's word on TLS.
    func connect(_ query: String) async throws -> String {
        try await withWitness(url(query)) { witness in
            var out = ""
            let rows = try await witness.client.query("SELECT ssl::text, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                                                      logger: Logger(label: "test"))
            for try await (ssl, version) in rows.decode((String, String).self) { out = "\(ssl) \(version)" }
            return out
        }
    }

    @Test("sslmode=verify-full, verify-ca or require with the private CA, or require alone: encrypted")
    func encrypted() async throws {
        for query in ["sslmode=verify-full&sslrootcert=\(ca)", "sslmode=verify-ca&sslrootcert=\(ca)", "sslmode=require",
                      "sslmode=require&sslrootcert=\(ca)"]
        {
            try await WitnessConnection(url: url(query)).check(logger: Logger(label: "test"))
            let text = try await connect(query)
            #expect(text.hasPrefix("true TLSv1."), "\(query): \(text)")
        }
    }

    @Test("a certificate no trusted CA signed is refused (verify-full, verify-ca, require with sslrootcert) as certificate-rejected naming host, sslmode and fix; a plain connection with pg_hba.conf's cause")
    func refused() async throws {
        let host = "127.0.0.1:\(server.port)"
        let cases: [(String, AuditError.Code, [String])] = [
            ("sslmode=verify-full&sslrootcert=\(otherCA)", .certificateRejected,
             ["sslmode=verify-full", "trusting sslrootcert=\(otherCA)", "no CA it trusts signed it", "CERTIFICATE_VERIFY_FAILED",
              "check that \(otherCA) holds the CA"]),
            ("sslmode=verify-ca&sslrootcert=\(otherCA)", .certificateRejected, ["sslmode=verify-ca", "trusting sslrootcert=\(otherCA)"]),
            ("sslmode=require&sslrootcert=\(otherCA)", .certificateRejected, ["sslmode=require", "trusting sslrootcert=\(otherCA)"]),
            // The system's trust store knows no test CA.
            ("sslmode=verify-full", .certificateRejected,
             ["sslmode=verify-full", "trusting the system's CA certificates", "add sslrootcert=PATH to the URL", "sslmode=require without sslrootcert"]),
            ("sslmode=disable", .storage, ["no encryption"]),  // pg_hba.conf: hostnossl … reject
        ]
        for (query, code, words) in cases {
            do {
                try await WitnessConnection(url: url(query)).check(logger: Logger(label: "test"))
                Issue.record("\(query) connected")
            } catch let error as AuditError {
                #expect(error.code == code, "\(query): \(error.code) \(error.message)")
                for word in words { #expect(error.message.contains(word), "\(query): \(word) not in \(error.message)") }
                if code == .certificateRejected { #expect(error.message.contains("TLS certificate of \(host) failed verification")) }
                #expect(!error.message.contains("PASSWORD"))
            }
        }
        // A CA file that is not there is a usage error naming it, before any connection.
        #expect(throws: AuditError.self) {
            _ = try WitnessConnection(url: "postgresql://tlsonly@127.0.0.1:\(server.port)/w?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        }
    }

    @Test("auditdb-fleet reports a refused certificate at once as what it is (host, sslmode, fix), exit 2, not as a timeout")
    func refusedByTheCommand() throws {
        let fleet = try builtProduct("auditdb-fleet")
        for (command, query) in [(["audit", "--witness"], "sslmode=verify-full&sslrootcert=\(otherCA)"),
                                 (["verify-shipped", "--to"], "sslmode=verify-ca&sslrootcert=\(otherCA)")]
        {
            let result = try run(fleet, command + [url(query), "--timeout", "120"])
            #expect(result.status == 2, "\(command): \(result.stderr)")
            let mode = query.prefix { $0 != "&" }
            #expect(result.stderr.hasPrefix("error: the TLS certificate of 127.0.0.1:\(server.port) failed verification (\(mode), trusting sslrootcert=\(otherCA)): no CA it trusts signed it"),
                    "\(result.stderr)")
            #expect(!result.stderr.contains("did not answer"))
        }
    }
}
