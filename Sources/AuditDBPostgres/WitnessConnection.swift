public import AuditDB
import Foundation
public import Logging
public import PostgresNIO
import _ConnectionPoolModule

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
/// Without a password in the URL, the `PGPASSWORD` environment variable is used, as libpq does
/// (prefer it: a URL on the command line is visible to every local user in the process list).
/// The password never appears in AuditDB's messages.
public struct WitnessConnection: Sendable, CustomStringConvertible {
    /// The PostgresNIO configuration.
    public let configuration: PostgresClient.Configuration
    /// The URL without its password, for messages.
    public let description: String
    /// The same settings for one connection without a pool (``check(logger:)``).
    private let single: (host: String, port: Int, user: String, password: String?, database: String, tls: TLSConfiguration?, required: Bool)
    /// The `sslmode` and `sslrootcert` in force, for messages.
    private let sslMode: String, rootCertificates: String?

    /// The port as written in `url`'s authority (after the host, `:` and then anything up to the
    /// path), or nil when none is written.
    static func writtenPort(_ url: String) -> Substring? {
        guard let scheme = url.range(of: "://") else { return nil }
        var authority = url[scheme.upperBound...]
        if let end = authority.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { authority = authority[..<end] }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") { authority = authority[authority.index(after: close)...] }
        guard let colon = authority.firstIndex(of: ":") else { return nil }
        return authority[authority.index(after: colon)...]
    }

    /// The user information as written in `url` (`USER[:PASSWORD]` before the host), or nil.
    static func writtenUserInfo(_ url: String) -> Substring? {
        guard let scheme = url.range(of: "://") else { return nil }
        var authority = url[scheme.upperBound...]
        if let end = authority.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { authority = authority[..<end] }
        guard let at = authority.lastIndex(of: "@") else { return nil }
        return authority[..<at]
    }

    /// The path as written in `url` (`/DATABASE`, up to the settings), or "".
    static func writtenPath(_ url: String) -> Substring {
        guard let scheme = url.range(of: "://") else { return "" }
        var rest = url[scheme.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        guard let slash = rest.firstIndex(of: "/") else { return "" }
        return rest[slash...]
    }

    /// Whether every `%` in `text` starts a `%XX` escape (two hex digits).
    static func isPercentEncoded(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, bytes[index + 1].isHexDigit, bytes[index + 2].isHexDigit else { return false }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

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
        if let port = parts.port, !(1...65535).contains(port) {
            throw AuditError(.invalidInput, "the database URL's port \(port) is not a TCP port (1...65535)", field: "--witness")
        }
        // Foundation reads a port it cannot hold in an Int (2^63 and more), or an empty one, as no
        // port at all, which would mean 5432: another server, possibly someone else's.
        if parts.port == nil, let written = Self.writtenPort(url) {
            throw AuditError(.invalidInput, "the database URL's port \(OutputEscaping.jsonQuoted(String(written.prefix(40)))) is not a TCP port (1...65535)",
                             field: "--witness")
        }
        // A user or password whose percent-encoding is broken (`p%zz`): Foundation takes the `%`
        // literally, libpq refuses the URL. Refuse it too, rather than guess what was meant.
        if let userInfo = Self.writtenUserInfo(url), !Self.isPercentEncoded(userInfo) {
            throw AuditError(.invalidInput, "the database URL's user or password is not valid percent-encoding (write % as %25)", field: "--witness")
        }
        if !Self.isPercentEncoded(Self.writtenPath(url)) {
            throw AuditError(.invalidInput, "the database URL's database name is not valid percent-encoding (write % as %25)", field: "--witness")
        }
        // Each setting at most once, and only those AuditDB reads: a duplicate (libpq keeps the
        // last, a naive reader the first) or a misspelt sslmode must never quietly mean no TLS.
        var settings: [String: String] = [:]
        for item in parts.queryItems ?? [] {
            guard Self.settings.contains(item.name) else {
                throw AuditError(.invalidInput, "the database URL's setting \(OutputEscaping.jsonQuoted(item.name)) is not one AuditDB reads (\(Self.settings.joined(separator: ", ")))",
                                 field: "--witness")
            }
            guard settings[item.name] == nil else {
                throw AuditError(.invalidInput, "the database URL gives \(item.name) more than once; give it once", field: "--witness")
            }
            guard let value = item.value, !value.isEmpty else {
                throw AuditError(.invalidInput, "the database URL's \(item.name) has no value", field: "--witness")
            }
            settings[item.name] = value
        }
        let mode = settings["sslmode"] ?? (Self.isLoopback(host) ? "disable" : "require")
        let rootCertificates = settings["sslrootcert"]
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
        let chosen: TLSConfiguration?
        switch mode {
        case "disable": chosen = nil
        // libpq's meaning: encrypted, the certificate unchecked unless CA certificates are given.
        case "prefer", "require": chosen = try client(rootCertificates == nil ? .none : .noHostnameVerification)
        case "verify-ca": chosen = try client(.noHostnameVerification)
        case "verify-full": chosen = try client(.fullVerification)
        default:
            throw AuditError(.invalidInput, "the database URL's sslmode must be disable, prefer, require, verify-ca or verify-full",
                             field: "--witness")
        }
        let tls: PostgresClient.Configuration.TLS = chosen.map { mode == "prefer" ? .prefer($0) : .require($0) } ?? .disable
        // An IPv6 address is written in brackets in a URL, not in a name lookup.
        let address = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        // Without a password in the URL, PGPASSWORD (as libpq reads it): the password then stays
        // off the command line, where /proc/PID/cmdline shows it to every local user.
        let password = parts.password ?? ProcessInfo.processInfo.environment["PGPASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        configuration = PostgresClient.Configuration(host: address, port: parts.port ?? 5432, username: user,
                                                     password: password, database: database, tls: tls)
        single = (address, parts.port ?? 5432, user, password, database, chosen, mode != "prefer")
        (sslMode, self.rootCertificates) = (mode, rootCertificates)
        description = "postgresql://\(user)@\(host)\(parts.port.map { ":\($0)" } ?? "")/\(database)"
    }
}

extension WitnessConnection {
    /// The host name or address connected to (an IPv6 address without its URL brackets).
    var connectHost: String { single.host }

