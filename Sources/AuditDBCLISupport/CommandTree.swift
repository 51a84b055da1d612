import ArgumentParser
import Foundation

/// A tool's command tree as ArgumentParser declares it: each command's name, long options and
/// subcommands, read from ArgumentParser's help dump (built in-process, only when a check needs
/// it), so the checks that walk a command line (``RepeatedOptions``, ``HelpTopic``) cannot drift
/// from the commands' own declarations.
enum CommandTree {
    struct Declared {
        var kind: String
        var repeating: Bool
    }

    struct Command {
        var name: String
        var options: [String: Declared]
        var subcommands: [Command]
    }

    /// The innermost declaration of `name` along the command path.
    static func lookUp(_ name: String, in stack: [Command]) -> Declared? {
        for command in stack.reversed() {
            if let declared = command.options[name] { return declared }
        }
        return nil
    }

    /// The command tree with each command's long option and flag names.
    static func dump(_ root: any ParsableCommand.Type) -> Command? {
        let text: String
        do {
            _ = try root.parseAsRoot(["--experimental-dump-help"])
            return nil
        } catch {
            text = root.fullMessage(for: error)
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            return nil  // no dump (an ArgumentParser without it): the parser's own behaviour stands; tests catch that
        }
        guard let command = (json as? [String: Any])?["command"] as? [String: Any] else { return nil }
        return parse(command)
    }

    private static func parse(_ object: [String: Any]) -> Command {
        var options: [String: Declared] = [:]
        for argument in object["arguments"] as? [[String: Any]] ?? [] {
            let kind = argument["kind"] as? String ?? ""
            let repeating = argument["isRepeating"] as? Bool ?? false
            for name in argument["names"] as? [[String: Any]] ?? [] where name["kind"] as? String == "long" {
                if let text = name["name"] as? String { options["--" + text] = Declared(kind: kind, repeating: repeating) }
            }
        }
        let subcommands = (object["subcommands"] as? [[String: Any]] ?? []).map(parse)
        return Command(name: object["commandName"] as? String ?? "", options: options, subcommands: subcommands)
    }
}
