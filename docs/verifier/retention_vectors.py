"""retention_vectors.py - docs/test-vectors/retention.json: stores with an expired range and a
legal hold (docs/FORMAT.md section 20), each with the verdict a conforming verifier must give.

    python3 docs/verifier/retention_vectors.py --emit docs/test-vectors/retention.json

The output is deterministic; selftest.py fails when the committed file is stale or when this
verifier's verdict differs from the one written here by hand. The Swift test suite
(RetentionVectorTests) loads the same stores into SQLite and requires the engine's verdicts.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sqlite3
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import selftest as st  # noqa: E402  (the store builders, written from FORMAT.md)

av, retention = st.av, st.retention
OUT = HERE.parent / "test-vectors" / "retention.json"
ET, RV, MR = "expiry-tampered", "retention-violation", "missing-rows"

# Tables as stored, in the order to insert them.
TABLES = ("audit_store", "audit_key_versions", "audit_entries", "audit_expired", "audit_attestations", "audit_time_breaks")


def _value(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"hex": bytes(v).hex()}
    return v


def dump(path: pathlib.Path) -> dict:
    conn = sqlite3.connect(path)
    tables = {}
    for table in TABLES:
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY {'1' if table == 'audit_time_breaks' else '1, 2'}")
        names = [d[0] for d in cur.description]
        tables[table] = {"columns": names, "rows": [[_value(v) for v in row] for row in cur.fetchall()]}
    conn.close()
    return tables


def stores(tmp: pathlib.Path) -> list[dict]:
    """The signed stores: each built as the engine leaves it after one expiry entry (seq 13)."""
    out = []

    def add(name: str, description: str, expected: list, **kw) -> dict:
        path = tmp / f"{name}.sqlite"
        built = st.build_expired_store(path, **kw)
        out.append({"name": name, "description": description, "tables": dump(path), "expected": expected,
                    "_path": path, "_built": built})
        return out[-1]

    base = add("expired", "Rows 1-12 (key version 1 to seq 7, 2 from seq 8); a legal hold on resource doc-4 placed at "
                          "seq 6; the expiry entry at seq 13 (key version 2) expired rows 2, 3 and 5 under policy "
                          "default 1d, tenant bank 2w, tenant archive forever, at now = T0 + 30 days; row 4 is as old "
                          "but held, row 7 is of tenant archive, rows 8-12 are younger than a day; row 14 follows.",
               [])
    young = st.retention_rows()
    young[2]["recorded_at"] = st.NOW - 3 * st.DAY
    add("expired-too-young", "As `expired`, but row 3 (tenant bank, limit 2w) was recorded 3 days before the expiry "
                             "(signed by a key holder who broke the policy).", [[RV, 3, 3]], rows=young)
    add("expired-held", "As `expired`, but the entry also expired row 4, which the hold at seq 6 held.",
        [[RV, 4, 4]], expire=(2, 3, 4, 5))
    released = st.retention_rows()
    released[6] = st.hold_released(7, st.T0 + 11 * st.DAY, 1, 6, 6)
    add("expired-hold-released", "Row 7 releases hold 6 before the expiry, so row 4 may expire with 2, 3 and 5.",
        [], rows=released, expire=(2, 3, 4, 5))
    add("expired-released-late", "As `expired-held`, but the release of hold 6 is row 14, after the expiry entry: the "
                                 "hold was in force when row 4 expired.",
        [[RV, 4, 4]], expire=(2, 3, 4, 5), tail=st.hold_released(14, st.NOW + 1_000, 2, 6, 6))
    return out, base


def mutations(base: dict) -> list[dict]:
    """Damage to the `expired` store, as SQL run by an outside client with the triggers off."""
    tombs = base["_built"]["tombstones"]
    flipped = bytearray(tombs[3]["mac"])
    flipped[31] ^= 1
    return [
        {"name": "tombstone-deleted", "sql": ["DELETE FROM audit_expired WHERE seq = 3"],
         "expected": [[MR, 3, 3], [ET, 13, 13]]},
        {"name": "tombstone-mac-changed", "sql": [f"UPDATE audit_expired SET mac = X'{flipped.hex()}' WHERE seq = 3"],
         "expected": [["chain-break", 3, 3], [ET, 13, 13]]},
        {"name": "tombstone-leaf-changed", "sql": [f"UPDATE audit_expired SET leaf = X'{bytes(32).hex()}' WHERE seq = 3"],
         "expected": [[ET, 13, 13]]},
        {"name": "tombstone-tag-changed",
         "sql": [f"UPDATE audit_expired SET tags = X'{(bytes(16) + tombs[3]['tags'][16:]).hex()}' WHERE seq = 3"],
         "expected": [[ET, 13, 13]]},
        {"name": "expiry-entry-deleted", "sql": ["DELETE FROM audit_entries WHERE seq = 13"],
         "expected": [[ET, 2, 2], [ET, 3, 3], [ET, 5, 5], [MR, 13, 13]]},
        {"name": "expiry-entry-changed",
         "sql": ["UPDATE audit_entries SET details = replace(details, '\"1d\"', '\"1h\"') WHERE seq = 13"],
         "expected": [[ET, 2, 2], [ET, 3, 3], [ET, 5, 5], ["mac-mismatch", 13, 13]]},
        {"name": "hold-entry-deleted", "sql": ["DELETE FROM audit_entries WHERE seq = 6"],
         "expected": [[MR, 6, 6]]},
        {"name": "held-row-deleted", "sql": ["DELETE FROM audit_entries WHERE seq = 4"],
         "expected": [[MR, 4, 4]]},
        {"name": "rows-deleted-without-tombstones", "sql": ["DELETE FROM audit_entries WHERE seq IN (10, 11)"],
         "expected": [[MR, 10, 11]]},
        {"name": "tombstone-forged-for-a-present-row",
         "sql": ["INSERT INTO audit_expired VALUES (7, 1, X'%s', X'%s', %d, X'%s', 13)"
                 % (tombs[5]["mac"].hex(), tombs[5]["leaf"].hex(), tombs[5]["recorded_at"], tombs[5]["tags"].hex())],
         "expected": [["foreign-row", 7, 7]]},  # not a tombstone of the log (FORMAT.md 20.4)
    ]


def findings(path: pathlib.Path) -> list:
    rep = av.verify(str(path), st.ring({1: "active", 2: "active"}), st.SID)
    return [[f.kind, f.first, f.last] for f in rep.findings]


def build(tmp: pathlib.Path) -> tuple[dict, list[str]]:
    """The vectors, and where this verifier disagrees with their hand-written verdicts."""
    problems = []
    built, base = stores(tmp)
    for s in built:
        got = findings(s["_path"])
        if got != s["expected"]:
            problems.append(f"retention vectors: store {s['name']}: verifier says {got}, vector says {s['expected']}")
    muts = mutations(base)
    for m in muts:
        path = tmp / f"mut-{m['name']}.sqlite"
        path.write_bytes(base["_path"].read_bytes())
        st.tamper_all(path, *m["sql"])
        got = findings(path)
        if got != m["expected"]:
            problems.append(f"retention vectors: mutation {m['name']}: verifier says {got}, vector says {m['expected']}")
    tombs = base["_built"]["tombstones"]
    intermediates = []
    for seq in sorted(tombs):
        t = tombs[seq]
        intermediates.append({
            "seq": seq, "leaf": t["leaf"].hex(), "tags": t["tags"].hex(),
            "tags_split": {name: t["tags"][16 * i:16 * i + 16].hex() for i, name in
                           enumerate(("tenant", "actor", "resource_id", "resource", "correlation_id"))},
            "enc_tomb": st.sel_enc_tomb(t).hex()})
    doc = {
        "vectors_format": "auditdb-retention-vectors",
        "vectors_version": 1,
        "format_version": 1,
        "WARNING": "PUBLIC TEST-ONLY KEYS: anyone can forge rows with them; never use them for a real store.",
        "generator": "docs/verifier/retention_vectors.py --emit",
        "keys": [{"version": 1, "master": st.K1.hex()}, {"version": 2, "master": st.K2.hex()}],
        "key_file_text": st.key_text({1: "active", 2: "active"}),
        "store_id": st.SID.hex(),
        "schema": "the schema of docs/FORMAT.md (schema/audit.sql), every migration recorded",
        "finding_format": "[kind, first seq, last seq] in the order of FORMAT.md section 11 (seq, then step)",
        "expired_store_tombstones": intermediates,
        "stores": [{k: v for k, v in s.items() if not k.startswith("_")} for s in built],
        "mutations_of": "expired",
        "mutations": muts,
    }
    return doc, problems


def text(doc: dict) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def selftest() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="auditdb-retvec-") as d:
        doc, problems = build(pathlib.Path(d))
    if not OUT.exists() or OUT.read_text() != text(doc):
        problems.append(f"{OUT} is stale: run python3 docs/verifier/retention_vectors.py --emit {OUT}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emit", metavar="OUT.json", help="write the vectors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auditdb-retvec-") as d:
        doc, problems = build(pathlib.Path(d))
    for p in problems:
        print("FAIL", p)
    if problems:
        return 1
    if args.emit:
        pathlib.Path(args.emit).write_text(text(doc))
        print(f"wrote {args.emit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
