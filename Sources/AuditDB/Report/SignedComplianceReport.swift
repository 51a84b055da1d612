import CAuditCore
import Foundation

/// A compliance report and its Ed25519 signature (docs/FORMAT.md section 23): `report.json` (the
/// exact bytes signed, through their SHA-256), `report.sig` (the signature document) and
/// `report.txt` (a rendering for people, not signed).
public struct SignedComplianceReport: Sendable, Hashable {
    /// The bytes of `report.json`.
    public let json: [UInt8]
    /// The readable rendering (`report.txt`), derived from the same facts; not signed.
    public let text: String
    /// The store the report is about.
    public let storeID: StoreID
    /// When the report was made (its `createdAt`).
    public let createdAt: AuditTimestamp
    /// The checkpoint key version that signed it.
    public let keyVersion: UInt32
    /// That key's Ed25519 public key (32 bytes).
    public let publicKey: [UInt8]
    /// The Ed25519 signature of ``message`` (64 bytes).
    public let signature: [UInt8]
    /// Whether the verification the report ran found the store intact (`verification.intact`).
    public let storeIntact: Bool
    /// The seq of the access entry that records the report in the log (nil for a report read
    /// back from files).
    public private(set) var accessSeq: Int64?

    func recorded(at seq: Int64) -> SignedComplianceReport {
        var copy = self
        copy.accessSeq = seq
        return copy
    }

    static let magic = Array("ADB1RPRT".utf8)
    static let signatureFormat = "auditdb-report-signature v1"
    /// The files of a report directory.
    public static let reportFile = "report.json", signatureFile = "report.sig", textFile = "report.txt"
    /// The largest `report.json` read back (16 MiB).
    static let maximumReportBytes = 16 << 20
    /// The largest `report.sig` (a signed document, FORMAT.md 18.4).
    static let maximumSignatureBytes = 65_536

    /// The 100 signed bytes (RPRT_MSG): `"ADB1RPRT" || store_id || SHA-256(report.json) ||
    /// i64(created_at) || u32(key_version) || public_key`.
    public var message: [UInt8] {
        var out = Self.magic + storeID.bytes + ExportStatement.sha256(json)
        withUnsafeBytes(of: createdAt.microsecondsSinceEpoch.bigEndian) { out += $0 }
        withUnsafeBytes(of: keyVersion.bigEndian) { out += $0 }
        return out + publicKey
    }

    static func sign(_ json: [UInt8], text: String, storeID: StoreID, createdAt: AuditTimestamp, storeIntact: Bool,
                     key: CheckpointSigningKey) -> SignedComplianceReport
    {
        let unsigned = SignedComplianceReport(json: json, text: text, storeID: storeID, createdAt: createdAt, keyVersion: key.version,
                                              publicKey: key.publicKey.bytes, signature: [], storeIntact: storeIntact)
        return SignedComplianceReport(json: json, text: text, storeID: storeID, createdAt: createdAt, keyVersion: key.version,
                                      publicKey: key.publicKey.bytes, signature: key.sign(unsigned.message), storeIntact: storeIntact)
    }

    /// `report.sig`: one JSON object in canonical form (section 18.6), then LF.
    var signatureDocument: [UInt8] {
        var out = "{\"format\":\"\(Self.signatureFormat)\",\"storeId\":\"\(storeID.hex)\""
        out += ",\"reportSha256\":\"\(Hex.encode(ExportStatement.sha256(json)))\",\"createdAt\":\(createdAt.microsecondsSinceEpoch)"
        out += ",\"keyVersion\":\(keyVersion),\"publicKey\":\"\(Hex.encode(publicKey))\",\"signature\":\"\(Hex.encode(signature))\"}\n"
        return Array(out.utf8)
    }

