public import ArgumentParser
import AuditDB

/// Refuses `help` followed by a name that is not a command.
///
/// ArgumentParser's built-in `help` stops at the first word it does not know and prints the help
/// of the command before it, exit 0: `auditdb help nosuch` printed the root help and succeeded,
/// so a script that asked for a command this version lacks (or misspelled one) could not tell.
public enum HelpTopic {
    /// Why `arguments` (without the executable) may not run, or nil: only when the first is
    /// `help` and a later word that is not an option names no subcommand of the one before it.
    public static func problem(_ root: any ParsableCommand.Type, _ arguments: [String]) -> String? {
        guard arguments.first == "help" else { return nil }
        let words = arguments.dropFirst().prefix { $0 != "--" }.filter { !$0.hasPrefix("-") }
        guard !words.isEmpty, let tree = CommandTree.dump(root) else { return nil }
        var path = [tree.name]
        var command = tree
        for word in words {
            guard let sub = command.subcommands.first(where: { $0.name == word }) else {
                let known = command.subcommands.map(\.name).filter { $0 != "help" }
                let named = path.joined(separator: " ")
                let helpCommand = ([tree.name, "help"] + path.dropFirst()).joined(separator: " ")
                guard !known.isEmpty else {
                    return "`\(named)` has no subcommands (\(OutputEscaping.jsonQuoted(word)) is not one); run `\(helpCommand)` for its help"
                }
                return "`\(named)` has no command \(OutputEscaping.jsonQuoted(word)); its commands are: \(known.joined(separator: ", ")). Run `\(helpCommand)` for the list"
            }
            path.append(word)
            command = sub
        }
        return nil
    }
}
