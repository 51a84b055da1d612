public import ArgumentParser
import Foundation

/// Refuses a single-value option given more than once.
///
/// ArgumentParser keeps the last value of such an option and drops the others without a word, so
/// `hold add --tenant t0 --tenant t1` would place one hold, on t1, and leave t0 unprotected;
/// `export --redact actor --redact source` would export the actor in clear. An audit tool must
/// not guess which one was meant. Options that take several values (`--anchor`, `--mask`, …)
/// are declared repeating and may be given as often as wanted.
///
/// Which options repeat comes from the commands' own declarations (ArgumentParser's help dump,
/// built in-process and only when some option name does appear twice), so the check cannot drift
/// from the options a command declares.
public enum RepeatedOptions {
    /// Why `arguments` (without the executable) may not run, or nil.
    public static func problem(_ root: any ParsableCommand.Type, _ arguments: [String]) -> String? {
        var seen = Set<String>()
        var twice = false
        for argument in arguments {
            if argument == "--" { break }
            if let name = optionName(argument), !seen.insert(name).inserted { twice = true }
        }
        guard twice, let tree = CommandTree.dump(root) else { return nil }

        // Walk the command line as the parser does: options (skipping their value), and the
        // words naming subcommands.
        var stack = [tree]
        var counts: [String: Int] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { break }
            if let name = optionName(argument) {
                guard let declared = CommandTree.lookUp(name, in: stack) else { continue }
                if declared.kind == "option" {
                    if !argument.contains("=") { index += 1 }  // its value
                    if !declared.repeating { counts[name, default: 0] += 1 }
                }
                continue
            }
            if let sub = stack.last?.subcommands.first(where: { $0.name == argument }) { stack.append(sub) }
        }
        guard let name = counts.filter({ $0.value > 1 }).keys.sorted().first else { return nil }
        let command = stack.map(\.name).joined(separator: " ")
        return "\(name) was given \(counts[name]!) times; `\(command)` takes it once (it would keep only the last value). Give it once, or run the command once per value"
    }

    /// `--name` of `--name` or `--name=value`; nil for anything else.
    static func optionName(_ argument: String) -> String? {
        guard argument.hasPrefix("--"), argument.count > 2 else { return nil }
        return String(argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }
}
