import CAuditCore

/// What the `details` column holds once JSON paths inside it were erased (FORMAT.md section
/// 21.7): the erased paths and the *residual*, the stored details text with those members
/// removed, as `{"erased":[PATH,…],"residual":OBJECT}`.
///
/// Erasing a path destroys the whole details commitment's nonce (seals bit 2), exactly as erasing
/// `details` whole does, so the removed values cannot be confirmed by anyone, key holders included.
/// The residual is then no longer covered by the row's MAC; it is authenticated by the signed
/// erasure entry instead, which records `RESIDUAL_HASH` (``hash(seq:text:)``) of this column text.
struct ErasedDetails: Sendable, Hashable {
    /// At most this many paths per erasure (the erasure entry's size, FORMAT.md 21.7).
    static let maximumPathsPerErasure = 16
    /// At most this many erased paths in one row, over all its erasures.
    static let maximumPaths = 256
    /// The longest path, in UTF-8 bytes (`details.` included).
    static let maximumPathBytes = 256
    /// The column text: at most `details`' own limit plus room for the paths, one level deeper.
    static let limits = JSONLimits(maxBytes: FieldLimits.details + 8_192, maxDepth: FieldLimits.detailsDepth + 1)

    /// The erased paths (`details.email`), sorted (``MaskPath``), distinct, none inside another.
    let paths: [MaskPath]
    /// The details text with the members of ``paths`` removed; every other byte as stored.
    let residual: String

    /// The column text, in the canonical form of FORMAT.md 21.7.
    var text: String {
        "{\"erased\":[" + paths.map { OutputEscaping.jsonQuoted($0.description) }.joined(separator: ",") + "],\"residual\":" + residual + "}"
    }

    /// RESIDUAL_HASH = SHA256("ADB2RESD" || i64(seq) || the column text's UTF-8 bytes): what the
    /// erasure entry records for the row, so that verification detects any change to it.
    static func hash(seq: Int64, text: String) -> [UInt8] {
        ExportStatement.sha256(Array("ADB2RESD".utf8) + ExportStatement.bigEndian(UInt64(bitPattern: seq), 8) + Array(text.utf8))
    }

    /// Why a column text is not an erased-details text.
    struct Unreadable: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    init(paths: [MaskPath], residual: String) {
        self.paths = paths
        self.residual = residual
    }

    /// Reads a partially erased row's `details` column (strictly: exactly `erased` and `residual`).
    init(reading text: String) throws(Unreadable) {
        var copy = text
        let parsed: Result<JSONDocument, JSONError> = copy.withUTF8 { bytes in
            Result { () throws(JSONError) in try JSONReader.readObject(bytes, limits: Self.limits, validUTF8: true) }
        }
        let document: JSONDocument
        switch parsed {
        case .success(let d): document = d
        case .failure(let error): throw Unreadable("its details are not valid JSON (\(error))")
        }
        guard document.members.storage.count == 2, let names = document.members["erased"]?.elements,
              case .object = document.members["residual"], let range = document.valueRanges[JSONObject.Key("residual")]
        else { throw Unreadable("its details are not {\"erased\":[PATH,…],\"residual\":{…}}") }
        var paths: [MaskPath] = []
        for name in names {
            guard let string = name.text, let path = try? MaskPath(parsing: string), path.field == .details, !path.members.isEmpty,
                  string.utf8.count <= Self.maximumPathBytes, paths.last.map({ $0 < path }) ?? true,
                  !paths.contains(where: { $0.covers(path) })  // every earlier path, as in ErasureRecord
            else { throw Unreadable("its erased paths are not distinct details.KEY paths in order, none inside another") }
            paths.append(path)
        }
        guard !paths.isEmpty, paths.count <= Self.maximumPaths else { throw Unreadable("it names no erased path, or more than \(Self.maximumPaths)") }
        self.init(paths: paths, residual: String(decoding: Array(text.utf8)[range], as: UTF8.self))
    }

    /// `details` (the stored text, or an erased-details text of earlier erasures) with the members
    /// at `paths` removed, and which of them were there; nil when none of them is there (nothing
    /// to erase). The paths must be `details.KEY…` paths, none inside another.
    static func erasing(_ paths: [MaskPath], from details: String, before: ErasedDetails?) throws(AuditError) -> (details: ErasedDetails, removed: [MaskPath])? {
        var bytes = Array((before?.residual ?? details).utf8)
        var removed: [MaskPath] = []
        for path in paths.sorted() {
            let ranges: [Int: Range<Int>]
            do {
                ranges = try bytes.withUnsafeBufferPointer { buffer throws(JSONError) in
                    try JSONReader.memberRanges(of: [path.members], in: buffer, limits: .details)
                }
            } catch {
                throw AuditError(.storage, "the stored details cannot be read as JSON (\(error)); run `auditdb verify`")
            }
            guard let member = ranges[0] else { continue }
            bytes.removeSubrange(removalRange(of: member, in: bytes))
            removed.append(path)
        }
        guard !removed.isEmpty else { return nil }
        let all = Set((before?.paths ?? []) + removed)
        let kept = all.filter { path in !all.contains { $0 != path && $0.covers(path) } }.sorted()
        guard kept.count <= maximumPaths else {
            throw AuditError(.invalidInput, "a row may have at most \(maximumPaths) erased paths; erase details whole instead", field: "fields")
        }
        return (ErasedDetails(paths: kept, residual: String(decoding: bytes, as: UTF8.self)), removed)
    }

    /// The bytes to remove for one member `"key":value`: with the comma after it (and the space up
    /// to the next key), or, for the last member of its object, with the comma before it.
    private static func removalRange(of member: Range<Int>, in bytes: [UInt8]) -> Range<Int> {
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        var after = member.upperBound
        while after < bytes.count, isSpace(bytes[after]) { after += 1 }
        if after < bytes.count, bytes[after] == UInt8(ascii: ",") {
            after += 1
            while after < bytes.count, isSpace(bytes[after]) { after += 1 }
            return member.lowerBound..<after
        }
        var before = member.lowerBound
        while before > 0, isSpace(bytes[before - 1]) { before -= 1 }
        if before > 0, bytes[before - 1] == UInt8(ascii: ",") { return (before - 1)..<member.upperBound }
        return member.lowerBound..<member.upperBound
    }

    /// The erased paths that `residual` holds again (a value put back): a tampering finding.
    func restoredPaths(_ paths: some Collection<MaskPath>) -> [MaskPath] {
        let bytes = Array(residual.utf8)
        let targets = paths.sorted()
        // Only names what changed: a residual that does not parse differs from the recorded one,
        // which the caller reports already.
        guard let found = try? bytes.withUnsafeBufferPointer({ buffer throws(JSONError) in
            try JSONReader.memberRanges(of: targets.map(\.members), in: buffer, limits: .details)
        }) else { return [] }
        return found.keys.sorted().map { targets[$0] }
    }
}
