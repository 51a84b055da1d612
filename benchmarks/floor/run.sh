#!/usr/bin/env bash
# The floors quoted in docs/performance.md ("What bounds the misses"), in C against AuditDB's own
# core (Sources/CAuditCore). Needs a C compiler, libsqlite3-dev and libssl-dev.
#   benchmarks/floor/run.sh [ROWS]      the verify floor of the row format (verify_floor.c)
#   benchmarks/floor/run.sh group       raw group-commit throughput by index subset (group_ceiling.c)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
core="$here/../../Sources/CAuditCore"
tmp="${TMPDIR:-/tmp}"
if [ "${1:-}" = group ]; then
    cc -O2 -o "$tmp/auditdb-group-ceiling" "$here/group_ceiling.c" -lsqlite3
    echo "| indexes (mask) | rows per FULL commit | rows/s | us per commit |"
    echo "|---|---|---|---|"
    for per in 1 32 64; do
        for idx in 0 4 1 2 3 7; do
            "$tmp/auditdb-group-ceiling" "$tmp/auditdb-group-ceiling.db" 200000 $((per * 300)) "$per" "$idx"
        done
    done
    exit 0
fi
cc -O3 -o "$tmp/auditdb-verify-floor" "$here/verify_floor.c" "$core"/*.c -I"$core/include" \
    -lsqlite3 -lcrypto -lpthread
"$tmp/auditdb-verify-floor" "$tmp/auditdb-verify-floor.db" "${1:-1000000}"
