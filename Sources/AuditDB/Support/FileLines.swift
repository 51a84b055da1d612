/// Reads a regular file line by line with bounds on the line length, the number of lines and
/// the file's size, all enforced while reading: memory stays at one line plus one 64 KiB chunk
/// whatever the file holds, and a bound is reported as soon as it is passed, not after the whole
/// file was read. (`entries.jsonl` of an export bundle; docs/FORMAT.md section 17.4.)
///
/// A line is the bytes before an LF (the LF is not part of it); bytes after the last LF, if any,
/// are a last line. A CR is an ordinary byte here.
final class FileLines {
    /// Why reading stopped early.
    enum Failure: Error, Equatable {
        /// Line `line` (from 1) is longer than the bound.
        case lineTooLong(line: Int)
        /// The file holds more lines than the bound.
        case tooManyLines
        /// The file grew past its size bound while it was read.
        case tooLarge
        /// `read` failed with this `errno`.
        case unreadable(Int32)
    }

    private let fd: Int32
    private let maxLineBytes: Int
    private let maxLines: Int
    private let maxFileBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the next LF resumes (everything before it in the line has none).
    private var scanned = 0
    private var ended = false
    private var totalRead = 0
    /// The number of the line ``next()`` returned last (from 1).
    private(set) var lineNumber = 0

    /// Opens `path` (a regular file of at most `maxFileBytes`, refused at once otherwise).
    static func open(_ path: String, maxLineBytes: Int, maxLines: Int, maxFileBytes: Int)
        -> Result<FileLines, FileBytes.InputFailure>
    {
        FileBytes.openInput(path, limit: maxFileBytes).map {
            FileLines(fd: $0, maxLineBytes: maxLineBytes, maxLines: maxLines, maxFileBytes: maxFileBytes)
        }
    }

    private init(fd: Int32, maxLineBytes: Int, maxLines: Int, maxFileBytes: Int) {
        self.fd = fd
        self.maxLineBytes = maxLineBytes
        self.maxLines = maxLines
        self.maxFileBytes = maxFileBytes
    }

    deinit { Platform.close(fd) }

    /// The next line (without its LF), or nil at the end of the file.
    func next() throws(Failure) -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                guard newline - start <= maxLineBytes else { throw .lineTooLong(line: lineNumber + 1) }
                return try emit(start..<newline, resumeAt: newline + 1)
            }
            scanned = buffer.count
            if buffer.count - start > maxLineBytes { throw .lineTooLong(line: lineNumber + 1) }
            if ended {
                guard start < buffer.count else { return nil }
                return try emit(start..<buffer.count, resumeAt: buffer.count)
            }
            // Drop the lines already returned before reading more: the buffer holds one line.
            if start > 0 {
                buffer.removeFirst(start)
                scanned -= start
                start = 0
            }
            try fill()
        }
    }

    private func emit(_ range: Range<Int>, resumeAt next: Int) throws(Failure) -> ArraySlice<UInt8> {
        guard lineNumber < maxLines else { throw .tooManyLines }
        lineNumber += 1
        start = next
        scanned = next
        return buffer[range]
    }

    private func fill() throws(Failure) {
        let chunkSize = 65_536
        let old = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: chunkSize))
        while true {
            let n = buffer.withUnsafeMutableBytes { Platform.read(fd, into: $0.baseAddress! + old, count: chunkSize) }
            if n < 0, Platform.errorCode == Platform.interrupted { continue }
            guard n >= 0 else {
                let code = Platform.errorCode
                buffer.removeLast(chunkSize)
                throw .unreadable(code)
            }
            buffer.removeLast(chunkSize - n)
            if n == 0 { ended = true }
            totalRead += n
            if totalRead > maxFileBytes { throw .tooLarge }
            return
        }
    }
}
