import Foundation

/// Who a request acts as: the actor recorded in the audit log, and whether it may delete.
struct Principal: Sendable, Hashable {
    let actor: String
    let isAdmin: Bool
}

/// Bearer tokens and the principals they stand for, from a file of lines `ACTOR ROLE TOKEN`
/// (`ROLE` is `admin` or `user`; `#` starts a comment). A stand-in for a real identity provider:
/// the point of the example is what gets audited, not how callers are authenticated.
///
/// Tokens are secrets: they are compared in constant time and never logged or recorded.
struct TokenTable: Sendable {
    private let entries: [(token: [UInt8], principal: Principal)]

    init(_ entries: [(token: String, principal: Principal)]) {
        self.entries = entries.map { (Array($0.token.utf8), $0.principal) }
    }

    static func load(path: String) throws -> TokenTable {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SettingsError("cannot read the tokens file \(path): \(error.localizedDescription)")
        }
        var entries: [(String, Principal)] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            guard fields.count == 3, fields[1] == "admin" || fields[1] == "user", fields[2].utf8.count >= 16 else {
                throw SettingsError("tokens file \(path), line \(number + 1): expected `ACTOR admin|user TOKEN` with a token of at least 16 characters")
            }
            entries.append((String(fields[2]), Principal(actor: String(fields[0]), isAdmin: fields[1] == "admin")))
        }
        return TokenTable(entries)
    }

    /// The principal an `Authorization: Bearer TOKEN` header names, or nil (no header, another
    /// scheme, an unknown token). Every entry is compared, each in constant time.
    func principal(authorization: String?) -> Principal? {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return nil }
        let presented = Array(authorization.utf8.dropFirst(7))
        var found: Principal?
        for entry in entries where Self.constantTimeEqual(entry.token, presented) {
            found = entry.principal
        }
        return found
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
