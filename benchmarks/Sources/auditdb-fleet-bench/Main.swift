import AuditDB
import AuditDBPostgres
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `auditdb-fleet-bench`: the fleet at scale (docs/performance.md, "Fleet"), against a real
/// PostgreSQL 15 it starts itself.
///
///   swift run -c release --package-path benchmarks auditdb-fleet-bench [--quick] [--out FILE]
///
/// 1. 1,000 stores publish 60 checkpoints each (10 simulated minutes, one every 10 s) with four
///    injected faults; the auditor sweeps all of them (3 sweeps timed); every fault must be
///    reported exactly and nothing else.
/// 2. Shipping from one store vs a plain COPY of the same rows into the same table (3 pairs);
///    10 shippers at once; the central verifier over everything shipped.
@main
struct FleetBench {
    static func main() async {
        let args = CommandLine.arguments
        let quick = args.contains("--quick")
        func value(_ name: String) -> String? { args.firstIndex(of: name).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil } }
        let stores = value("--stores").flatMap(Int.init) ?? (quick ? 100 : 1_000)
        let rows = value("--rows").flatMap(Int.init) ?? (quick ? 50_000 : 200_000)
        let concurrentRows = value("--concurrent-rows").flatMap(Int.init) ?? (quick ? 5_000 : 20_000)
        let out = value("--out")
        let skipFleet = args.contains("--shipping-only")
        do {
            let report = try await run(stores: stores, rows: rows, concurrentRows: concurrentRows, shippingOnly: skipFleet)
            print(report)
            if let out { try report.write(toFile: out, atomically: false, encoding: .utf8) }
        } catch {
            FileHandle.standardError.write(Data("auditdb-fleet-bench: \(error)\n".utf8))
            exit(1)
        }
    }

    static func log(_ line: String) { FileHandle.standardError.write(Data("[fleet-bench] \(line)\n".utf8)) }

    static func run(stores: Int, rows: Int, concurrentRows: Int, shippingOnly: Bool) async throws -> String {
        guard stores >= 20 else { throw BenchFailure("--stores must be at least 20 (stores 10-13 carry the injected faults)") }
        let server = try BenchPostgres(port: 20_000 + Int(getpid() % 20_000))
        defer { server.stop() }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("auditdb-fleet-bench-stores-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: work) }  // cleanup
        var logger = Logger(label: "fleet-bench")
        logger.logLevel = .error
        let owner = PostgresWitness(try WitnessConnection(url: server.url(BenchPostgres.owner)), logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await owner.run() }
            try await owner.installSchema()
            group.cancelAll()
        }
        log("PostgreSQL started on port \(server.port), schema installed")
        if shippingOnly {
            try server.psql("CREATE ROLE fleet_pub LOGIN IN ROLE auditdb_publisher; CREATE ROLE fleet_auditor LOGIN IN ROLE auditdb_auditor;")
            let shipping = try await ShippingBench(server: server, directory: work, rowsPerStore: rows, concurrentRows: concurrentRows).run(log: log)
            return markdown(fleet: nil, exact: true, found: [], expected: [], shipping: shipping)
        }
        let fleet = try await FleetSimulation(server: server, directory: work, storeCount: stores).run(log: log)
        // Exactly the injected faults, nothing else.
        let expected: Set<String> = [
            "\(fleet.faultStores[.forked]!) fork", "\(fleet.faultStores[.rolledBack]!) rollback",
            "\(fleet.faultStores[.silent]!) silent", "\(fleet.faultStores[.wrongKey]!) unknown-key",
        ]
        let found = Set(fleet.report.findings.map { "\($0.storeID) \($0.finding.kind)" })
        let exact = found == expected
        log("audit: \(fleet.report.findings.count) findings; exactly the injected faults: \(exact)")
        let shipping = try await ShippingBench(server: server, directory: work, rowsPerStore: rows, concurrentRows: concurrentRows).run(log: log)
        return markdown(fleet: fleet, exact: exact, found: found, expected: expected, shipping: shipping)
    }

    static func markdown(fleet: FleetSimulation.Result?, exact: Bool, found: Set<String>, expected: Set<String>,
                         shipping: ShippingBench.Result) -> String
    {
        func f(_ v: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", v) }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        // The load is stated as measured, not assumed: the same report is written on quiet and busy machines.
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "unknown"
        var out = "# Fleet benchmark (auditdb-fleet-bench)\n\n"
        out += "Machine: 2 cores, PostgreSQL 15 (Debian) on loopback, default durability; release build. "
        out += "Load average (1, 5, 15 min) when this report was written: \(load); the benchmark's own processes count in it. "
        out += "Compare ratios within this run only.\n\n"
        if let fleet {
            out += "## Witness and auditor\n\n"
            out += "| measure | value |\n|---|---|\n"
            out += "| stores (own store id, HMAC key, checkpoint key) | \(fleet.stores) |\n"
            out += "| rows appended (mix: 70% ~300, 25% ~3,000, 4.5% ~18,000, 0.5% ~90,000 rows) | \(fleet.rows) |\n"
            out += "| publications at the witness (60 rounds = 10 simulated minutes) | \(fleet.publications) |\n"
            out += "| wall time of the 60 rounds (append, checkpoint, publish with proof) | \(f(fleet.simulationSeconds, 1)) s |\n"
            out += "| auditor sweep over every store, 3 sweeps (median; all) | \(f(median(fleet.sweepSeconds))) s; \(fleet.sweepSeconds.map { f($0) }.joined(separator: ", ")) s |\n"
            out += "| silent-after given to the auditor (the real time rounds 41–60 took) | \(fleet.silentAfterSeconds) s |\n"
            out += "| injected faults reported exactly, nothing else | \(exact ? "yes" : "NO") |\n\n"
            out += "Findings by store and kind: \(found.sorted().joined(separator: "; "))\n"
            if !exact { out += "\nExpected: \(expected.sorted().joined(separator: "; "))\n" }
        }
        out += "\n## Shipping\n\n"
        out += "| pair | ship, 2 connections (verify rows, COPY into the table, batch row; commits in seq order) | of which the instance's reading (timed apart) | plain COPY of the same rows into the same table, one connection | ship rate | COPY rate | ship / COPY | ship on 1 connection (a twin store) |\n|---|---|---|---|---|---|---|---|\n"
        for (i, p) in shipping.pairs.enumerated() {
            let n = Double(shipping.rows)
            out += "| \(i + 1) | \(f(p.shipSeconds)) s | \(f(p.readSeconds)) s | \(f(p.copySeconds)) s | \(Int(n / p.shipSeconds)) rows/s | \(Int(n / p.copySeconds)) rows/s | \(f(p.copySeconds / p.shipSeconds)) | \(Int(n / p.shipOneConnectionSeconds)) rows/s |\n"
        }
        let ratios = shipping.pairs.map { $0.copySeconds / $0.shipSeconds }
        out += "\nOne store, \(shipping.rows) rows, batches of 10,000: median ship rate \(Int(Double(shipping.rows) / median(shipping.pairs.map(\.shipSeconds)))) rows/s; "
        out += "median ratio to the COPY baseline \(f(median(ratios))) (pairwise).\n\n"
        let total = shipping.concurrentStores * shipping.concurrentRowsEach
        out += "10 shippers at once (\(shipping.concurrentStores) stores × \(shipping.concurrentRowsEach) rows, one connection pool each): "
        out += "\(total) rows in \(f(shipping.concurrentSeconds)) s = \(Int(Double(total) / shipping.concurrentSeconds)) rows/s in all.\n\n"
        out += "Central verifier (`ShippedVerifier`) over the whole table: \(shipping.verifiedRows) shipped rows proven against the witness in "
        out += "\(f(shipping.verifySeconds)) s (\(Int(Double(shipping.verifiedRows) / shipping.verifySeconds)) rows/s; the baseline copies were read too and reported as rows of unregistered stores); "
        out += "every registered store intact: \(shipping.verifyIntact ? "yes" : "NO").\n"
        return out
    }
}
