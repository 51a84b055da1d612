import AuditDB
import Foundation

/// ArgumentParser's error and usage text, made safe for standard error by both tools.
///
/// The text spans lines on purpose (the usage), and it echoes arguments as given, newlines and
/// escape sequences included. Each argument that holds a character to escape (and the value of
/// `--name=value`) is taken out first, each line is escaped, and the arguments go back escaped
/// on their own (``OutputEscaping/escapeForMessage(_:)``): an echoed value can neither forge a
/// line nor repaint the terminal, and the usage keeps its lines.
public enum UsageMessage {
    /// `message` with `arguments` (the command line) escaped where it echoes them.
    public static func escaped(_ message: String, arguments: [String]) -> String {
        var values: [String] = []
        for argument in arguments {
            values.append(argument)
            if argument.hasPrefix("-"), let equals = argument.firstIndex(of: "=") { values.append(String(argument[argument.index(after: equals)...])) }
        }
        let risky = Set(values.filter { $0.unicodeScalars.contains { OutputEscaping.escapeForMessage(String($0)) != String($0) } })
            .sorted { $0.unicodeScalars.count > $1.unicodeScalars.count }  // longest first: one may hold another
        var text = message
        var placeholders: [(String, String)] = []
        for (n, value) in risky.enumerated() where text.contains(value) {
            let placeholder = "\u{E000}\(n)\u{E001}"
            guard !message.contains(placeholder) else { continue }
            text = text.replacingOccurrences(of: value, with: placeholder)
            placeholders.append((placeholder, OutputEscaping.escapeForMessage(value)))
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { OutputEscaping.escapeForMessage(String($0)) }
        for index in lines.indices {
            for (placeholder, value) in placeholders { lines[index] = lines[index].replacingOccurrences(of: placeholder, with: value) }
        }
        return lines.joined(separator: "\n")
    }
}
