import Foundation

/// Writes to standard output and standard error without ever trapping.
///
/// `FileHandle.write(_:)` (the non-throwing one) stops the process with a fatal error when the
/// write fails: a full disk (`> /dev/full`), a closed descriptor (`>&-`), a reader gone while
/// SIGPIPE is ignored (systemd's default, Python's subprocess). A command that had already
/// committed an append would then die as if it had crashed, and a caller that retries would
/// append twice. Here a failed write to standard output is an error the command reports (exit
/// 2, saying that what it committed stays), and a failed write to standard error is dropped:
/// there is nowhere left to say it.
public enum StandardStreams {
    /// Fills a closed standard descriptor (0, 1 or 2) with `/dev/null` opened read-only, before
    /// the command opens any file.
    ///
    /// Run with `>&-`, the first file the command opened (a key file, an export's entries, an
    /// anchor) would get descriptor 1, and its report lines would be written into that file.
    /// Read-only, a write to it fails (`EBADF`) and is reported like any failed write to
    /// standard output.
    ///
    /// It also ignores SIGPIPE: a reader that goes away (`| head -1`) must make a write fail
    /// with `EPIPE`, which the command reports (what it committed, where to resume) and exits
    /// with its documented status, instead of killing the process silently (status 141) between
    /// a commit and the line that reports it.
    public static func reserveStandardDescriptors() {
        signal(SIGPIPE, SIG_IGN)
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = open("/dev/null", O_RDONLY)
            if opened >= 0 && opened != fd {
                // Not the lowest free descriptor (another thread opened one meanwhile): move it.
                _ = dup2(opened, fd)
                _ = close(opened)
            }
        }
    }

    /// Writes all of `text` to standard output.
    /// - Throws: ``OutputError`` if it cannot.
    public static func output(_ text: String) throws(OutputError) {
        do {
            try FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
        } catch {
            throw OutputError(error)
        }
    }

    /// Writes all of `text` to standard error; a failure is dropped (see the type's discussion).
    public static func error(_ text: String) {
        do {
            try FileHandle.standardError.write(contentsOf: Data(text.utf8))
        } catch {
            // Standard error itself cannot be written: the exit status is all that is left.
        }
    }

    /// Standard output could not be written.
    public struct OutputError: Error, Sendable, CustomStringConvertible {
        /// What the system said.
        public let reason: String

        init(_ error: any Error) {
            // Foundation wraps the system's error (ENOSPC, EPIPE, EBADF) in a Cocoa one whose
            // own text says little ("error 512"): name the system's.
            let wrapped = error as NSError
            let underlying = (wrapped.userInfo[NSUnderlyingErrorKey] as? NSError) ?? wrapped
            if underlying.domain == NSPOSIXErrorDomain, let code = Int32(exactly: underlying.code) {
                reason = String(cString: strerror(code))
            } else {
                reason = wrapped.localizedDescription
            }
        }

        /// What happened and what it means for the command's work.
        public var description: String {
            "cannot write standard output (\(reason)): the rest of the command's output was lost (whatever it had committed to the store stays committed)"
        }
    }
}
