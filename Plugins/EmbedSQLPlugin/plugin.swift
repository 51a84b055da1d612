import Foundation
import PackagePlugin

/// Embeds the canonical SQL text (`schema/*.sql`, `Migrations/*.sql`) into the target as
/// Swift string literals, so the library never loads SQL from a resource bundle at runtime
/// (a relocated `auditdb` binary must keep working).
@main
struct EmbedSQLPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let root = context.package.directoryURL
        var inputs: [URL] = []
        // The PostgreSQL witness (target AuditDBPostgres) has its own SQL under postgres/.
        let folders = target.name == "AuditDBPostgres" ? ["postgres"] : ["schema", "Migrations"]
        for folder in folders {
            let dir = root.appending(path: folder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            inputs += names.filter { $0.hasSuffix(".sql") }.sorted().map { dir.appending(path: $0) }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedSQL.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) SQL files into \(target.name)",
                executable: try context.tool(named: "EmbedSQL").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
