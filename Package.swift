// swift-tools-version: 6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "AuditDB",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AuditDB", targets: ["AuditDB"]),
        .executable(name: "auditdb", targets: ["auditdb"]),
        // Fakes for apps' tests (and AuditDB's own): a temporary store directory, in-memory keys,
        // a manual clock for the services' schedules.
        .library(name: "AuditDBTestSupport", targets: ["AuditDBTestSupport"]),
        // The PostgreSQL witness and the fleet auditor (docs/fleet.md). Its own product so that
        // apps that do not use it do not link SwiftNIO; the `auditdb-fleet` executable likewise
        // keeps the main `auditdb` CLI free of it.
        .library(name: "AuditDBPostgres", targets: ["AuditDBPostgres"]),
        .executable(name: "auditdb-fleet", targets: ["auditdb-fleet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The CLIs' `--metrics-address` only (not the library): it needs swift-atomics and
        // swift-metrics, nothing of SwiftNIO.
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
    ],
    targets: [
        // libsodium (system library): Ed25519, constant-time compare, secure memory, CSPRNG.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // OpenSSL's libcrypto (system library): the SHA-256 under CAuditCore's HMAC.
        .systemLibrary(
            name: "COpenSSLCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // The per-row hot path in C: canonical encoding, commitments, HMAC-SHA256 over
        // OpenSSL's SHA-256 (which uses the CPU's SHA extensions). See docs/performance.md.
        // No unsafe build flags: SwiftPM refuses them in a package that apps depend on by version
        // (scripts/check-adoptable.sh). `-c release` compiles C with -O2; the former -O3 gave
        // byte-identical code for audit_core.c and no measurable change (docs/performance.md).
        .target(
            name: "CAuditCore",
            dependencies: [
                "COpenSSLCrypto",
                // The system SQLite that GRDB uses (its module map links libsqlite3); sqlite_config.c calls it.
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        // Turns schema/*.sql and Migrations/*.sql into Swift string literals at build time.
        .executableTarget(name: "EmbedSQL", path: "Sources/EmbedSQL"),
        .plugin(name: "EmbedSQLPlugin", capability: .buildTool(), dependencies: ["EmbedSQL"]),
        .target(
            name: "AuditDB",
            dependencies: [
                "CSodium",
                "CAuditCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift,
            plugins: ["EmbedSQLPlugin"]
        ),
        .target(
            name: "AuditDBTestSupport",
            dependencies: ["AuditDB"],
            swiftSettings: strictSwift
        ),
        // The Prometheus scrape endpoint of `auditdb scan --every` and `auditdb-fleet audit --every`:
        // blocking POSIX sockets on a thread of its own, no SwiftNIO.
        .target(
            name: "AuditDBMetricsEndpoint",
            dependencies: ["AuditDB"],
            swiftSettings: strictSwift
        ),
        // What both command-line tools share about their arguments (not a product).
        .target(
            name: "AuditDBCLISupport",
            dependencies: ["AuditDB", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "auditdb",
            dependencies: [
                "AuditDB", "AuditDBMetricsEndpoint", "AuditDBCLISupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSwift
        ),
        // The PostgreSQL witness (an AnchorSink) and the fleet auditor; links PostgresNIO/SwiftNIO.
        .target(
            name: "AuditDBPostgres",
            dependencies: [
                "AuditDB",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // Its ConnectionPoolError, which PostgresClient throws when no connection can be made.
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift,
            // postgres/*.sql, the witness schema, embedded at build time (Plugins/EmbedSQLPlugin).
            plugins: ["EmbedSQLPlugin"]
        ),
        .executableTarget(
            name: "auditdb-fleet",
            dependencies: [
                "AuditDB", "AuditDBPostgres", "AuditDBMetricsEndpoint", "AuditDBCLISupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Appends until killed; the crash tests SIGKILL it at random moments.
        .executableTarget(
            name: "AuditDBCrashChild",
            dependencies: ["AuditDB"],
            path: "Tests/CrashChild",
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "AuditDBTests",
            dependencies: [
                "AuditDB", "AuditDBTestSupport", "CAuditCore", "CSodium", "auditdb", "AuditDBCrashChild",
                "AuditDBPostgres", "auditdb-fleet",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            // The CLI's golden output files: read and rewritten in the source tree through #filePath
            // (CLI/GoldenFile.swift), so that an update lands where they are committed; not a bundle.
            exclude: ["CLI/Golden"],
            swiftSettings: strictSwift
        ),
    ],
    swiftLanguageModes: [.v6]
)
