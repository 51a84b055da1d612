import AuditDB
import Foundation

/// Reads standard input (or any file handle) line by line in 64 KiB chunks, with a bound on the
/// length of one line: memory stays at one line plus one chunk however large the input, and a
/// line over the bound is refused as soon as it passes it, not after the whole input is read.
struct LineReader {
    /// The longest line accepted, in bytes (without its LF). An event's largest field, `details`,
    /// is 64 KiB; even fully \u-escaped it fits.
    static let maximumLineBytes = 1 << 20
    /// The most one read takes.
    static let chunkBytes = 65_536

    private let handle: FileHandle
    private var buffer: [UInt8] = []
    /// What one read(2) fills.
    private var scratch = [UInt8](repeating: 0, count: LineReader.chunkBytes)
    private var start = 0
    private var ended = false
    /// How many bytes from `start` are known to hold no LF (a long line is not searched again
    /// from its start each time a chunk arrives).
    private var searched = 0
    /// The number of the line `next()` returned last (from 1).
    private(set) var lineNumber = 0

    init(_ handle: FileHandle) { self.handle = handle }

    private func tooLong() -> AuditError {
        AuditError(.invalidInput, "line \(lineNumber + 1): longer than \(Self.maximumLineBytes) bytes (no event is that large)",
                   field: "line \(lineNumber + 1)")
    }

    /// Whether the next ``next()`` would wait for the input: no whole line is buffered, and the
    /// handle has no bytes ready (a pipe or terminal whose writer has paused). A regular file is
    /// always ready.
    func inputIsIdle() -> Bool {
        guard !ended else { return false }
        let buffered = buffer.withUnsafeBufferPointer { all -> Bool in
            let from = start + searched
            return from < all.count && memchr(all.baseAddress! + from, 0x0A, all.count - from) != nil
        }
        guard !buffered else { return false }
        var descriptor = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 0
    }

    /// The next line without its LF (a CR before the LF is kept; callers decide), or nil at the end.
    mutating func next() throws -> ArraySlice<UInt8>? {
        while true {
            let from = start + searched
            let found = buffer.withUnsafeBufferPointer { all -> Int? in
                guard from < all.count, let hit = memchr(all.baseAddress! + from, 0x0A, all.count - from) else { return nil }
                return UnsafeRawPointer(hit) - UnsafeRawPointer(all.baseAddress!)
            }
            if let newline = found {
                guard newline - start <= Self.maximumLineBytes else { throw tooLong() }
                let line = buffer[start..<newline]
                start = newline + 1
                searched = 0
                lineNumber += 1
                return line
            }
            searched = buffer.count - start
            if buffer.count - start > Self.maximumLineBytes { throw tooLong() }
            if ended {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                searched = 0
                lineNumber += 1
                return line
            }
            // Drop what was returned before reading more, so the buffer holds at most one line.
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            // read(2), not FileHandle.read(upToCount:), which waits until the count is filled or
            // the input ends: the bytes a paused pipe has delivered must be seen now.
            var got = 0
            repeat {
                got = scratch.withUnsafeMutableBytes { Foundation.read(handle.fileDescriptor, $0.baseAddress!, $0.count) }
            } while got < 0 && errno == EINTR
            if got < 0 { throw AuditError(.storage, "cannot read standard input: \(String(cString: strerror(errno)))") }
            buffer.append(contentsOf: scratch[0..<got])
            if got == 0 { ended = true }
        }
    }
}
