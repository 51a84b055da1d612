#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of one AuditDB input parser.
#   scripts/fuzz.sh TARGET [SECONDS]    TARGET: jsonl details keyfile keysenv timestamp cursor
#                                       json checkpoint statement manifest entry pubkey
# Builds fuzz/ (a separate package, never built by CI) into fuzz/.build-fuzz, starts from the
# committed seeds in fuzz/corpus/TARGET (test-only values), keeps the grown corpus in
# fuzz/.build-fuzz/corpus/TARGET, and writes any crashing input to fuzz/.build-fuzz/crashes/.
set -euo pipefail
target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}"
seconds="${2:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/fuzz/.build-fuzz"
# Every Swift module (AuditDB included) gets AddressSanitizer and libFuzzer's coverage hooks; only
# the harness links libFuzzer's main (fuzz/Package.swift), so build tools keep their own main.
swift build --package-path "$root/fuzz" --scratch-path "$build" -Xswiftc -sanitize=address \
    -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table 2>&1 | grep -v "Cannot export local symbol" | tail -3
binary="$(swift build --package-path "$root/fuzz" --scratch-path "$build" --show-bin-path)/auditdb-fuzz"
mkdir -p "$build/corpus/$target" "$build/crashes"
cp -n "$root/fuzz/corpus/$target/"* "$build/corpus/$target/" 2>/dev/null || true
FUZZ_TARGET="$target" "$binary" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=4096 -max_len=100000 \
    -artifact_prefix="$build/crashes/$target-" -print_final_stats=1 "$build/corpus/$target"
