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

    /// Reads the tokens file: a regular file that only its owner may read or write (mode 0600, as
    /// key files), lines `ACTOR admin|user TOKEN` separated by spaces, tabs or CR (a CRLF file
    /// reads as an LF one), each token at least 16 characters and listed once, and no actor
    /// named `anonymous` (the actor of callers without a valid token).
    static func load(path: String) throws -> TokenTable {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw SettingsError("cannot read the tokens file \(path): \(error.localizedDescription)")
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else {
            throw SettingsError("the tokens file \(path) is not a regular file")
        }
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw SettingsError("the tokens file \(path) has mode \(String(mode, radix: 8)): its tokens are secrets, so no one but its owner may read it; chmod 600 \(path)")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SettingsError("cannot read the tokens file \(path): \(error.localizedDescription)")
        }
        var entries: [(String, Principal)] = []
        var tokens: Set<[UInt8]> = []
        // "\r\n" is one Character to Swift, so it is a line end of its own here.
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            let at = "tokens file \(path), line \(number + 1)"
            guard fields.count == 3, fields[1] == "admin" || fields[1] == "user", fields[2].utf8.count >= 16 else {
                throw SettingsError("\(at): expected `ACTOR admin|user TOKEN` with a token of at least 16 characters")
            }
            // The actor goes into every event of this caller: it must be a valid `actor` (at most
            // 256 bytes, no control characters), or each of its requests would be answered 503.
            guard fields[0].utf8.count <= 256, !fields[0].unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw SettingsError("\(at): the actor is not a valid audit actor (at most 256 bytes of UTF-8, no control characters)")
            }
            guard fields[0] != "anonymous" else {
                throw SettingsError("\(at): `anonymous` is the actor of callers without a valid token; give this caller another name")
            }
            guard tokens.insert(Array(fields[2].utf8)).inserted else {
                throw SettingsError("\(at): this token is already listed on an earlier line; each caller needs a token of its own")
            }
            entries.append((String(fields[2]), Principal(actor: String(fields[0]), isAdmin: fields[1] == "admin")))
        }
        guard !entries.isEmpty else {
            throw SettingsError("the tokens file \(path) lists no caller: every request would be answered 401")
        }
        return TokenTable(entries)
    }

    /// The principal an `Authorization: Bearer TOKEN` header names, or nil (no header, another
    /// scheme, an unknown token). The scheme name is case-insensitive (RFC 9110, 11.1). Every
    /// entry is compared, each in constant time.
    func principal(authorization: String?) -> Principal? {
        guard let authorization, authorization.utf8.count > 7,
              authorization.utf8.prefix(7).map({ $0 | 0x20 }).elementsEqual("bearer ".utf8)
        else { return nil }
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
