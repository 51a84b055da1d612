// swift-tools-version: 6.1
// AuditDB benchmarks: a separate package so that CI and users of the library never build it.
//
//   swift run -c release --package-path benchmarks auditdb-bench            # full profile (1M rows)
//   swift run -c release --package-path benchmarks auditdb-bench --quick    # quick profile (100k rows)
//   swift package --package-path benchmarks benchmark                       # ordo-one/benchmark suite
//   swift run -c release --package-path benchmarks auditdb-fleet-bench      # fleet: witness, auditor, shipping (PostgreSQL)
//
// Every AuditDB figure is measured next to a raw-SQLite baseline in the same process run,
// interleaved run by run, and reported as ratios computed pair by pair. See docs/performance.md.
import PackageDescription

let package = Package(
    name: "AuditDBBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "AuditDB", path: ".."),
        // The same GRDB as the library; only its GRDBSQLite module (the system SQLite C API) is used here.
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        // Only to count the store's commits (group sizes) in the group-commit section.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // The ordo-one harness: per-benchmark metrics (CPU, mallocs, throughput) and stored baselines.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // Only the fleet benchmark (auditdb-fleet-bench) uses these; auditdb-bench stays free of SwiftNIO.
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "auditdb-bench",
            dependencies: [
                .product(name: "AuditDB", package: "AuditDB"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/auditdb-bench"
        ),
        // The fleet at scale against a PostgreSQL it starts itself (docs/performance.md, "Fleet"):
        // its own target so that the core benchmark does not build PostgresNIO.
        .executableTarget(
            name: "auditdb-fleet-bench",
            dependencies: [
                .product(name: "AuditDB", package: "AuditDB"),
                .product(name: "AuditDBPostgres", package: "AuditDB"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/auditdb-fleet-bench"
        ),
        // The plugin only runs executable targets under Benchmarks/<Name>/ (../shared/ENVIRONMENT.md).
        .executableTarget(
            name: "AuditDBBenchmarks",
            dependencies: [
                .product(name: "AuditDB", package: "AuditDB"),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            path: "Benchmarks/AuditDBBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
