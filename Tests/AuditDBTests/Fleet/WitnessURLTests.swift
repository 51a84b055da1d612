import Foundation
import Testing
import _ConnectionPoolModule

@testable import AuditDB
@testable import AuditDBPostgres

/// The witness and central database URLs are read strictly: a port that is not a TCP port, a
/// setting given twice or one AuditDB does not read is refused before anything connects, so
/// that a typo never quietly means no TLS.
@Suite("Fleet: database URLs")
struct WitnessURLTests {
    func refusal(_ url: String) -> String? {
        do {
            _ = try WitnessConnection(url: url)
            return nil
        } catch {
            #expect(error.code == .invalidInput, "\(url): \(error.code)")
            return error.message
        }
    }

    @Test("a port outside 1...65535, a setting twice, an unknown or empty setting: invalid-input naming it")
    func refused() {
        let cases: [(String, String)] = [
            ("postgresql://w@db.example:99999/x", "the database URL's port 99999 is not a TCP port (1...65535)"),
            ("postgresql://w@db.example:0/x", "the database URL's port 0 is not a TCP port (1...65535)"),
            // Beyond Int (Foundation reads no port at all, which would be 5432), or empty.
            ("postgresql://w@127.0.0.1:9223372036854775808/x", #"the database URL's port "9223372036854775808" is not a TCP port (1...65535)"#),
            ("postgresql://w@127.0.0.1:99999999999999999999999/x", #"the database URL's port "99999999999999999999999" is not a TCP port (1...65535)"#),
            ("postgresql://w@[::1]:18446744073709551616/x", #"the database URL's port "18446744073709551616" is not a TCP port (1...65535)"#),
            ("postgresql://w:p%zz@127.0.0.1/x", "the database URL's user or password is not valid percent-encoding (write % as %25)"),
            ("postgresql://w:p%@127.0.0.1/x", "the database URL's user or password is not valid percent-encoding (write % as %25)"),
            ("postgresql://w@127.0.0.1/wit%zzness", "the database URL's database name is not valid percent-encoding (write % as %25)"),
            ("postgresql://w@127.0.0.1/x?sslmode=disable&sslmode=verify-full", "the database URL gives sslmode more than once; give it once"),
            ("postgresql://w@127.0.0.1/x?ssl_mode=verify-full", #"the database URL's setting "ssl_mode" is not one AuditDB reads (sslmode, sslrootcert)"#),
            ("postgresql://w@db.example/x?sslmode=", "the database URL's sslmode has no value"),
            ("postgresql://w@db.example/x?application_name=a", #"the database URL's setting "application_name" is not one AuditDB reads (sslmode, sslrootcert)"#),
        ]
        for (url, message) in cases {
            #expect(refusal(url) == message, "\(url)")
        }
        #expect(refusal("postgresql://w@db.example:5433/x?sslmode=require") == nil)
        #expect(refusal("postgresql://w@127.0.0.1:65535/x") == nil)
        #expect(refusal("postgresql://w:a%25b@[::1]/x") == nil)
        #expect(refusal("postgresql://w@127.0.0.1/a%25b?sslmode=disable") == nil)
        #expect(refusal("postgresql://w@127.0.0.1/x?sslmode=disable") == nil)
    }

    @Test("an IPv6 address is connected to without the brackets a URL writes it in")
    func ipv6() throws {
        #expect(try WitnessConnection(url: "postgresql://w@[::1]:5432/x").connectHost == "::1")
        #expect(try WitnessConnection(url: "postgresql://w@[fe80::1]/x?sslmode=require").connectHost == "fe80::1")
        #expect(try WitnessConnection(url: "postgresql://w@db.example/x").connectHost == "db.example")
        #expect(try WitnessConnection(url: "postgresql://w@[::1]:5432/x").description == "postgresql://w@[::1]:5432/x")
    }

    @Test("loopback (TLS off by default) is localhost or a loopback address, never a name that starts like one")
    func loopback() {
        for host in ["localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]"] { #expect(WitnessConnection.isLoopback(host), "\(host)") }
        for host in ["127.example.com", "127.0.0.1.example.com", "localhost.example.com", "::2", "10.0.0.1", "db"] {
            #expect(!WitnessConnection.isLoopback(host), "\(host)")
        }
    }

    @Test("a pool that could make no connection for a minute: a storage error saying so, not the circuit breaker's name")
    func poolGaveUp() {
        let error = AuditError.witness(ConnectionPoolError.connectionCreationCircuitBreakerTripped, while: "publish a checkpoint")
        #expect(error.code == .storage)
        #expect(error.message.hasPrefix("cannot publish a checkpoint at the witness: no connection to PostgreSQL could be made for a minute (the server is stopped, restarting or unreachable, or refuses this role)"))
        #expect(!error.message.contains("CircuitBreaker") && !error.message.contains("ConnectionPoolError"))
        let shutDown = AuditError.witness(ConnectionPoolError.poolShutdown, while: "ship seqs 1...2")
        #expect(shutDown.message.hasPrefix("cannot ship seqs 1...2 at the witness: its connection pool was shut down"))
    }
}