    /// The URL settings AuditDB reads (as libpq names them).
    static let settings = ["sslmode", "sslrootcert"]

    /// Whether `host` is this machine, where TLS is off unless asked for: `localhost`, or an
    /// IPv4 address 127.x.x.x or IPv6 ::1 written as an address (not a name such as 127.example.com).
    static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "localhost" { return true }
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { $0.elementsEqual([UInt8](repeating: 0, count: 15) + [1]) }
        }
        return false
    }

    /// Opens one connection with these settings — no pool, so a refusal is reported at once with
    /// its cause (a certificate no trusted CA signed, a server without TLS, a role pg_hba.conf
    /// refuses), where a pool would keep retrying — runs `SELECT 1` and closes it.
    /// - Throws: ``AuditError`` `storage` naming the cause, never the password.
    /// - Parameter connectTimeout: How long the connection attempt may take (a server that
    ///   accepts nothing, or a stopped one, fails after it), whole seconds, at least 1.
    public func check(logger: Logger, connectTimeout: Duration = .seconds(10)) async throws {
        let tls: PostgresConnection.Configuration.TLS
        do {
            tls = try single.tls.map { single.required ? .require(try NIOSSLContext(configuration: $0)) : .prefer(try NIOSSLContext(configuration: $0)) }
                ?? .disable
        } catch {
            throw AuditError(.invalidInput, "the TLS settings of \(description) cannot be used: \(error)", field: "--witness")
        }
        var configuration = PostgresConnection.Configuration(host: single.host, port: single.port, username: single.user,
                                                             password: single.password, database: single.database, tls: tls)
        configuration.options.connectTimeout = .seconds(max(1, connectTimeout.components.seconds))
        do {
            let connection = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.any(),
                                                                  configuration: configuration, id: 1, logger: logger).get()
            defer { Task { try? await connection.close() } }  // closing is not part of the check
            _ = try await connection.query("SELECT 1", logger: logger).collect()
        } catch let error as PSQLError {
            if let refusal = certificateRefusal(error.underlying) { throw refusal }
            let cause = error.serverInfo?[.message] ?? error.underlying.map { String(describing: $0) } ?? "\(error.code)"
            throw AuditError(.storage, "cannot connect to \(description): \(cause)\(Self.hint(for: error))")
        } catch {
            if let refusal = certificateRefusal(error) { throw refusal }
            throw AuditError(.storage, "cannot connect to \(description): \(error)")
        }
    }

    /// What to do about the refusals people meet first, as a sentence to append; "" otherwise.
    static func hint(for error: PSQLError) -> String {
        switch error.code {
        case .sslUnsupported:
            return ". The server does not offer TLS: enable it on the server, or add sslmode=disable to the URL on a network you trust"
        case .authMechanismRequiresPassword:
            return ". The server asks for a password: set PGPASSWORD (or put it in the URL, where the process list shows it)"
        case .connectionError:
            return ". Nothing answered there (refused, unreachable or timed out): check that PostgreSQL runs and listens on the URL's host and port"
        default:
            break
        }
        switch error.serverInfo?[.sqlState] {
        case "28P01": return ". Check the role's password (PGPASSWORD, or the URL)"
        case "28000": return ". The server's pg_hba.conf has no entry that lets this role in from here, or the role cannot log in"
        case "3D000": return ". Create the database, or name the right one in the URL"
        default: return ""
        }
    }

    /// `cause` as ``AuditError/Code/certificateRejected`` when it is the TLS handshake refusing
    /// the server's certificate (no trusted CA signed it, or it names another host); else nil.
    func certificateRefusal(_ cause: (any Error)?) -> AuditError? {
        let why: String, fix: String
        switch cause {
        case let error as NIOSSLError:
            guard case .handshakeFailed = error, "\(error)".contains("CERTIFICATE_VERIFY_FAILED") else { return nil }
            why = "no CA it trusts signed it"
            fix = rootCertificates.map { "check that \($0) holds the CA that signed the server's certificate (PEM)" }
                ?? "add sslrootcert=PATH to the URL, PATH a PEM file of the CA that signed the server's certificate"
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            why = "it was not issued for \(single.host)"
            fix = "connect with a host name the certificate names, or use sslmode=verify-ca (the CA is checked, not the name)"
        default:
            return nil
        }
        let trusted = rootCertificates.map { "sslrootcert=\($0)" } ?? "the system's CA certificates"
        let detail = cause.map { " (\($0))" } ?? ""
        return AuditError(.certificateRejected,
                          "the TLS certificate of \(single.host):\(single.port) failed verification (sslmode=\(sslMode), trusting \(trusted)): "
                          + "\(why)\(detail). To fix it: \(fix); or, to encrypt without checking the certificate, use sslmode=require without sslrootcert")
    }
}

