import CAuditCore

/// Reading a line of either format, and step 6 of a v2 bundle: `multiproof.bin`, the one proof of
/// every entry (FORMAT.md section 17.5).
extension ExportBundle {
    /// A line of `entries.jsonl` read strictly: an object (v1) or an array (v2).
    enum ParsedLine {
        case v1(JSONObject)
        case v2([JSON])

        /// The entry's seq: the integer `seq` member (v1) or first element (v2).
        var seq: Int64? {
            switch self {
            case .v1(let object): object["seq"]?.integer
            case .v2(let elements): elements.first?.integer
            }
        }
    }

    static func parseLine(_ line: ArraySlice<UInt8>, format: Format) -> Result<ParsedLine, JSONError> {
        line.withUnsafeBufferPointer { bytes in
            Result { () throws(JSONError) in
                switch format {
                case .v1: .v1(try JSONReader.readObject(bytes, limits: .bundleEntry).members)
                case .v2: .v2(try JSONReader.readArray(bytes, limits: .bundleEntry))
                }
            }
        }
    }

    /// Checks `multiproof.bin` against the leaves of every listed entry (32 bytes each, in the
    /// order of `seqs`): its size first (a whole number of hashes, exactly as many as MP needs),
    /// then the root it leads to. Nil when it leads to the checkpoint's root.
    static func checkMultiproof(_ directory: String, seqs: [Int64], leaves: [UInt8], checkpoint: Checkpoint) -> EntryProblem? {
        let indices = seqs.map { $0 - 1 }
        let expected = MerkleTree.multiproofCount(indices: indices, size: checkpoint.seq)
        let fd: Int32
        switch FileBytes.openInput(directory + "/" + multiproofFile, limit: maximumMultiproofBytes) {
        case .failure(let failure):
            return EntryProblem(.bundleMalformed, describe(failure, multiproofFile, limit: maximumMultiproofBytes))
        case .success(let opened):
            fd = opened
        }
        defer { Platform.close(fd) }
        let size = Platform.status(of: fd).map { Int64($0.size) } ?? -1
        guard size >= 0 else { return EntryProblem(.bundleMalformed, "\(multiproofFile) could not be read") }
        guard size % 32 == 0 else {
            return EntryProblem(.proofInvalid, "\(multiproofFile) is \(size) bytes, not a whole number of 32-byte hashes")
        }
        guard size / 32 == expected else {
            return EntryProblem(.proofInvalid, "\(multiproofFile) holds \(size / 32) hashes; the \(seqs.count) entries in a tree of \(checkpoint.seq) leaves need exactly \(expected) (hashes were added or removed)")
        }
        guard !seqs.isEmpty else { return nil }
        let reader = HashReader(fd: fd)
        let root = MerkleTree.multiproofRoot(indices: indices, size: checkpoint.seq, leaves: leaves, next: reader.next(into:))
        if reader.failed { return EntryProblem(.bundleMalformed, "\(multiproofFile) could not be read") }
        guard let root, reader.atEnd() else {
            return EntryProblem(.proofInvalid, "\(multiproofFile) changed while it was read")
        }
        guard adb_ct_equal(root, checkpoint.merkleRoot, 32) == 1 else {
            return EntryProblem(.proofInvalid, "the entries and \(multiproofFile) do not lead to the Merkle root of the checkpoint at seq \(checkpoint.seq): an entry's value, the commitment of a withheld or erased field, or a hash of \(multiproofFile) was changed")
        }
        return nil
    }

    /// Reads 32-byte hashes from a file in 64 KiB chunks: memory stays at one chunk whatever the
    /// multiproof holds.
    private final class HashReader {
        private let fd: Int32
        private var buffer = [UInt8](repeating: 0, count: 65_536)
        private var filled = 0
        private var position = 0
        private(set) var failed = false

        init(fd: Int32) { self.fd = fd }

        /// Fills the buffer after what is left; false at the end of the file or on an error.
        private func fill() -> Bool {
            if position > 0 {
                buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: filled - position) }
                filled -= position
                position = 0
            }
            while true {
                let n = buffer.withUnsafeMutableBytes { Platform.read(fd, into: $0.baseAddress! + filled, count: $0.count - filled) }
                if n < 0, Platform.errorCode == Platform.interrupted { continue }
                guard n > 0 else {
                    if n < 0 { failed = true }
                    return false
                }
                filled += n
                return true
            }
        }

        /// Copies the next hash to `out`; false when the file ends first.
        func next(into out: UnsafeMutablePointer<UInt8>) -> Bool {
            while filled - position < 32 {
                guard fill() else { return false }
            }
            buffer.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + position, count: 32) }
            position += 32
            return true
        }

        /// Whether nothing follows the hashes read.
        func atEnd() -> Bool { filled == position && !fill() && !failed }
    }
}
