#!/usr/bin/env bash
# The AuditDB demo: a store in a temporary directory; append, query, verify, scan, checkpoint to an
# anchor, export for an auditor; then cut the tail of a copy (found by the store's own checkpoint,
# and once that is cut too, only against the anchor) and
# tamper with the file through the sqlite3 shell, and watch verification name the row.
set -uo pipefail
AUDITDB="${1:?usage: demo.sh PATH-TO-auditdb}"
WORK="$(mktemp -d /tmp/auditdb-demo.XXXXXX)"
export AUDITDB_STORE="$WORK/audit.db" AUDITDB_KEY_FILE="$WORK/audit.keys"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {
  local shown=("$@")
  [ "$1" = "$AUDITDB" ] && shown[0]=auditdb
  printf '$ %s\n' "${shown[*]}"
  "$@"
}

step "1. Create a key file (mode 0600), a checkpoint signing key, and an empty store"
show "$AUDITDB" keys generate --out "$AUDITDB_KEY_FILE"
show "$AUDITDB" checkpoint-key generate --out "$WORK/checkpoint.key" --public-out "$WORK/checkpoint.pub"
show "$AUDITDB" init

step "2. Append events: one from flags, a batch from JSON lines"
show "$AUDITDB" append --actor alice --action login --tenant acme --source 10.0.0.8 --outcome success
printf '%s\n' \
  '{"actor":"bob","action":"document.read","tenant":"acme","resourceType":"document","resourceId":"doc-7"}' \
  '{"actor":"carol","action":"document.delete","tenant":"acme","resourceType":"document","resourceId":"doc-7","outcome":"denied","severity":"warning","details":{"reason":"retention hold"}}' \
  '{"actor":"dave","action":"role.grant","tenant":"globex","resourceType":"role","resourceId":"admin","severity":"critical","details":{"grantedTo":"erin"}}' \
  | { printf '$ auditdb append --jsonl  < 3 events\n'; "$AUDITDB" append --jsonl; }

step "3. Query (every row is verified as it is read)"
show "$AUDITDB" query
show "$AUDITDB" query --tenant acme --format jsonl

step "4. Verify the whole store; run an integrity scan (recorded in the store) and read the status"
show "$AUDITDB" verify; echo "exit status: $?"
show "$AUDITDB" scan
show "$AUDITDB" status

step "5. A signed checkpoint, anchored outside the file; an export an auditor checks with the public key"
mkdir -p "$WORK/anchors"
show "$AUDITDB" checkpoint --signing-key "$WORK/checkpoint.key" --anchor "$WORK/anchors"
show "$AUDITDB" export --out "$WORK/export-acme" --tenant acme --redact actor --signing-key "$WORK/checkpoint.key"
show "$AUDITDB" verify-export "$WORK/export-acme" --public-key "$WORK/checkpoint.pub" --require-statement; echo "exit status: $?"

step "6. A copy whose last rows were cut (trigger put back): the store's own checkpoint says so; cut that too, and only the anchor can"
cp "$AUDITDB_STORE" "$WORK/cut.db"
trigger="$(sqlite3 "$WORK/cut.db" "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_no_delete';")"
show sqlite3 "$WORK/cut.db" "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq >= 4; $trigger;"
show "$AUDITDB" verify --store "$WORK/cut.db" --public-key "$WORK/checkpoint.pub"; echo "exit status: $?"
ctrigger="$(sqlite3 "$WORK/cut.db" "SELECT sql FROM sqlite_schema WHERE name = 'audit_checkpoints_no_delete';")"
show sqlite3 "$WORK/cut.db" "DROP TRIGGER audit_checkpoints_no_delete; DELETE FROM audit_checkpoints; $ctrigger;"
show "$AUDITDB" verify --store "$WORK/cut.db"; echo "exit status: $?"
show "$AUDITDB" verify --store "$WORK/cut.db" --anchor "$WORK/anchors" --public-key "$WORK/checkpoint.pub"; cut_status=$?
echo "exit status: $cut_status"

step "7. Tamper through the sqlite3 shell: the triggers refuse"
show sqlite3 "$AUDITDB_STORE" "UPDATE audit_entries SET outcome = 0 WHERE seq = 3;"; echo "sqlite3 exit status: $?"
show sqlite3 "$AUDITDB_STORE" "DELETE FROM audit_entries WHERE seq = 2;"; echo "sqlite3 exit status: $?"

step "8. Someone with the file drops the trigger and flips carol's 'denied' to 'success'"
show sqlite3 "$AUDITDB_STORE" "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET outcome = 0 WHERE seq = 3;"
show sqlite3 -header -column "$AUDITDB_STORE" "SELECT seq, actor, action, outcome FROM audit_log;"

step "9. Verify again: the changed row and the dropped trigger are named"
show "$AUDITDB" verify; status=$?; echo "exit status: $status"

if [ -f "$(dirname "$0")/../docs/verifier/auditdb_verify.py" ] && command -v python3 >/dev/null; then
  step "10. An independent verifier (Python, written from docs/FORMAT.md) agrees"
  show python3 "$(dirname "$0")/../docs/verifier/auditdb_verify.py" --store "$AUDITDB_STORE" --key-file "$AUDITDB_KEY_FILE"
fi

rm -rf "$WORK"
[ "$status" -eq 1 ] || { echo "demo: expected verify to report the tampering (exit 1), got $status" >&2; exit 1; }
[ "$cut_status" -eq 1 ] || { echo "demo: expected verify --anchor to report the cut tail (exit 1), got $cut_status" >&2; exit 1; }
printf '\n\033[1mDemo finished: tampering was detected.\033[0m\n'
