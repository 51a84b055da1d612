// swift-tools-version: 6.1
// Coverage-guided fuzzing (libFuzzer) of the parsers that read outside data. A separate package,
// so that CI and users of the library never build it. Run from the repository root:
//
//   scripts/fuzz.sh jsonl 60      # target, seconds; targets: jsonl details keyfile keysenv timestamp cursor
//
// The seeded mutation fuzz tests in Tests/AuditDBTests/Reliability/FuzzTests.swift run in CI;
// this harness explores further, guided by coverage. See docs/reliability.md.
import PackageDescription

let package = Package(
    name: "AuditDBFuzz",
    dependencies: [
        .package(name: "AuditDB", path: ".."),
    ],
    targets: [
        // No main: libFuzzer's main calls LLVMFuzzerTestOneInput (built with -sanitize=fuzzer).
        .executableTarget(
            name: "auditdb-fuzz",
            dependencies: [.product(name: "AuditDB", package: "AuditDB")],
            path: "Sources/auditdb-fuzz",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])]
        ),
    ],
    swiftLanguageModes: [.v6]
)
