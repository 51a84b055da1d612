public import AuditDB
import Foundation
public import PostgresNIO

/// Where the witness database is: a `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` URL
/// (`postgres://` too), with `?sslmode=disable` (the default on a loopback host), `require` or
/// `prefer`. The password may also come from `PGPASSWORD`-style configuration of your own;
/// it never appears in AuditDB's messages.
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
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-full": tls = .require(.makeClientConfiguration())
        default:
            throw AuditError(.invalidInput, "the database URL's sslmode must be disable, prefer, require or verify-full", field: "--witness")
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