extension AuditError {
    /// The SQLSTATE and message PostgreSQL sent with `error`, if it is (or wraps, in a
    /// transaction) a server error.
    static func serverError(_ error: any Error) -> (state: String, message: String)? {
        if let transaction = error as? PostgresTransactionError,
           let cause = transaction.closureError ?? transaction.beginError ?? transaction.commitError
        {
            return serverError(cause)
        }
        guard let psql = error as? PSQLError, let message = psql.serverInfo?[.message] else { return nil }
        return (psql.serverInfo?[.sqlState] ?? "", message)
    }

    /// A PostgreSQL error as an ``AuditError``: the server's message (which names the rule the
    /// witness refused), never the query's bound values.
    static func witness(_ error: any Error, while doing: String) -> AuditError {
        if let error = error as? AuditError { return error }
        // The pool gives up on a server it could not connect to for a minute (PostgresNIO's
        // circuit breaker): say that, not the breaker's name.
        if let pool = error as? ConnectionPoolError {
            switch pool {
            case .connectionCreationCircuitBreakerTripped:
                return AuditError(.storage, "cannot \(doing) at the witness: no connection to PostgreSQL could be made for a minute (the server is stopped, restarting or unreachable, or refuses this role); check the server and the URL (`auditdb-fleet` commands check the connection first), then run again")
            case .poolShutdown:
                return AuditError(.storage, "cannot \(doing) at the witness: its connection pool was shut down (the process is stopping, or a stalled round's connections were replaced); run again")
            default:
                return AuditError(.storage, "cannot \(doing) at the witness: the request for a connection was cancelled")
            }
        }
        // A transaction's error: what failed inside it (the statement, or BEGIN or COMMIT).
        if let transaction = error as? PostgresTransactionError,
           let cause = transaction.closureError ?? transaction.beginError ?? transaction.commitError
        {
            return witness(cause, while: doing)
        }
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] {
                let state = psql.serverInfo?[.sqlState] ?? ""
                // 42501 insufficient privilege (row-level security, append-only), 23514 a witness check.
                let code: AuditError.Code = state == "42501" ? .permissionDenied : (state.hasPrefix("23") ? .invalidInput : .storage)
                // 42P01 undefined table, 3F000 undefined schema: a database without AuditDB's schema.
                let hint = state == "42P01" || state == "3F000"
                    ? ". This database has no AuditDB witness schema (or not all of it): run `auditdb-fleet install-schema` as the witness owner, or check the database name in the URL"
                    : ""
                return AuditError(code, "the witness refused to \(doing): \(message)\(hint)")
            }
            return AuditError(.storage, "cannot \(doing) at the witness: \(psql.code)")
        }
        return AuditError(.storage, "cannot \(doing) at the witness: \(error)")
    }
}

private extension UInt8 {
    var isHexDigit: Bool { (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self) }
}
