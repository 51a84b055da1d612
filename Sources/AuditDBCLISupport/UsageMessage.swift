import AuditDB
import Foundation

/// ArgumentParser's error and usage text, made safe for standard error by both tools.
///
/// The full text is `Error: MESSAGE`, a line break, then help and usage lines that ArgumentParser
/// builds from the command's definition. Only MESSAGE echoes what was typed (an unknown option, a
/// bad value), newlines and escape sequences included: it is escaped as one piece
/// (``OutputEscaping/escapeForMessage(_:)``, a newline as `\u{A}`), so nothing typed can start a
/// line of its own, and the usage around it keeps its lines (each escaped too).
public enum UsageMessage {
    /// `full` (`fullMessage(for:)`) with `message` (`message(for:)`, the part that echoes
    /// arguments) escaped as one piece, and every other line escaped on its own.
    public static func escaped(_ full: String, message: String) -> String {
        func lines(_ text: Substring) -> String {
            text.split(separator: "\n", omittingEmptySubsequences: false).map { OutputEscaping.escapeForMessage(String($0)) }
                .joined(separator: "\n")
        }
        guard !message.isEmpty, let range = full.range(of: message) else {
            // No brief message inside the full text (not expected): the whole text as one piece
            // is safe, at the cost of the usage's line breaks.
            return OutputEscaping.escapeForMessage(full)
        }
        return lines(full[..<range.lowerBound]) + OutputEscaping.escapeForMessage(message) + lines(full[range.upperBound...])
    }
}
