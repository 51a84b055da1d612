#!/usr/bin/env bash
# Checks that an app can depend on AuditDB *by version*, the way apps do:
#   .package(url: "...", from: "X.Y.Z")
# A path or branch dependency hides problems that a versioned one does not (SwiftPM refuses a
# versioned dependency whose targets use unsafeFlags, for one), so `swift build` in this
# repository cannot catch them.
#
# What it does: clones the committed HEAD of this checkout into a temporary directory, tags it
# 99.0.0 there, writes a tiny consumer package that depends on that clone with `from: "99.0.0"`,
# builds it (a cold build of AuditDB and its dependencies, about 1-2 minutes) and runs it: it
# creates a store with an in-memory key ring, appends one event and verifies the store.
# Exit status 0 when all of that works; non-zero, with a message saying which step failed, otherwise.
#
# Dependencies resolve exactly as `swift build` resolves them in this repository: the same
# `swift`, the same git configuration and SwiftPM user configuration (mirrors in
# ~/.swiftpm/configuration apply to both), plus this repository's own
# .swiftpm/configuration/mirrors.json, copied into the consumer when there is one.
# Uncommitted changes are not checked (it clones HEAD); it says so when the tree is dirty.
#
# Usage: scripts/check-adoptable.sh        (SWIFT=/path/to/swift to use another toolchain;
#                                           KEEP=1 keeps the temporary directory)
set -euo pipefail

SWIFT="${SWIFT:-swift}"
VERSION=99.0.0
say() { echo "check-adoptable: $*"; }
fail() {
    echo "check-adoptable: FAILED: $*" >&2
    echo "check-adoptable: an app depending on AuditDB with .package(url:, from:) would not build (see above)." >&2
    exit 1
}

repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)" || fail "not inside a git checkout"
commit="$(git -C "$repo" rev-parse HEAD)" || fail "cannot read HEAD of $repo"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    say "note: $repo has uncommitted changes; checking the committed HEAD only"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/auditdb-adoptable.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then
    say "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi

say "checking commit $commit as version $VERSION"
git clone --quiet --no-local --no-checkout "$repo" "$work/AuditDB" || fail "git clone of $repo"
git -C "$work/AuditDB" checkout --quiet --detach "$commit" || fail "checking out $commit in the clone"
git -C "$work/AuditDB" tag "$VERSION" || fail "tagging the clone $VERSION"

consumer="$work/consumer"
mkdir -p "$consumer/Sources/Consumer"
if [ -f "$repo/.swiftpm/configuration/mirrors.json" ]; then
    mkdir -p "$consumer/.swiftpm/configuration"
    cp "$repo/.swiftpm/configuration/mirrors.json" "$consumer/.swiftpm/configuration/"
fi
cat >"$consumer/Package.swift" <<EOF
// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Consumer",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: "file://$work/AuditDB", from: "$VERSION")],
    targets: [.executableTarget(name: "Consumer", dependencies: [.product(name: "AuditDB", package: "AuditDB")])]
)
EOF
cat >"$consumer/Sources/Consumer/main.swift" <<'EOF'
import AuditDB

let store = try await AuditStore.create(at: CommandLine.arguments[1] + "/audit.db",
                                        keys: try KeyRing([AuditKey.generate(version: 1)]))
let seq = try await store.append(AuditEvent(actor: "ci", action: "adoptable.check"))
let report = try await store.verify()
try await store.close()
print("appended seq \(seq); verify: \(report)")
guard report.isIntact, report.rowsChecked == 1 else { fatalError("the new store does not verify") }
EOF

# SwiftPM leaves lock files named after the build path in $TMPDIR; keep them in $work.
mkdir "$work/tmp"
export TMPDIR="$work/tmp"

say "resolving and building the consumer (cold build of AuditDB and its dependencies)..."
"$SWIFT" package --package-path "$consumer" resolve || fail "resolving .package(url: \"file://.../AuditDB\", from: \"$VERSION\")"
"$SWIFT" build --package-path "$consumer" || fail "building a package that depends on AuditDB $VERSION"

mkdir "$work/store"
"$("$SWIFT" build --package-path "$consumer" --show-bin-path)/Consumer" "$work/store" ||
    fail "the consumer's create/append/verify run"
say "OK: a package depending on AuditDB by version builds, appends and verifies"
