#!/usr/bin/env bash
# Builds and runs verify_floor.c against AuditDB's own C core (Sources/CAuditCore).
# Needs a C compiler, libsqlite3-dev and libssl-dev. Usage: benchmarks/floor/run.sh [ROWS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
core="$here/../../Sources/CAuditCore"
out="${TMPDIR:-/tmp}/auditdb-verify-floor"
cc -O3 -o "$out" "$here/verify_floor.c" "$core/audit_core.c" "$core/sqlite_config.c" -I"$core/include" \
    -lsqlite3 -lcrypto -lpthread
"$out" "${TMPDIR:-/tmp}/auditdb-verify-floor.db" "${1:-1000000}"
