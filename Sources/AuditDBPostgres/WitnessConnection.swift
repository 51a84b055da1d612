public import AuditDB
import Foundation
public import PostgresNIO

/// Where the witness database is: a `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` URL
/// (`postgres://` too), with TLS chosen as libpq chooses it (docs/fleet.md, "TLS"):
///
/// | `sslmode` | TLS | the server's certificate |
/// |---|---|---|
/// | `disable` (the default on a loopback host) | no | — |
/// | `prefer` | if the server offers it | not checked, or as `verify-ca` with `sslrootcert` |
/// | `require` (the default elsewhere) | yes | not checked, or as `verify-ca` with `sslrootcert` |
/// | `verify-ca` | yes | signed by a CA of `sslrootcert` (else the system's) |
/// | `verify-full` | yes | as `verify-ca`, and issued for HOST |
///
/// `sslrootcert=PATH` names a PEM file of the CA certificates to trust (e.g. a private CA's).
/// The password never appears in AuditDB's messages.
public struct WitnessConnection: Sendable, CustomStringConvertible {
    /// The PostgresNIO configuration.
    public let configuration: PostgresClient.Configuration
    /// The URL without its password, for messages.
    public let description: String

    /// Parses `url`.
    /// - Throws: ``AuditError`` `invalidInput` naming what is wrong (never the password).
    public init(url: String) throws(AuditError) {
        guard let parts = URLComponents(string: url), ["postgresql", "postgres"].contains(parts.scheme ?? ""),
              let host = parts.host, !host.isEmpty, let user = parts.user, !user.isEmpty
        else {
            throw AuditError(.invalidInput, "a database URL must be postgresql://USER@HOST[:PORT]/DATABASE", field: "--witness")
        }
        let database = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        guard !database.isEmpty else {
            throw AuditError(.invalidInput, "the database URL names no database (postgresql://USER@HOST[:PORT]/DATABASE)", field: "--witness")
        }
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        let mode = parts.queryItems?.first { $0.name == "sslmode" }?.value ?? (loopback ? "disable" : "require")
        let rootCertificates = parts.queryItems?.first { $0.name == "sslrootcert" }?.value
        func client(_ verification: CertificateVerification) throws(AuditError) -> TLSConfiguration {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = verification
            if let rootCertificates {
                do {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(rootCertificates))
                } catch {
                    throw AuditError(.invalidInput, "the database URL's sslrootcert \(rootCertificates) cannot be read as PEM certificates: \(error)",
                                     field: "--witness")
                }
            }
            return tls
        }
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        // libpq's meaning: encrypted, the certificate unchecked unless CA certificates are given.
        case "prefer": tls = .prefer(try client(rootCertificates == nil ? .none : .noHostnameVerification))
        case "require": tls = .require(try client(rootCertificates == nil ? .none : .noHostnameVerification))
        case "verify-ca": tls = .require(try client(.noHostnameVerification))
        case "verify-full": tls = .require(try client(.fullVerification))
        default:
            throw AuditError(.invalidInput, "the database URL's sslmode must be disable, prefer, require, verify-ca or verify-full",
                             field: "--witness")
        }
        configuration = PostgresClient.Configuration(host: host, port: parts.port ?? 5432, username: user,
                                                     password: parts.password, database: database, tls: tls)
        description = "postgresql://\(user)@\(host)\(parts.port.map { ":\($0)" } ?? "")/\(database)"
    }
}

extension AuditError {
    /// A PostgreSQL error as an ``AuditError``: the server's message (which names the rule the
    /// witness refused), never the query's bound values.
    static func witness(_ error: any Error, while doing: String) -> AuditError {
        if let error = error as? AuditError { return error }
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] {
                let state = psql.serverInfo?[.sqlState] ?? ""
                // 42501 insufficient privilege (row-level security, append-only), 23514 a witness check.
                let code: AuditError.Code = state == "42501" ? .permissionDenied : (state.hasPrefix("23") ? .invalidInput : .storage)
                return AuditError(code, "the witness refused to \(doing): \(message)")
            }
            return AuditError(.storage, "cannot \(doing) at the witness: \(psql.code)")
        }
        return AuditError(.storage, "cannot \(doing) at the witness: \(error)")
    }
}