    /// Writes `report.json`, `report.sig` and `report.txt` into `directory` (created with mode
    /// 0700 if missing), each a new file with mode 0644, synced; never overwrites.
    public func write(to directory: String) throws(AuditError) {
        if try Self.checkDestination(directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw AuditError(.storage, "cannot create the report directory \(directory): \(error)")
            }
        }
        for (name, bytes) in [(Self.reportFile, json), (Self.signatureFile, signatureDocument), (Self.textFile, Array(text.utf8))] {
            try SecretFile.write(bytes, to: (directory.hasSuffix("/") ? directory : directory + "/") + name, mode: 0o644, replacing: false, what: "report file", field: "--out")
        }
    }

    /// Checks that `directory` can take a report: it does not exist and its parent is a writable
    /// directory, or it is an empty directory (not a symbolic link). Returns whether it must be
    /// created. Call it before ``AuditStore/complianceReport(signer:options:)`` (as `auditdb
    /// report` does), so that a report that could not be written leaves no access entry.
    /// - Throws: ``AuditError`` `invalidInput` saying what is in the way.
    @discardableResult
    public static func checkDestination(_ directory: String) throws(AuditError) -> Bool {
        guard !directory.isEmpty else {
            throw AuditError(.invalidInput, "the report directory is empty; name a new directory (or an empty one)", field: "--out")
        }
        var info = stat()
        if lstat(directory, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                let what = info.st_mode & S_IFMT == S_IFLNK ? "a symbolic link" : "not a directory"
                throw AuditError(.invalidInput, "\(directory) exists and is \(what); a report goes to a new directory or an empty one", field: "--out")
            }
            let entries: [String]
            do {
                entries = try FileManager.default.contentsOfDirectory(atPath: directory)
            } catch {
                throw AuditError(.invalidInput, "\(directory) cannot be read: \(error)", field: "--out")
            }
            guard entries.isEmpty else {
                throw AuditError(.invalidInput, "\(directory) is not empty (it holds \(entries.sorted().first!)\(entries.count > 1 ? " and \(entries.count - 1) more" : "")); a report goes to a new directory or an empty one", field: "--out")
            }
            guard access(directory, W_OK) == 0 else {
                throw AuditError(.invalidInput, "\(directory) is not writable", field: "--out")
            }
            return false
        }
        let parent = URL(fileURLWithPath: directory).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue, access(parent, W_OK) == 0 else {
            throw AuditError(.invalidInput, "\(directory) cannot be created: its parent \(parent) is not a writable directory", field: "--out")
        }
        return true
    }

    /// What checking a report directory found.
    public enum Verdict: Sendable, Hashable {
        /// The signature verifies under a trusted key and `report.json` is a well-formed report
        /// of the store and time the signature names.
        case valid(storeID: StoreID, createdAt: AuditTimestamp, keyVersion: UInt32)
        /// It does not; the reason says exactly why.
        case invalid(String)
    }

    /// Checks the report in `directory` as an outsider would: `report.sig` strictly read,
    /// SHA-256 of `report.json` equal to its `reportSha256`, the signature valid under the key
    /// of its version in `publicKeys` (and that key equal to its `publicKey`), and `report.json` a
    /// strict JSON object whose `format`, `storeId` and `createdAt` match. `report.txt` is not
    /// checked (it is not signed).
    ///
    /// A file of the report that is missing, not a regular file, larger than its bound (16 MiB,
    /// 64 KiB for `report.sig`) or unreadable makes the report invalid, named first (`report.sig`
    /// before `report.json`).
    ///
    /// - Throws: ``AuditError`` `invalidInput` if `directory` is empty or not a directory.
    public static func verify(at directory: String, publicKeys: CheckpointPublicKeys) throws(AuditError) -> Verdict {
        var isDirectory: ObjCBool = false
        guard !directory.isEmpty, FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AuditError(.invalidInput, "no report directory at \(OutputEscaping.jsonQuoted(directory)): give the directory that holds report.json and report.sig")
        }
        let signatureBytes: [UInt8], json: [UInt8]
        switch FileBytes.readBounded(directory + "/" + signatureFile, limit: maximumSignatureBytes) {
        case .failure(let failure): return .invalid(failure.describe(signatureFile, limit: maximumSignatureBytes))
        case .success(let bytes): signatureBytes = bytes
        }
        switch FileBytes.readBounded(directory + "/" + reportFile, limit: maximumReportBytes) {
        case .failure(let failure): return .invalid(failure.describe(reportFile, limit: maximumReportBytes))
        case .success(let bytes): json = bytes
        }
        let sig: JSONObject
        do {
            sig = try JSONReader.readObject(signatureBytes, limits: .signedDocument).members
        } catch {
            return .invalid("\(signatureFile): \(error)")
        }
        if let unknown = sig.firstKey(notIn: ["format", "storeId", "reportSha256", "createdAt", "keyVersion", "publicKey", "signature"]) {
            return .invalid("\(signatureFile): the member \(OutputEscaping.jsonQuoted(unknown)) is not one of a report signature's")
        }
        func hex(_ name: String, _ count: Int) -> [UInt8]? {
            guard let text = sig[name]?.text, let bytes = Hex.decodeLowercase(text), bytes.count == count else { return nil }
            return bytes
        }
        guard sig["format"]?.text == signatureFormat else { return .invalid("\(signatureFile): format is not \"\(signatureFormat)\"") }
        guard let storeBytes = hex("storeId", 16), let reportHash = hex("reportSha256", 32), let publicKey = hex("publicKey", 32),
              let signature = hex("signature", 64)
        else { return .invalid("\(signatureFile): storeId, reportSha256, publicKey or signature is not lowercase hex of the right length") }
        guard let created = sig["createdAt"]?.integer, let version = sig["keyVersion"]?.integer, let keyVersion = UInt32(exactly: version)
        else { return .invalid("\(signatureFile): createdAt or keyVersion is not an integer in range") }
        guard ExportStatement.sha256(json) == reportHash else {
            return .invalid("\(reportFile) is not the report that was signed (its SHA-256 differs from reportSha256)")
        }
        guard let trusted = publicKeys.key(version: keyVersion) else {
            return .invalid("signed with checkpoint key version \(keyVersion), which the public key file does not hold")
        }
        guard trusted.bytes == publicKey else {
            return .invalid("signed with a key that is not the trusted checkpoint key version \(keyVersion)")
        }
        let storeID = StoreID(bytes: storeBytes), createdAt = AuditTimestamp(microsecondsSinceEpoch: created)
        let report = SignedComplianceReport(json: json, text: "", storeID: storeID, createdAt: createdAt, keyVersion: keyVersion,
                                            publicKey: publicKey, signature: signature, storeIntact: false)
        guard trusted.isValidSignature(signature, of: report.message) else { return .invalid("the signature does not verify") }
        let body: JSONObject
        do {
            body = try JSONReader.readObject(json, limits: JSONLimits(maxBytes: maximumReportBytes, maxDepth: 16)).members
        } catch {
            return .invalid("\(reportFile): \(error)")
        }
        guard body["format"]?.text.map(ReportBody.readableFormats.contains) == true, body["storeId"]?.text == storeID.hex, body["createdAt"]?.integer == created
        else { return .invalid("\(reportFile): its format, storeId or createdAt is not the one the signature names") }
        return .valid(storeID: storeID, createdAt: createdAt, keyVersion: keyVersion)
    }
}
