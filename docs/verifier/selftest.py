#!/usr/bin/env python3
"""selftest.py - checks docs/verifier/auditdb_verify.py, docs/test-vectors/vectors.json and
docs/FORMAT.md against each other (standard library only; exits non-zero on any failure).

    python3 docs/verifier/selftest.py [--no-c] [-v]

1. vectors.json is exactly what `auditdb_verify.py --emit-vectors` produces now (not stale);
   HMAC-SHA256 passes RFC 4231 test case 2.
2. The schema copies agree: auditdb_verify.SCHEMA_SQL, the ```sql block of FORMAT.md and
   schema/audit.sql (when present) define identical sqlite_schema objects.
3. Stores built here (from the format, in Python) verify as intact, and each tampering is
   reported with the right finding kind at the right seq (value changed with triggers dropped,
   row deleted, rows swapped, a row spliced from a fork, header changed, header format version
   other than 1, wrong store pinned, unknown and compromised key versions, attestations of rows
   and of the header (seq 0) and the declaration rule, malformed rows, seq < 1, a non-database
   file, a WAL store read while a writer holds it open), the command line's exit statuses and
   the strict parsing of AUDITDB_KEYS.
   The key proof (section 11, step 0): a wrong key is an error of the run ("wrong key for
   version V", exit 2), never findings; a version that signed nothing is accepted; a right key
   is still proven when the header and some rows were changed; the 64-row windows. Side tables
   (step 6): unconfirmed audit_key_versions rows and foreign audit_attestations rows are
   `foreign-row` findings, one per row, at most 100 named per table, and only with a well-formed
   header. Query indexes (step 7): a byte flipped in an index b-tree, or an index built without
   an entry under Appendix A's text, is one `index-mismatch`; an index whose text differs is
   `schema-tampered` only. The store's own checkpoints (step 8, audit_checkpoints rows signed with
   the public test-only checkpoint seed 40..5f): an intact store gives nothing; a tail cut below a
   checkpoint is `truncated` (the highest only); a bad signature, or another signer under
   --public-key, is `foreign-row`; a rewritten row under a checkpoint is `anchor-mismatch`; a
   checkpoint at a deleted row leaves step 4's `missing-rows` alone; at most 100 rows examined.
   The public key file (16.4) as all four command lines read it: CRLF accepted; CR-only lines,
   more than 1 MiB, invalid UTF-8, a vertical tab, a directory and a FIFO each exit 2 with the
   reason, at once.
   Expired rows (section 20, a store built here with hmac/hashlib from the text: rows 2, 3, 5
   expired by the signed expiry entry at 13, row 4 kept under a legal hold): intact, and each
   damage of 20.4's table gives its findings (a tombstone deleted, its mac, leaf, recorded_at,
   tags or key version changed, rows deleted without tombstones, the expiry entry deleted or
   changed, a tombstone whose row is still in the log, at seq 0 or naming another entry); step 8
   on a tombstone's mac; expiries a key holder signed against the policy (a tenant override, the
   exact cut-off, a null limit) or a hold in force (each of the five match tags, a release before
   and after the expiry) are `retention-violation`; unreadable details; the period grammar of
   docs/retention.md with each message; compromised keys, attestations and the key cache with
   expired rows; the schema of migration 0005.
4. The strict JSON reading of FORMAT.md section 18 and the bounds of 17.4: every document and
   bundle of docs/test-vectors/hostile.json gets exactly its hand-written verdict and findings
   from the Python verifier (strict_json.py, auditdb_verify_export.py), and the file is current
   (`hostile_vectors.py --emit`). Rows moved out of the tail (section 11 step 5) are one
   `missing-rows` range when consecutive.
5. Consistency proofs (FORMAT.md section 22, consistency.py): every proof and verdict of
   docs/test-vectors/consistency.json recomputed from the text; anchors built here are
   consistent, and a proof file with swapped hashes, another pair's proof under a name, a file
   that is not JSON, a FIFO or directory named *.json (checkpoint-invalid, never waited on), and
   two checkpoints at one seq are each reported exactly; --store-id in upper case is the same
   store, an invalid one exit 2.
6. Central shipping (FORMAT.md section 22.7, shipping.py): every case of
   docs/test-vectors/shipping.json (shipped rows altered, withheld and erased fields filled in,
   rows tied to the wrong checkpoint, another store's proof, an unregistered key, tombstones
   changed, rows deleted or added) gets exactly its findings from the text of the format.
7. Unless --no-c: if a C compiler and OpenSSL's libcrypto are available, compiles
   Sources/CAuditCore/audit_core.c (the reference) into a temporary shared library and checks,
   through ctypes, that it reproduces every value in vectors.json. Skipped (not failed) when
   the toolchain is missing.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import hmac as hmac_mod
import importlib.util
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
DOCS = HERE.parent
REPO = DOCS.parent
VERIFY_PY = HERE / "auditdb_verify.py"
VECTORS = DOCS / "test-vectors" / "vectors.json"
FORMAT_MD = DOCS / "FORMAT.md"
SCHEMA_FILE = REPO / "schema" / "audit.sql"
C_SOURCE = REPO / "Sources" / "CAuditCore" / "audit_core.c"
C_INCLUDE = REPO / "Sources" / "CAuditCore" / "include"

spec = importlib.util.spec_from_file_location("auditdb_verify", VERIFY_PY)
av = importlib.util.module_from_spec(spec)
sys.modules["auditdb_verify"] = av
spec.loader.exec_module(av)
import retention  # noqa: E402  (section 20; auditdb_verify.py put this directory on sys.path)
import erasure  # noqa: E402  (section 21)

# The checkpoint and bundle verifier (Ed25519, CKPT_MSG, the Merkle tree); auditdb_verify.py uses it for step 8.
spec = importlib.util.spec_from_file_location("auditdb_verify_export", HERE / "auditdb_verify_export.py")
ax = importlib.util.module_from_spec(spec)
sys.modules["auditdb_verify_export"] = ax
spec.loader.exec_module(ax)

FAILURES: list[str] = []
VERBOSE = False


def check(cond: bool, what: str) -> None:
    if cond:
        if VERBOSE:
            print(f"  ok    {what}")
    else:
        FAILURES.append(what)
        print(f"  FAIL  {what}")


def kinds(report) -> list[tuple[str, int | None]]:
    return [(f.kind, f.first) for f in report.findings]


# ------------------------------------------------------------------------------------------
# Building stores (from FORMAT.md, via the verifier's own primitives)
# ------------------------------------------------------------------------------------------

K1, K2 = av.TEST_MASTER_KEY_1, av.TEST_MASTER_KEY_2
KS = {1: av.KeySet(K1), 2: av.KeySet(K2)}
SID = av.TEST_STORE_ID


def key_text(statuses: dict[int, str]) -> str:
    masters = {1: K1, 2: K2}
    lines = ["# PUBLIC TEST-ONLY KEYS", "auditdb-keys v1"]
    for v, st in sorted(statuses.items()):
        lines.append(f"key {v} {st} - {masters[v].hex()}")
    return "\n".join(lines) + "\n"


def write_key_file(path: pathlib.Path, statuses: dict[int, str], mode: int = 0o600) -> str:
    path.write_text(key_text(statuses))
    os.chmod(path, mode)
    return str(path)


DECLARATION = "auditdb.key.compromised"


def sample_rows(n: int, rotate_at: int | None = None, declarations: tuple[int, ...] = ()) -> list[dict]:
    """n rows (column values as stored, text as str); key version 2 from seq `rotate_at`; the rows
    at `declarations` have the action auditdb.key.compromised (they can declare a compromise)."""
    rows = []
    for seq in range(1, n + 1):
        rows.append({
            "seq": seq, "recorded_at": 1_795_439_700_000_000 + seq * 1_000,
            "occurred_at": None if seq % 3 == 0 else 1_795_439_600_000_000 + seq,
            "tenant": None if seq % 2 else "t-\u00e9",
            "actor": f"user{seq}", "action": "doc.read" if seq % 4 else "doc.delete",
            "resource_type": "doc", "resource_id": f"\u6587-{seq}",
            "outcome": seq % 4, "severity": (seq // 2) % 4, "correlation_id": None if seq % 5 else f"c{seq}",
            "source": None if seq % 2 == 0 else "cli", "details": None if seq % 3 == 1 else f"{{\"n\":{seq}}}",
            "origin": 1 if seq == n and n > 2 else 0, "origin_ref": 1 if seq == n and n > 2 else None,
            "format_version": 1, "key_version": 2 if rotate_at and seq >= rotate_at else 1,
        })
        if seq in declarations:
            rows[-1]["action"] = DECLARATION
    return rows


def base_rows() -> list[dict]:
    """The rows of the 10-row test store: key version 2 from seq 7; declarations at 7 and 9."""
    return sample_rows(10, rotate_at=7, declarations=(7, 9))


def as_bytes_row(cols: dict) -> dict:
    row = dict(cols)
    for c in av.TEXT_COLUMNS:
        if row[c] is not None:
            row[c] = row[c].encode("utf-8")
    return row


# FORMAT.md section 24.1: the seqs whose recorded_at is lower than their predecessor's.
TIME_BREAKS_SQL = """
SELECT seq FROM (
    SELECT seq, recorded_at < lag(recorded_at) OVER (ORDER BY seq) AS backwards
    FROM (SELECT seq, recorded_at FROM audit_entries WHERE seq >= 1
          UNION ALL SELECT seq, recorded_at FROM audit_expired x WHERE seq >= 1
                    AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq))
) WHERE backwards"""


def build_store(path: pathlib.Path, rows: list[dict], store_id: bytes = SID, wal: bool = False,
                attest: list[tuple[int, int, int]] = (), created_at: int = av.TEST_CREATED_AT) -> list[bytes]:
    """Writes a store as the reference does; returns the stored MACs (index 0 = seq 1).
    `attest` holds (seq, attesting key version, declaration_seq); seq 0 attests the header."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    # The current schema, with its migrations recorded as GRDB records them.
    conn.executescript(av.ALL_MIGRATIONS_SQL)
    conn.execute("CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
    conn.executemany("INSERT INTO grdb_migrations VALUES (?)", [(name,) for name, _ in av.MIGRATIONS])
    hkv = rows[0]["key_version"] if rows else 1
    hmac_ = av.header_mac(KS[hkv], store_id, created_at, 1, hkv)
    conn.execute("INSERT INTO audit_store VALUES (1, ?, ?, 1, ?, ?)", (store_id, created_at, hkv, hmac_))
    prev = av.ZERO32
    macs = []
    seen_kv = set()
    for cols in rows:
        mac = av.seal(KS[cols["key_version"]], store_id, as_bytes_row(cols), prev)
        if cols["key_version"] not in seen_kv:
            seen_kv.add(cols["key_version"])
            conn.execute("INSERT INTO audit_key_versions VALUES (?, ?)", (cols["key_version"], cols["seq"]))
        conn.execute(f"INSERT INTO audit_entries ({', '.join(av.ROW_COLUMNS)}) VALUES ({', '.join('?' * 18)})",
                     [cols[c] for c in av.ROW_COLUMNS[:-1]] + [mac])
        macs.append(mac)
        prev = mac
    # The time breaks the writer records with the rows (section 24.2).
    conn.execute("INSERT INTO audit_time_breaks(seq) " + TIME_BREAKS_SQL)
    for seq, att_kv, decl in attest:
        row_kv, row_mac = (hkv, hmac_) if seq == 0 else (rows[seq - 1]["key_version"], macs[seq - 1])
        conn.execute("INSERT INTO audit_attestations VALUES (?, ?, ?, ?)",
                     (seq, att_kv, decl, av.attestation_mac(KS[att_kv], store_id, seq, row_kv, row_mac, decl)))
    conn.commit()
    conn.close()
    return macs


TRIGGERS = [m.group(0) for m in re.finditer(r"CREATE TRIGGER .*?END;", av.SCHEMA_SQL, re.S)]
TRIGGER_NAMES = [re.match(r"CREATE TRIGGER (\w+)", t).group(1) for t in TRIGGERS]


def tamper(path: pathlib.Path, *sql: str, restore_triggers: bool = True) -> None:
    """Runs `sql` with the append-only triggers dropped (an attacker with file access)."""
    conn = sqlite3.connect(path)
    for name in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for s in sql:
        conn.execute(s)
    if restore_triggers:
        for t in TRIGGERS:
            conn.execute(t)
    conn.commit()
    conn.close()


def wrong_key(path: pathlib.Path, keys: dict):
    """The WrongKeyError that verifying `path` with `keys` raises, or None (then the findings are printed)."""
    try:
        rep = av.verify(str(path), keys)
    except av.WrongKeyError as e:
        return e
    print(f"        (no wrong-key error; findings {kinds(rep)})")
    return None


def ring(statuses: dict[int, str]) -> dict:
    return av.parse_key_text(key_text(statuses).encode(), "test")


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("AUDITDB_KEYS", "AUDITDB_KEY_FILE")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, str(VERIFY_PY), *args], capture_output=True, text=True,
                       env=env if env is not None else clean_env())
    return p.returncode, p.stdout, p.stderr


# ------------------------------------------------------------------------------------------
# 1-2. Vectors, primitives, schema copies
# ------------------------------------------------------------------------------------------

def test_vectors_and_schema() -> None:
    print("vectors and schema")
    key = bytes([0x4A, 0x65, 0x66, 0x65])  # RFC 4231 test case 2: key "Jefe"
    check(av.hmac_sha256(key, b"what do ya want for nothing?").hex()
          == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "HMAC-SHA256 RFC 4231 case 2")
    check(av.i64(-1) == b"\xff" * 8 and av.i64(1) == bytes(7) + b"\x01", "i64 two's complement, big-endian")
    current = json.loads(json.dumps(av.build_vectors(), ensure_ascii=False))
    stored = json.loads(VECTORS.read_text(encoding="utf-8"))
    check(current == stored, "vectors.json is current (regenerate with --emit-vectors)")
    # Internal consistency of vectors.json as another implementer would consume it.
    for r in stored["rows"]:
        check(r["mac"] == r["row_tag"] + r["link_tag"], f"vector seq {r['columns']['seq']}: mac = row_tag || link_tag")
        check(len(bytes.fromhex(r["enc_row"])) == r["enc_row_length"], f"vector seq {r['columns']['seq']}: length")
    for i in range(1, len(stored["rows"])):
        check(stored["rows"][i]["prev_mac"] == stored["rows"][i - 1]["mac"], f"vector row {i + 1} chains")

    # 21.7: a path inside another is refused even with a path sorting between them.
    check(not erasure.paths_ok(["details.a", "details.a-x", "details.a.b"], 16), "paths: inside another, not neighbours")
    check(erasure.paths_ok(["details.a", "details.a-x"], 16), "paths: distinct, none inside another")
    # 20.3: an expiry entry's count cannot exceed its seq span.
    for count, ok in ((3, True), (4, False)):
        details = json.dumps({"policy": {"default": "1d", "tenants": {}}, "now": 0, "first": 1, "last": 3, "count": count,
                              "tombstones": "00" * 32}).encode()
        try:
            retention.parse_expiry_details(details, 13)
            parsed = True
        except retention.ExpiryDetailsError:
            parsed = False
        check(parsed == ok, f"expiry entry: count {count} over seqs 1...3 {'parses' if ok else 'does not parse'}")

    want = av.expected_schema_objects()
    check(len(want) == 17, f"schema: 4 tables + 12 triggers + 1 view (got {len(want)})")
    if SCHEMA_FILE.exists():
        reference = av.expected_schema_objects(SCHEMA_FILE.read_text())
        check(reference == av.expected_schema_objects(av.ALL_MIGRATIONS_SQL), "all migrations == schema/audit.sql")
    md = FORMAT_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", md, re.S)
    schema_blocks = [b for b in blocks if "CREATE TABLE audit_entries" in b]
    check(len(schema_blocks) == 1, "FORMAT.md has one ```sql block with the schema")
    if schema_blocks:
        check(av.expected_schema_objects(schema_blocks[0]) == want, "FORMAT.md schema == SCHEMA_SQL")
    # Appendix A: "### A.k Migration `name`" followed by its ```sql block, for every migration.
    listed = re.findall(r"### A\.\d+ Migration `([^`]+)`.*?```sql\n(.*?)```", md, re.S)
    check([name for name, _ in listed] == [name for name, _ in av.MIGRATIONS], "FORMAT.md Appendix A lists every migration in order")
    check([b.strip() for _, b in listed[1:]] == [m[1].strip() for m in av.MIGRATIONS[1:]],
          "FORMAT.md lists the later migrations' SQL exactly")
    example = stored["rows"][1]
    check(example["mac"] in md and example["enc_row"][:64] in md.replace(" ", ""),
          "FORMAT.md's worked example quotes vector seq 2 (ENC_ROW start and stored MAC)")


# ------------------------------------------------------------------------------------------
# 3. Stores and tampering
# ------------------------------------------------------------------------------------------


def test_stores(tmp: pathlib.Path) -> None:
    print("stores")
    both = ring({1: "active", 2: "active"})

    # The vector rows as a store: intact.
    vec_rows = [r["columns"] for r in av.build_vectors()["rows"]]
    vs = tmp / "vectors.sqlite"
    macs = build_store(vs, vec_rows)
    rep = av.verify(str(vs), both, SID)
    check(rep.intact and rep.rows_checked == 4, f"vector store intact ({kinds(rep)})")
    vj = json.loads(VECTORS.read_text())
    check([m.hex() for m in macs] == [r["mac"] for r in vj["rows"]], "store MACs == vector MACs")

    base = tmp / "base.sqlite"
    build_store(base, base_rows())

    def fresh(name: str) -> pathlib.Path:
        p = tmp / f"{name}.sqlite"
        shutil.copy(base, p)
        return p

    rep = av.verify(str(base), both, SID)
    check(rep.intact and rep.rows_checked == 10 and rep.last_seq == 10, f"10-row store intact ({kinds(rep)})")

    p = fresh("update")
    tamper(p, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 5")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 5)], "changed actor -> mac-mismatch at 5 only")

    p = fresh("update-details")
    tamper(p, "UPDATE audit_entries SET details = '{\"n\":99}' WHERE seq = 8")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 8)], "changed details (key v2) -> mac-mismatch at 8")

    p = fresh("erase")
    tamper(p, "UPDATE audit_entries SET actor = NULL WHERE seq = 3")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 3)], "actor set to NULL -> mac-mismatch at 3")

    p = fresh("update-keep-dropped")
    tamper(p, "UPDATE audit_entries SET outcome = 1 WHERE seq = 2", restore_triggers=False)
    k = kinds(av.verify(str(p), both))
    check(("mac-mismatch", 2) in k and k.count(("schema-tampered", None)) == len(TRIGGERS),
          f"dropped triggers -> schema-tampered x12 + mac-mismatch at 2 ({k})")

    p = fresh("delete")
    tamper(p, "DELETE FROM audit_entries WHERE seq = 5")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last) for f in rep.findings] == [("missing-rows", 5, 5)],
          f"deleted row 5 -> missing-rows 5...5 only ({kinds(rep)})")

    p = fresh("delete-range")
    tamper(p, "DELETE FROM audit_entries WHERE seq BETWEEN 3 AND 6")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last) for f in rep.findings] == [("missing-rows", 3, 6)], "deleted 3-6 -> missing 3...6")

    p = fresh("delete-first")
    tamper(p, "DELETE FROM audit_entries WHERE seq = 1")
    k = kinds(av.verify(str(p), both))
    check(k == [("foreign-row", None), ("missing-rows", 1)],
          f"deleted row 1 -> missing-rows at 1, and the cache row (1, 1) is no longer confirmed -> foreign-row ({k})")

    # The expected schema follows the recorded migrations (section 11, step 1).
    p = fresh("at-0001")
    tamper(p, "DROP INDEX audit_entries_origin_ref", "DROP INDEX audit_entries_actor", "DROP INDEX audit_entries_resource",
           "DROP INDEX audit_entries_tenant_time", "DROP INDEX audit_entries_recorded_at", "DROP INDEX audit_entries_engine",
           "DROP INDEX audit_entries_tenant_seq", "DROP VIEW audit_scan_history", "DROP TABLE audit_checkpoints", "DROP TABLE audit_expired",
           "DROP TABLE audit_time_breaks",
           "ALTER TABLE audit_entries DROP COLUMN seals",
           "DELETE FROM grdb_migrations WHERE identifier > '0001-initial'")
    k = kinds(av.verify(str(p), both))
    check(k == [("schema-outdated", None)], f"a store at migration 0001 (only its objects) -> schema-outdated only ({k})")
    p = fresh("skipped-record")
    tamper(p, "DROP INDEX audit_entries_origin_ref", "DELETE FROM grdb_migrations WHERE identifier = '0002-origin-ref-index'")
    k = kinds(av.verify(str(p), both))
    check(("schema-tampered", None) in k and ("schema-outdated", None) not in k,
          f"0002's record deleted (with its index) while 0003 is recorded -> schema-tampered ({k})")
    p = fresh("index-dropped")
    tamper(p, "DROP INDEX audit_entries_origin_ref")
    check(kinds(av.verify(str(p), both)) == [("schema-tampered", None)], "0002 recorded but its index dropped -> schema-tampered")
    p = fresh("future-migration")
    tamper(p, "INSERT INTO grdb_migrations VALUES ('9999-future')")
    rep = av.verify(str(p), both)
    check([f.message for f in rep.findings] == ["unknown migrations recorded: 9999-future (newer AuditDB, or tampering)"],
          "an unknown recorded migration -> schema-tampered naming it")

    p = fresh("truncate")
    tamper(p, "DELETE FROM audit_entries WHERE seq >= 9")
    rep = av.verify(str(p), both)
    check(rep.intact and rep.rows_checked == 8, "tail truncation is NOT detected (documented limitation)")

    p = fresh("swap")
    cols = ", ".join(c for c in av.ROW_COLUMNS if c != "seq")
    tamper(p, "CREATE TEMP TABLE t AS SELECT * FROM audit_entries WHERE seq IN (3, 4)",
           "DELETE FROM audit_entries WHERE seq IN (3, 4)",
           f"INSERT INTO audit_entries (seq, {cols}) SELECT 7 - seq, {cols} FROM t")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 3), ("mac-mismatch", 4)],
          "swapped rows 3 and 4 -> mac-mismatch at 3 and 4 (row 5's link follows a bad row: not checked)")

    # A fork: same store id and key, different row 4; splice fork's row 4 into the original.
    fork = tmp / "fork.sqlite"
    build_store(fork, [r if r["seq"] != 3 else dict(r, actor="someone-else") for r in base_rows()])
    p = fresh("splice")
    conn = sqlite3.connect(p)
    conn.execute("ATTACH ? AS fork", (str(fork),))
    for name in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DELETE FROM audit_entries WHERE seq = 4")
    conn.execute("INSERT INTO audit_entries SELECT * FROM fork.audit_entries WHERE seq = 4")
    for t in TRIGGERS:
        conn.execute(t)
    conn.commit()
    conn.close()
    check(kinds(av.verify(str(p), both)) == [("chain-break", 4)],
          "row 4 spliced from a fork -> chain-break at 4 only")

    # Header.
    p = fresh("header")
    tamper(p, "UPDATE audit_store SET created_at = created_at + 1")
    check(kinds(av.verify(str(p), both)) == [("header-tampered", None)], "changed created_at -> header-tampered")
    p = fresh("header-gone")
    tamper(p, "DELETE FROM audit_store")
    rep = av.verify(str(p), both)
    check(kinds(rep) == [("header-tampered", None)] and rep.rows_checked == 0, "deleted header -> header-tampered")

    # Header format version: must be exactly 1 (checked after the key lookup, before the MAC).
    def claims(n: int) -> str:
        return f"the store header claims format version {n}; this AuditDB reads format 1"
    for fmt in (2, 0, 257, -1):
        p = fresh(f"header-format-{fmt}")
        tamper(p, f"UPDATE audit_store SET format_version = {fmt}")
        rep = av.verify(str(p), both)
        check([(f.kind, f.first, f.message) for f in rep.findings] == [("header-tampered", None, claims(fmt))],
              f"header format_version {fmt} -> header-tampered 'claims format version {fmt}' only")
    p = fresh("header-format-resigned")
    tamper(p, "UPDATE audit_store SET format_version = 2, mac = X'%s'"
           % av.header_mac(KS[1], SID, av.TEST_CREATED_AT, 2, 1).hex())
    rep = av.verify(str(p), both)
    check([(f.kind, f.message) for f in rep.findings] == [("header-tampered", claims(2))],
          "header re-signed by a key holder as format 2 (valid MAC) -> still header-tampered")
    rep = av.verify(str(p), ring({2: "active"}))
    check(kinds(rep) == [("unknown-key-version", None)] + [("unknown-key-version", s) for s in range(1, 7)],
          f"header format 2 signed by a key the ring lacks -> unknown-key-version only ({kinds(rep)})")

    # Another store with the same key: only caught when the store id is pinned.
    other = tmp / "other.sqlite"
    build_store(other, base_rows(), store_id=bytes(16))
    check(av.verify(str(other), both).intact, "another store with the same key passes unpinned (documented)")
    check(kinds(av.verify(str(other), both, SID)) == [("store-identity-mismatch", None)],
          "another store, pinned store id -> store-identity-mismatch")
    p = fresh("foreign-row")
    conn = sqlite3.connect(p)
    conn.execute("ATTACH ? AS o", (str(other),))
    for name in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DELETE FROM audit_entries WHERE seq = 6")
    conn.execute("INSERT INTO audit_entries SELECT * FROM o.audit_entries WHERE seq = 6")
    for t in TRIGGERS:
        conn.execute(t)
    conn.commit()
    conn.close()
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 6)],
          "row 6 copied from another store -> mac-mismatch at 6 only")

    # Wrong key entirely: an error of the run (section 11, step 0), not findings.
    wrong = {1: av.Key(1, "active", "-", bytes(32))}
    e = wrong_key(base, {**wrong, 2: both[2]})
    check(e is not None and e.versions == [1] and e.evidence == [0, 1, 2, 3, 4, 5, 6]
          and str(e).startswith("wrong key for version 1: "),
          f"wrong key 1 -> error 'wrong key for version 1', evidence header + rows 1..6 ({e})")

    # Unknown and compromised key versions, attestations.
    only1 = ring({1: "active"})
    check(kinds(av.verify(str(base), only1)) == [("unknown-key-version", s) for s in range(7, 11)],
          "ring without v2 -> unknown-key-version at 7..10")
    only2 = ring({2: "active"})
    check(kinds(av.verify(str(base), only2)) == [("unknown-key-version", None)]
          + [("unknown-key-version", s) for s in range(1, 7)], "ring without v1 -> header + rows 1..6 unknown")
    comp1 = ring({1: "compromised", 2: "active"})
    comp2 = ring({1: "active", 2: "compromised"})
    hdr = ("compromised-key", None)  # the header (key version 1) lacks a valid attestation
    FR = ("foreign-row", None)
    hdr_msg = "the store header is signed with key version 1, declared compromised, and not re-attested"
    check(kinds(av.verify(str(base), comp1)) == [hdr] + [("compromised-key", s) for s in range(1, 7)],
          "v1 compromised, no attestations -> compromised-key for the header (no seq) and at 1..6")
    att = tmp / "attested.sqlite"  # the header and rows 1..5 attested under v2, declared at 7
    build_store(att, base_rows(), attest=[(0, 2, 7)] + [(s, 2, 7) for s in range(1, 6)])
    check(kinds(av.verify(str(att), comp1)) == [("compromised-key", 6)],
          "header and 1..5 attested under v2 -> only 6 flagged")
    check(av.verify(str(att), both).intact, "attestations are ignored while no key is compromised")

    def att_variant(name: str, attest, *sql: str) -> pathlib.Path:
        q = tmp / f"{name}.sqlite"
        build_store(q, base_rows(), attest=attest)
        if sql:
            tamper(q, *sql)
        return q

    rows_ok = [(s, 2, 7) for s in range(1, 6)]
    q = att_variant("att-no-header", rows_ok)
    rep = av.verify(str(q), comp1)
    check([(f.kind, f.first, f.last, f.message) for f in rep.findings[:1]] == [("compromised-key", None, None, hdr_msg)]
          and kinds(rep) == [hdr, ("compromised-key", 6)],
          f"header not attested -> store-wide compromised-key (no seq) with its message ({kinds(rep)})")
    q = att_variant("att-header-deleted", [(0, 2, 7)] + rows_ok, "DELETE FROM audit_attestations WHERE seq = 0")
    check(kinds(av.verify(str(q), comp1)) == [hdr, ("compromised-key", 6)],
          "header attestation row deleted -> compromised-key without seq")
    q = att_variant("att-header-tampered", rows_ok, "UPDATE audit_store SET created_at = created_at + 1")
    check(kinds(av.verify(str(q), comp1)) == [("header-tampered", None), ("compromised-key", 6)],
          "header fails its MAC -> header-tampered only; its attestation is not consulted")
    q = att_variant("att-header-format", rows_ok, "UPDATE audit_store SET format_version = 2")
    check(kinds(av.verify(str(q), comp1)) == [("header-tampered", None), ("compromised-key", 6)],
          "header format 2 with a compromised key -> header-tampered only")
    q = att_variant("att-none-v2", [])
    check(kinds(av.verify(str(q), comp2)) == [("compromised-key", s) for s in range(7, 11)],
          "v2 compromised: the header (signed by v1) needs no attestation")

    # Declarations: an attestation counts only if declaration_seq is an existing entry with the
    # action auditdb.key.compromised and a seq greater than the attested seq. Each of these
    # attestations has a valid MAC over what it claims; only the declaration rule rejects them.
    # Attestations that do not count are also foreign rows (section 11, step 6.2): one each.
    q = att_variant("att-decl-ordinary", [(0, 2, 8), (1, 2, 7), (2, 2, 7), (3, 2, 8), (4, 2, 42), (5, 2, 7)])
    rep = av.verify(str(q), comp1)
    check(kinds(rep) == [hdr] + [FR] * 3 + [("compromised-key", 3), ("compromised-key", 4), ("compromised-key", 6)]
          and all("does not count" in f.message for f in rep.findings if f.kind == "foreign-row"),
          f"declaration_seq naming an ordinary entry (header, 3) or no entry (4) -> ignored, flagged, "
          f"3 foreign rows ({kinds(rep)})")
    q = att_variant("att-decl-order", [(8, 1, 7), (9, 1, 9), (10, 1, 9)])
    k = kinds(av.verify(str(q), comp2))
    check(k == [FR] * 3 + [("compromised-key", s) for s in (7, 8, 9, 10)],
          f"declaration not after the attested row (7 < 8, 9 = 9, 9 < 10) -> ignored, flagged, 3 foreign rows ({k})")
    q = att_variant("att-decl-renamed", [(0, 2, 7)] + rows_ok,
                    f"UPDATE audit_entries SET action = '{DECLARATION} ' WHERE seq = 7")
    k = kinds(av.verify(str(q), comp1))
    check(k == [hdr] + [FR] * 6 + [("compromised-key", s) for s in range(1, 7)] + [("mac-mismatch", 7)],
          f"declaration's action changed (not exactly '{DECLARATION}') -> every attestation ignored, "
          f"6 foreign rows ({k})")
    q = att_variant("att-decl-deleted", [(0, 2, 7)] + rows_ok, "DELETE FROM audit_entries WHERE seq = 7")
    rep = av.verify(str(q), comp1)
    check([(f.kind, f.first) for f in rep.findings] == [hdr] + [FR] * 7 + [("compromised-key", s) for s in range(1, 7)]
          + [("missing-rows", 7)],
          f"declaration entry deleted -> attestations ignored; 6 foreign attestations + the cache row (2, 7) "
          f"({kinds(rep)})")

    # Attesting key version not a valid u32 (the MAC does not cover it: 2 + 2^32 must not pass as 2).
    q = att_variant("att-kv-u32", [(0, 2, 7)] + rows_ok,
                    "UPDATE audit_attestations SET key_version = key_version + 4294967296 WHERE seq IN (0, 2)",
                    "UPDATE audit_attestations SET key_version = -4294967294 WHERE seq = 3")
    rep = av.verify(str(q), comp1)
    check(kinds(rep) == [hdr] + [FR] * 3 + [("compromised-key", s) for s in (2, 3, 6)]
          and all("impossible types or values" in f.message for f in rep.findings if f.kind == "foreign-row"),
          f"attesting key_version 2 + 2^32 or negative -> ignored (header, 2, 3 flagged), 3 foreign rows "
          f"({kinds(rep)})")

    # A real declaration but a MAC that does not match; an attesting key that is compromised; a short MAC.
    p = tmp / "attested-bad.sqlite"
    shutil.copy(att, p)
    tamper(p, "UPDATE audit_attestations SET declaration_seq = 9 WHERE seq = 2",
           "UPDATE audit_attestations SET key_version = 1 WHERE seq = 3",
           "UPDATE audit_attestations SET mac = X'00' WHERE seq = 0")
    k = kinds(av.verify(str(p), comp1))
    check(k == [hdr] + [FR] * 3 + [("compromised-key", s) for s in (2, 3, 6)],
          f"bad attestation MAC / attesting key compromised / short MAC -> flagged, 3 foreign rows ({k})")
    att1 = tmp / "attested-by-v1.sqlite"
    build_store(att1, base_rows(), attest=[(8, 1, 9)])
    check(kinds(av.verify(str(att1), comp2)) == [("compromised-key", s) for s in (7, 9, 10)],
          "v2 compromised, row 8 attested by v1 (declared at 9) -> 7, 9, 10 flagged")

    # Malformed rows and rows below seq 1.
    p = fresh("malformed")
    tamper(p, "UPDATE audit_entries SET outcome = 7 WHERE seq = 2",
           "UPDATE audit_entries SET mac = X'00' WHERE seq = 5",
           "UPDATE audit_entries SET format_version = 2 WHERE seq = 8")
    k = kinds(av.verify(str(p), both))
    check(k == [("malformed-row", 2), ("malformed-row", 5), ("malformed-row", 8)],
          f"undefined outcome / short MAC / format 2 -> malformed-row at 2, 5, 8 ({k})")
    p = fresh("seq0")
    tamper(p, "INSERT INTO audit_entries SELECT 0, recorded_at, occurred_at, tenant, actor, action, resource_type,"
              " resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref,"
              " format_version, key_version, mac, seals FROM audit_entries WHERE seq = 1",
           "INSERT INTO audit_entries SELECT -3, recorded_at, occurred_at, tenant, actor, action, resource_type,"
              " resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref,"
              " format_version, key_version, mac, seals FROM audit_entries WHERE seq = 1")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last) for f in rep.findings] == [("unexpected-rows", -3, 0)],
          "rows at seq 0 and -3 -> unexpected-rows -3...0")

    # Rows moved out of the tail (step 5): one is named; consecutive ones are merged into one range.
    p = fresh("moved-one")
    tamper(p, "UPDATE audit_entries SET seq = -5 WHERE seq = 10")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last, f.message) for f in rep.findings] == [
        ("unexpected-rows", -5, -5, "1 row(s) with seq below 1; the log starts at seq 1"),
        ("missing-rows", 10, 10, "the row of seq 10 was moved out of the log to seq -5 (the tail was cut)")],
        f"the last row moved to seq -5 -> missing-rows 10...10 naming it ({[str(f) for f in rep.findings]})")
    p = fresh("moved-two")
    tamper(p, "UPDATE audit_entries SET seq = -5 WHERE seq = 10", "UPDATE audit_entries SET seq = -6 WHERE seq = 9")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last, f.message) for f in rep.findings] == [
        ("unexpected-rows", -6, -5, "2 row(s) with seq below 1; the log starts at seq 1"),
        ("missing-rows", 9, 10, "2 row(s) missing before seq 11 (removed)")],
        f"the last two rows moved below seq 1 -> one missing-rows 9...10 ({[str(f) for f in rep.findings]})")

    # An empty store.
    empty = tmp / "empty.sqlite"
    build_store(empty, [])
    rep = av.verify(str(empty), both, SID)
    check(rep.intact and rep.rows_checked == 0, "empty store intact")

    # WAL store read while a writer holds it open with uncheckpointed rows.
    walp = tmp / "wal.sqlite"
    build_store(walp, sample_rows(5), wal=True)
    writer = sqlite3.connect(walp)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("DELETE FROM audit_key_versions WHERE 0")  # start using the WAL
    writer.commit()
    rep = av.verify(str(walp), both, SID)
    writer.close()
    check(rep.intact and rep.rows_checked == 5, "WAL store read-only while a writer is open")

    # Command line.
    kf = write_key_file(tmp / "keys", {1: "active", 2: "active"})
    rc, out, _ = run_cli("--store", str(base), "--key-file", kf, "--store-id", SID.hex())
    check(rc == 0 and out.startswith("intact: 10 rows"), f"cli intact -> exit 0 ({rc}, {out.strip()})")
    rc, out, _ = run_cli("--store", str(tmp / "update.sqlite"), "--key-file", kf, "--json")
    j = json.loads(out) if rc == 1 else {}
    check(rc == 1 and j.get("findings", [{}])[0].get("kind") == "mac-mismatch"
          and j["findings"][0]["first_seq"] == 5, "cli --json findings -> exit 1")
    rc, out, _ = run_cli("--store", str(tmp / "delete.sqlite"), "--key-file", kf)
    check(rc == 1 and "missing-rows at seq 5" in out, "cli text findings name kind and seq")
    rc, _, err = run_cli("--store", str(tmp / "nope.sqlite"), "--key-file", kf)
    check(rc == 2, "cli missing store -> exit 2")
    loose = write_key_file(tmp / "keys-0644", {1: "active"}, mode=0o644)
    rc, _, err = run_cli("--store", str(base), "--key-file", loose)
    check(rc == 2 and "chmod 600" in err, "cli key file readable by others -> exit 2")
    rc, _, _ = run_cli("--store", str(base), "--key-file", kf, "--store-id", "abc")
    check(rc == 2, "cli bad --store-id -> exit 2")
    rc, _, _ = run_cli("--key-file", kf)
    check(rc == 2, "cli without --store -> exit 2")
    junk = tmp / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    rc, out, _ = run_cli("--store", str(junk), "--key-file", kf)
    check(rc == 1 and "corruption" in out, f"cli non-database file -> corruption, exit 1 ({rc})")
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()},2:{K2.hex()}:active")
    rc, out, _ = run_cli("--store", str(base), env=env)
    check(rc == 0, "cli keys from AUDITDB_KEYS")
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()}:compromised 2:{K2.hex()}")
    rc, out, _ = run_cli("--store", str(base), env=env)
    check(rc == 1 and out.count("compromised-key") == 7 and "compromised-key: the store header" in out,
          "cli AUDITDB_KEYS with a compromised version (header + 6 rows)")
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()}:compromised\n2:{K2.hex()}\n")
    rc, out, _ = run_cli("--store", str(att), env=env)
    check(rc == 1 and out.count("compromised-key") == 1, "cli AUDITDB_KEYS entries separated by newlines")
    # Every entry must have exactly 2 or 3 ':'-separated fields; entries are numbered from 1,
    # counting only non-empty ones. Exit 2 with the reference's message, never a traceback.
    for value, number, found in (("garbage", 1, 1),
                                 (f",, 1:{K1.hex()}:compromised  2:{K2.hex()}:active:x", 2, 4),
                                 (f"1:{K1.hex()},2", 2, 1),
                                 (f"1:{K1.hex()}:active:", 1, 4),
                                 (":::::", 1, 6)):
        rc, out, err = run_cli("--store", str(base), env=clean_env(AUDITDB_KEYS=value))
        want = (f"error: environment variable AUDITDB_KEYS, entry {number}: "
                f"expected VERSION:HEX or VERSION:HEX:STATUS (found {found} field(s))")
        check(rc == 2 and err.strip() == want and not out,
              f"cli AUDITDB_KEYS entry {number} with {found} field(s) -> exit 2, '{want}' ({rc}, {err.strip()[:120]})")
    for value in ("", "1::active", f"0:{K1.hex()}", f"1:{K1.hex()[:60]}", f"1:{K1.hex()}:revoked",
                  f"1:{K1.hex()}:compromised", "\u00e9:\u00e9"):
        rc, out, err = run_cli("--store", str(base), env=clean_env(AUDITDB_KEYS=value))
        check(rc == 2 and err.startswith("error: ") and "Traceback" not in err,
              f"cli AUDITDB_KEYS {value[:20]!r} -> exit 2 with a message ({rc}, {err.strip()[:100]})")
    rc, _, err = run_cli("--store", str(base), env=clean_env())
    check(rc == 2 and "AUDITDB_KEYS is not set" in err, "cli without any keys -> exit 2")

    # Key file parsing.
    def bad(text: str) -> bool:
        try:
            av.parse_key_text(text.encode(), "t")
            return False
        except av.KeyError_:
            return True
    h = "auditdb-keys v1\n"
    good = f"key 1 active - {K1.hex()}\n"
    check(not bad("# c\n\n  " + h + "\t# x\n" + good.replace(" ", "\t") + "\r\n"), "key file: comments, tabs, CRLF")
    check(not bad(h + good.replace(K1.hex(), K1.hex().upper())), "key file: upper-case hex")
    check(bad(good), "key file: missing header")
    check(bad(h + good + good), "key file: duplicate version")
    check(bad(h + good.replace("key 1", "key 0")), "key file: version 0")
    check(bad(h + good.replace("active", "revoked")), "key file: unknown status")
    check(bad(h + good.replace(K1.hex(), K1.hex()[:62])), "key file: short key")
    check(bad(h + good.replace(K1.hex(), "zz" + K1.hex()[2:])), "key file: bad hex")
    check(bad(h + good.replace("active", "compromised")), "key file: no active key")
    check(bad(h + good.rstrip("\n") + " # trailing\n"), "key file: trailing comment is a 6th field")


# ------------------------------------------------------------------------------------------
# 3b. The key proof (section 11, step 0) and side tables (step 6)
# ------------------------------------------------------------------------------------------

WRONG_MASTER = bytes([0x77] * 32)  # a key that signed nothing in any store built here


def keyring(masters: dict[int, bytes]) -> dict:
    return {v: av.Key(v, "active", "-", m) for v, m in masters.items()}


def test_key_proof(tmp: pathlib.Path) -> None:
    print("key proof (section 11, step 0)")
    FR = ("foreign-row", None)
    one = tmp / "kp-one-version.sqlite"  # header and rows 1..5 signed by version 1
    build_store(one, sample_rows(5))
    two = tmp / "kp-two-versions.sqlite"  # header and rows 1..3 by version 1, rows 4..8 by version 2
    build_store(two, sample_rows(8, rotate_at=4))

    def copy(src: pathlib.Path, name: str) -> pathlib.Path:
        q = tmp / f"kp-{name}.sqlite"
        shutil.copy(src, q)
        return q

    # A wrong key of the store's version: an error, not findings.
    e = wrong_key(one, keyring({1: WRONG_MASTER}))
    check(e is not None and e.versions == [1] and e.evidence == [0, 1, 2, 3, 4, 5]
          and str(e).startswith("wrong key for version 1: the key supplied for version 1 verifies none"),
          f"wrong key of the store's version -> 'wrong key for version 1' ({e})")
    q = copy(one, "wrong-and-tampered")
    tamper(q, "INSERT INTO audit_key_versions VALUES (99, 5)", "UPDATE audit_entries SET actor = 'x' WHERE seq = 2")
    e = wrong_key(q, keyring({1: WRONG_MASTER}))
    check(e is not None and e.versions == [1], "wrong key on a damaged store -> still the error, no findings")
    wrong_env = clean_env(AUDITDB_KEYS=f"1:{WRONG_MASTER.hex()}")
    for extra in ((), ("--json",)):
        rc, out, err = run_cli("--store", str(one), *extra, env=wrong_env)
        check(rc == 2 and not out and err.startswith("error: wrong key for version 1: ") and "Traceback" not in err,
              f"cli{''.join(' ' + x for x in extra)} wrong key -> exit 2, 'error: wrong key for version 1: ...' on stderr only "
              f"({rc}, {err.strip()[:100]})")

    # Version 2 signed rows 4..8 (version 1 the header and rows 1..3): a wrong key 2 is named.
    e = wrong_key(two, keyring({1: K1, 2: WRONG_MASTER}))
    check(e is not None and e.versions == [2] and e.evidence == [4, 5, 6, 7, 8]
          and str(e).startswith("wrong key for version 2: "),
          f"wrong key for version 2 (rows 4..8) -> 'wrong key for version 2' ({e})")
    e = wrong_key(two, keyring({1: WRONG_MASTER, 2: WRONG_MASTER}))
    check(e is not None and e.versions == [1, 2] and e.evidence == [0, 1, 2, 3]
          and str(e).startswith("wrong key for version 1, 2: the key supplied for version 1 "),
          f"both keys wrong -> 'wrong key for version 1, 2', the lowest first ({e})")
    rc, out, err = run_cli("--store", str(two), env=clean_env(AUDITDB_KEYS=f"1:{K1.hex()} 2:{WRONG_MASTER.hex()}"))
    check(rc == 2 and not out and err.startswith("error: wrong key for version 2: "),
          f"cli wrong key 2 -> exit 2 ({rc}, {err.strip()[:80]})")
    # The cache is not needed to find a version's rows near the end of the log.
    q = copy(two, "no-cache")
    tamper(q, "DELETE FROM audit_key_versions")
    e = wrong_key(q, keyring({1: K1, 2: WRONG_MASTER}))
    check(e is not None and e.versions == [2] and e.evidence == [8, 7, 6, 5, 4],
          f"cache emptied -> version 2 is still judged from the newest rows, descending ({e})")

    # A version that signed nothing is accepted (a version just rotated in).
    rep = av.verify(str(one), keyring({1: K1, 2: WRONG_MASTER, 3: WRONG_MASTER}), SID)
    check(rep.intact and rep.rows_checked == 5, f"ring with versions that signed nothing -> accepted, intact ({kinds(rep)})")
    rc, out, _ = run_cli("--store", str(one), env=clean_env(AUDITDB_KEYS=f"1:{K1.hex()},2:{WRONG_MASTER.hex()}"))
    check(rc == 0 and out.startswith("intact: 5 rows"), f"cli extra unused version -> intact, exit 0 ({rc})")
    empty = tmp / "kp-empty.sqlite"
    build_store(empty, [])  # the header is signed by version 1: evidence even without rows
    e = wrong_key(empty, keyring({1: WRONG_MASTER}))
    check(e is not None and e.versions == [1] and e.evidence == [0], f"empty store, wrong key -> the header is evidence ({e})")

    # The right key is proven by any evidence that verifies: damage is still reported as findings.
    q = copy(one, "header-and-last")
    tamper(q, "UPDATE audit_store SET created_at = created_at + 1", "UPDATE audit_entries SET actor = 'm' WHERE seq = 5")
    k = kinds(av.verify(str(q), keyring({1: K1})))
    check(k == [("header-tampered", None), ("mac-mismatch", 5)],
          f"right key, header and last row tampered -> proven; header-tampered + mac-mismatch at 5 ({k})")
    q = copy(two, "v2-mostly-tampered")
    tamper(q, "UPDATE audit_entries SET actor = 'm' WHERE seq IN (4, 5, 6, 8)")
    k = kinds(av.verify(str(q), keyring({1: K1, 2: K2})))
    check(k == [("mac-mismatch", s) for s in (4, 5, 6, 8)],
          f"right key 2, all but one of its rows tampered -> proven by row 7 ({k})")
    # ... unless the header and every row checked were altered (documented in step 0).
    single = tmp / "kp-single.sqlite"
    build_store(single, sample_rows(1))
    tamper(single, "UPDATE audit_store SET created_at = created_at + 1", "UPDATE audit_entries SET actor = 'm'")
    e = wrong_key(single, keyring({1: K1}))
    check(e is not None and e.versions == [1] and e.evidence == [0, 1],
          f"right key, header and every row altered -> judged wrong (documented) ({e})")
    # Malformed rows and a header of another format are no evidence: nothing to judge, accepted.
    q = tmp / "kp-no-evidence.sqlite"
    build_store(q, sample_rows(2))
    tamper(q, "UPDATE audit_store SET format_version = 2", "UPDATE audit_entries SET outcome = 7")
    k = kinds(av.verify(str(q), keyring({1: WRONG_MASTER})))
    check(k == [("header-tampered", None), ("malformed-row", 1), ("malformed-row", 2)],
          f"only malformed rows and a format-2 header -> no evidence, accepted; findings as usual ({k})")
    # Without a well-formed header there is no store id: no MAC can be checked, no proof.
    q = copy(one, "no-header")
    tamper(q, "DELETE FROM audit_store")
    k = kinds(av.verify(str(q), keyring({1: WRONG_MASTER})))
    check(k == [("header-tampered", None)], f"header deleted, wrong key -> header-tampered only ({k})")

    # The 64-row windows: rows 6..8 signed by version 2, then version 1 again up to 4200.
    rows = sample_rows(4200)
    for r in rows[5:8]:
        r["key_version"] = 2
    far = tmp / "kp-far.sqlite"
    build_store(far, rows)
    check(av.verify(str(far), keyring({1: K1, 2: K2})).intact, "4200-row store with version 2 at 6..8 intact")
    e = wrong_key(far, keyring({1: K1, 2: WRONG_MASTER}))
    check(e is not None and e.versions == [2] and e.evidence == [6, 7, 8],
          f"wrong key 2, rows 6..8 found from the cache's first_seq -> wrong ({e})")
    tamper(far, "DELETE FROM audit_key_versions WHERE key_version = 2")
    k = kinds(av.verify(str(far), keyring({1: K1, 2: WRONG_MASTER})))
    check(k == [("mac-mismatch", s) for s in (6, 7, 8)],
          f"cache row gone, version 2's rows outside both windows -> no evidence, accepted; mac-mismatch ({k})")
    many = tmp / "kp-many.sqlite"  # version 1: header and rows 1..100; the first 64 and the header altered
    build_store(many, sample_rows(100))
    tamper(many, "UPDATE audit_store SET created_at = created_at + 1",
           "UPDATE audit_entries SET actor = 'm' WHERE seq <= 64")
    k = kinds(av.verify(str(many), keyring({1: K1})))
    check(k == [("header-tampered", None)] + [("mac-mismatch", s) for s in range(1, 65)],
          f"header and rows 1..64 altered -> proven by the newest rows ({len(k)} findings)")
    check(FR not in k, "no foreign rows in an untouched cache")


def test_side_tables(tmp: pathlib.Path) -> None:
    print("side tables (section 11, step 6)")
    both = ring({1: "active", 2: "active"})
    FR = ("foreign-row", None)
    base = tmp / "st-base.sqlite"  # the 10-row store: version 2 from seq 7; declarations at 7 and 9
    macs = build_store(base, base_rows())
    plain = tmp / "st-plain.sqlite"  # the same without declarations: seq 7 is an ordinary row
    build_store(plain, sample_rows(10, rotate_at=7))

    def copy(src: pathlib.Path, name: str) -> pathlib.Path:
        q = tmp / f"st-{name}.sqlite"
        shutil.copy(src, q)
        return q

    def insert(path: pathlib.Path, *sql: str) -> None:
        """Plain inserts with the triggers in place (they allow new rows in these tables)."""
        conn = sqlite3.connect(path)
        for stmt in sql:
            conn.execute(stmt)
        conn.commit()
        conn.close()

    def foreign_messages(rep) -> list[str]:
        return [f.message for f in rep.findings if f.kind == "foreign-row"]

    # 6.1 audit_key_versions.
    q = copy(base, "kv-99")
    insert(q, "INSERT INTO audit_key_versions VALUES (99, 5)")
    rep = av.verify(str(q), both, SID)
    check(kinds(rep) == [FR] and "(key_version 99, first_seq 5) is not confirmed by the log" in rep.findings[0].message,
          f"INSERT INTO audit_key_versions VALUES (99, 5) -> exactly one foreign-row ({[str(f) for f in rep.findings]})")
    rc, out, _ = run_cli("--store", str(q), env=clean_env(AUDITDB_KEYS=f"1:{K1.hex()},2:{K2.hex()}"))
    check(rc == 1 and "foreign-row: audit_key_versions row" in out, f"cli foreign row -> exit 1 ({rc})")
    for name, sql, why in (
            ("kv-other-version", ("DELETE FROM audit_key_versions WHERE key_version = 2",
                                  "INSERT INTO audit_key_versions VALUES (2, 3)"), "points at a row signed by version 1"),
            ("kv-not-first", ("DELETE FROM audit_key_versions WHERE key_version = 2",
                              "INSERT INTO audit_key_versions VALUES (2, 8)"), "row 8 is version 2's, but so is 7"),
            ("kv-zero", ("INSERT INTO audit_key_versions VALUES (0, 1)",), "version 0"),
            ("kv-negative-seq", ("INSERT INTO audit_key_versions VALUES (3, -1)",), "first_seq -1"),
            ("kv-u32", ("INSERT INTO audit_key_versions VALUES (4294967297, 1)",), "version 2^32 + 1 (not 1 mod 2^32)"),
            ("kv-missing-row", ("INSERT INTO audit_key_versions VALUES (3, 11)",), "no row at seq 11")):
        q = copy(base, name)
        tamper(q, *sql)
        k = kinds(av.verify(str(q), both))
        check(k == [FR], f"cache row: {why} -> one foreign-row, and the key proof still passes ({k})")
    q = copy(base, "kv-deleted")
    tamper(q, "DELETE FROM audit_key_versions")
    check(av.verify(str(q), both).intact, "cache rows deleted -> nothing (the cache is not proven complete)")
    q = copy(base, "kv-many")
    insert(q, *[f"INSERT INTO audit_key_versions VALUES ({100 + i}, 1)" for i in range(105)])
    rep = av.verify(str(q), both)
    msgs = foreign_messages(rep)
    check(kinds(rep) == [FR] * 101 and msgs[-1] == "5 more unconfirmed audit_key_versions row(s)",
          f"105 unconfirmed cache rows -> 100 named + '5 more' ({len(msgs)}, {msgs[-1:]})")

    # 6.2 audit_attestations (no key compromised: the rows matter only as foreign rows here).
    q = copy(plain, "att-junk")
    insert(q, "INSERT INTO audit_attestations VALUES (5, 2, 7, randomblob(32))")
    rep = av.verify(str(q), both)
    check(kinds(rep) == [FR] and "(seq 5, key_version 2) is not an attestation AuditDB wrote: it does not count"
          in rep.findings[0].message, f"junk attestation, declaration_seq 7 an ordinary row -> foreign-row "
          f"'does not count' ({[str(f) for f in rep.findings]})")
    q = copy(base, "att-random-mac")
    insert(q, "INSERT INTO audit_attestations VALUES (5, 2, 7, randomblob(32))")
    rep = av.verify(str(q), both)
    check(kinds(rep) == [FR] and "its MAC does not verify" in rep.findings[0].message,
          f"real declaration (seq 7), random MAC -> foreign-row ({[str(f) for f in rep.findings]})")
    valid = tmp / "st-att-valid.sqlite"
    build_store(valid, base_rows(), attest=[(0, 2, 7), (5, 2, 7), (8, 1, 9)])
    rep = av.verify(str(valid), both)
    check(rep.intact, f"valid attestations (header, rows 5 and 8) -> no finding ({kinds(rep)})")
    q = copy(base, "att-other-version")
    insert(q, "INSERT INTO audit_attestations VALUES (5, 3, 7, randomblob(32))")
    check(av.verify(str(q), both).intact, "attestation under a version the ring lacks -> not reported")
    q = copy(valid, "att-row-changed")
    tamper(q, "UPDATE audit_entries SET mac = randomblob(32) WHERE seq = 5")
    rep = av.verify(str(q), both)
    check(kinds(rep) == [FR, ("mac-mismatch", 5)] and "its MAC does not verify" in rep.findings[0].message,
          f"attested row's stored MAC replaced -> its attestation no longer verifies: foreign-row + mac-mismatch "
          f"({kinds(rep)})")
    q = copy(base, "att-not-in-log")
    att5 = av.attestation_mac(KS[2], SID, 5, 1, macs[4], 7)
    tamper(q, "DELETE FROM audit_entries WHERE seq = 5",
           f"INSERT INTO audit_attestations VALUES (5, 2, 7, X'{att5.hex()}')",
           "INSERT INTO audit_attestations VALUES (-2, 2, 7, randomblob(32))")
    rep = av.verify(str(q), both)
    msgs = foreign_messages(rep)
    check(kinds(rep) == [FR, FR, ("missing-rows", 5)] and all("which is not in the log" in m for m in msgs),
          f"attestations of seq 5 (deleted) and seq -2 -> foreign-row 'not in the log' ({kinds(rep)}, {msgs})")
    q = copy(base, "att-impossible")
    insert(q, *[f"INSERT INTO audit_attestations VALUES ({s}, 2, 7, X'00')" for s in range(1, 106)])
    rep = av.verify(str(q), both)
    msgs = foreign_messages(rep)
    check(kinds(rep) == [FR] * 101 and "impossible types or values" in msgs[0]
          and msgs[-1] == "5 more foreign audit_attestations row(s)",
          f"105 attestations with a 1-byte MAC -> 100 named + '5 more' ({len(msgs)}, {msgs[-1:]})")
    # Rule 2 needs a well-formed header (step 2.1): without a store id no attestation is judged.
    q = copy(valid, "att-header-gone")
    tamper(q, "DELETE FROM audit_store", "INSERT INTO audit_attestations VALUES (-2, 2, 7, X'00')")
    rep = av.verify(str(q), both)
    check(kinds(rep) == [("header-tampered", None)],
          f"header deleted -> no foreign-row from audit_attestations (step 2.1 failed), not even for an "
          f"impossible row; header-tampered only ({kinds(rep)})")
    q = copy(valid, "att-header-invalid")
    tamper(q, "PRAGMA ignore_check_constraints = ON", "UPDATE audit_store SET store_id = X'00'")
    rep = av.verify(str(q), both)
    check(kinds(rep) == [("header-tampered", None)],
          f"header store_id not 16 bytes (step 2.1 fails) -> no foreign-row from audit_attestations ({kinds(rep)})")
    # A well-formed header whose mac is not 32 bytes (audit_store's CHECK bypassed): the seq-0
    # attestation attests nothing that exists.
    q = copy(valid, "att-header-mac-31")
    tamper(q, "PRAGMA ignore_check_constraints = ON", "UPDATE audit_store SET mac = substr(mac, 1, 31)")
    conn = sqlite3.connect(q)
    stored = conn.execute("SELECT typeof(mac), length(mac) FROM audit_store").fetchone()
    conn.close()
    rep = av.verify(str(q), both)
    msgs = foreign_messages(rep)
    check(stored == ("blob", 31) and kinds(rep) == [FR, ("header-tampered", None)]
          and msgs[0].startswith("audit_attestations row (seq 0, key_version 2)")
          and "attests the store header, whose mac is 31 bytes, not 32" in msgs[0],
          f"header mac 31 bytes -> its seq-0 attestation is foreign; foreign-row sorts before header-tampered "
          f"({stored}, {kinds(rep)}, {msgs})")

    # Step 6 order: audit_key_versions by key_version, then audit_attestations by (seq, key_version),
    # whatever order the rows were inserted in.
    q = copy(base, "order-within")
    insert(q, "INSERT INTO audit_key_versions VALUES (99, 5)", "INSERT INTO audit_key_versions VALUES (50, 5)",
           "INSERT INTO audit_attestations VALUES (6, 2, 7, randomblob(32))",
           "INSERT INTO audit_attestations VALUES (3, 2, 7, randomblob(32))",
           "INSERT INTO audit_attestations VALUES (3, 1, 9, randomblob(32))")
    msgs = foreign_messages(av.verify(str(q), both))
    check([m.split(")")[0] for m in msgs] == [
              "audit_key_versions row (key_version 50, first_seq 5", "audit_key_versions row (key_version 99, first_seq 5",
              "audit_attestations row (seq 3, key_version 1", "audit_attestations row (seq 3, key_version 2",
              "audit_attestations row (seq 6, key_version 2"],
          f"foreign rows: cache by key_version, then attestations by (seq, key_version) ({msgs})")

    # Ordering: findings without a seq first, then by kind name; then by seq.
    q = copy(base, "order")
    tamper(q, "UPDATE audit_store SET created_at = created_at + 1",
           "UPDATE audit_entries SET actor = 'm' WHERE seq = 4",
           "INSERT INTO audit_key_versions VALUES (99, 5)",
           "INSERT INTO audit_attestations VALUES (5, 2, 7, randomblob(32))")
    rep = av.verify(str(q), both, bytes(16))
    k = [(f.kind, f.first) for f in rep.findings]
    check(k == [FR, FR, ("header-tampered", None), ("store-identity-mismatch", None), ("mac-mismatch", 4)]
          and rep.findings[0].message.startswith("audit_key_versions row")
          and rep.findings[1].message.startswith("audit_attestations row"),
          f"findings ordered: no seq first, by kind name (cache before attestations) ({k})")


def _schema_sql(path: pathlib.Path, name: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT sql FROM sqlite_schema WHERE name = ?", (name,)).fetchone()[0]
    finally:
        conn.close()


def set_schema_sql(path: pathlib.Path, name: str, sql: str) -> None:
    """Rewrites the sqlite_schema text of `name` without touching its b-tree (writable_schema)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_schema SET sql = ? WHERE name = ?", (sql, name))
        conn.commit()
        conn.execute("PRAGMA writable_schema = OFF")
    except sqlite3.DatabaseError:  # defensive mode: the sqlite3 shell can still do it
        conn.close()
        quoted = sql.replace("'", "''")
        subprocess.run(["sqlite3", str(path), f"PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = "
                        f"'{quoted}' WHERE name = '{name}'; PRAGMA writable_schema = OFF;"], check=True)
        return
    conn.close()


def test_query_indexes(tmp: pathlib.Path) -> None:
    print("query indexes (section 11, step 7)")
    both = ring({1: "active", 2: "active"})
    IM = ("index-mismatch", None)
    base = tmp / "ix-base.sqlite"  # the 10-row store: declarations (engine entries) at 7 and 9
    build_store(base, base_rows())

    def copy(name: str) -> pathlib.Path:
        q = tmp / f"ix-{name}.sqlite"
        shutil.copy(base, q)
        return q

    def mismatches(rep) -> list[str]:
        return [f.message for f in rep.findings if f.kind == "index-mismatch"]

    # (a) Intact: every index holds exactly its rows' entries (each index non-empty here).
    conn = sqlite3.connect(base)
    sizes = {name: conn.execute(av._index_scan_sql(name, cols, where)).fetchall().__len__()
             for name, cols, where in av.QUERY_INDEXES}
    conn.close()
    check(sizes == {"audit_entries_actor": 10, "audit_entries_resource": 10, "audit_entries_tenant_time": 5,
                    "audit_entries_recorded_at": 10, "audit_entries_engine": 2, "audit_entries_origin_ref": 1,
                    "audit_entries_tenant_seq": 5},
          f"test store: every query index has entries ({sizes})")
    rep = av.verify(str(base), both, SID)
    check(rep.intact and not mismatches(rep), f"intact store -> no index-mismatch ({kinds(rep)})")
    q = copy("below-one")  # rows below seq 1 are in the indexes too, and in the rows' entries
    tamper(q, "INSERT INTO audit_entries SELECT -3, recorded_at, occurred_at, tenant, actor, action, resource_type,"
              " resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref,"
              " format_version, key_version, mac, seals FROM audit_entries WHERE seq = 7")
    k = kinds(av.verify(str(q), both))
    check(k == [("unexpected-rows", -3)], f"a row below seq 1 (in every index) -> unexpected-rows only ({k})")

    # (b) A byte flipped inside a value in the resource index's root page (a hand-edited b-tree).
    q = copy("flip")
    conn = sqlite3.connect(q)
    root = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'audit_entries_resource'").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    data = bytearray(q.read_bytes())
    start, end = (root - 1) * page_size, root * page_size
    needle = "\u6587-5".encode()
    at = data.find(needle, start, end)
    check(mode != "wal" and at >= 0 and data.find(needle, at + 1, end) < 0,
          f"resource id of seq 5 found once in the resource index's root page {root} ({mode}, {at})")
    if at >= 0:
        # "文-5" -> "文-4": same length, so the cell still parses; and ("文-4", 5) still sorts between
        # ("文-4", 4) and ("文-6", 6), so only the multiset comparison can find it.
        data[at + len(needle) - 1] = ord("4")
        q.write_bytes(bytes(data))
        rep = av.verify(str(q), both, SID)
        msgs = mismatches(rep)
        check(kinds(rep) == [IM] and msgs[0].startswith("index audit_entries_resource does not hold exactly")
              and "(10 entries, as many as the rows imply, but some are altered)" in msgs[0],
              f"byte flipped in audit_entries_resource -> exactly one index-mismatch naming it ({[str(f) for f in rep.findings]})")
        kf = write_key_file(tmp / "ix-keys", {1: "active", 2: "active"})
        rc, out, _ = run_cli("--store", str(q), "--key-file", kf)
        check(rc == 1 and "index-mismatch: index audit_entries_resource" in out, f"cli index-mismatch -> exit 1 ({rc})")

    # The same bytes as a BLOB: the record header's serial type of resource_id 23 (TEXT, 5 bytes)
    # -> 22 (BLOB, 5 bytes). Entries are compared with their storage class.
    q = copy("text-to-blob")
    data = bytearray(q.read_bytes())
    # The entry (seq >> 14, resource_id, seq >> 0, outcome, severity, action, rowid): a record header
    # of 8 bytes (its size, then 7 serial types), seq >> 14 = 0 (type 8), TEXT of 5 bytes (type 23),
    # seq >> 0 = 5 (type 1), two small integers and a short TEXT (one byte each), rowid 5 (type 1).
    found = data.find(needle, start, end)
    at = found - 8
    check(found >= 0 and data[at:at + 4] == bytes([8, 8, 23, 1]),
          f"the index cell of seq 5 found in page {root} ({found}, {bytes(data[at:at + 8]).hex()})")
    if found >= 0:
        data[at + 2] = 22
        q.write_bytes(bytes(data))
        conn = sqlite3.connect(q)
        typed = conn.execute("SELECT typeof(resource_id) FROM audit_entries INDEXED BY audit_entries_resource "
                             "WHERE resource_id IS NOT NULL AND seq = 5").fetchone()
        conn.close()
        rep = av.verify(str(q), both, SID)
        msgs = mismatches(rep)
        # A BLOB sorts after every TEXT: the next entry (seq 6) is out of key order.
        check(typed == ("blob",) and kinds(rep) == [IM]
              and msgs[0].startswith("index audit_entries_resource is not in key order (its entry for rowid 6 "),
              f"index value TEXT -> BLOB with the same bytes -> index-mismatch ({typed}, {[str(f) for f in rep.findings]})")

    # The bucket (seq >> 14) of seq 5's actor entry changed from 0 to 1 (serial type 8 -> 9, both
    # without body bytes): a query of bucket 0 through the index misses the row. The covering scan
    # reads the stored expression value, so the entry is seen as altered.
    q = copy("bucket")
    conn = sqlite3.connect(q)
    aroot = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'audit_entries_actor'").fetchone()[0]
    conn.close()
    data = bytearray(q.read_bytes())
    # The same layout as the resource entry above: an 8-byte record header (bucket 0, TEXT of 5
    # bytes, seq >> 0 = 5, ...), then "user5".
    astart, aend = (aroot - 1) * page_size, aroot * page_size
    found = data.find(b"user5", astart, aend)
    at = found - 8
    check(found >= 0 and data.find(b"user5", found + 1, aend) < 0 and data[at:at + 4] == bytes([8, 8, 23, 1]),
          f"the actor index cell of seq 5 found in page {aroot} ({found}, {bytes(data[at:at + 8]).hex()})")
    if found >= 0:
        data[at + 1] = 9
        q.write_bytes(bytes(data))
        conn = sqlite3.connect(q)
        hit = conn.execute("SELECT seq FROM audit_entries WHERE (seq >> 14) = 0 AND actor = 'user5'").fetchall()
        conn.close()
        rep = av.verify(str(q), both, SID)
        msgs = mismatches(rep)
        # Bucket 1 sorts after every entry of bucket 0: the next entry (seq 6) is out of key order.
        check(hit == [] and kinds(rep) == [IM]
              and msgs[0].startswith("index audit_entries_actor is not in key order (its entry for rowid 6 "),
              f"actor entry moved to bucket 1 (a query of bucket 0 misses row 5: {hit}) -> index-mismatch "
              f"({[str(f) for f in rep.findings]})")

    # (c) An index built without the entry of seq 5, its sqlite_schema text restored to Appendix A's.
    actor_sql = _schema_sql(base, "audit_entries_actor")
    q = copy("partial")
    conn = sqlite3.connect(q)
    conn.execute("DROP INDEX audit_entries_actor")
    conn.execute("CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor) WHERE actor IS NOT NULL AND seq <> 5")
    conn.commit()
    conn.close()
    set_schema_sql(q, "audit_entries_actor", actor_sql)
    check(_schema_sql(q, "audit_entries_actor") == actor_sql, "the actor index's text is Appendix A's again")
    rep = av.verify(str(q), both, SID)
    msgs = mismatches(rep)
    check(kinds(rep) == [IM] and msgs[0].startswith("index audit_entries_actor does not hold exactly")
          and "(9 entries where the rows imply 10)" in msgs[0],
          f"index without seq 5, text restored -> exactly one index-mismatch for audit_entries_actor, no "
          f"schema-tampered ({[str(f) for f in rep.findings]})")
    tamper(q, "DELETE FROM audit_store")
    k = kinds(av.verify(str(q), both))
    check(k == [("header-tampered", None)], f"... and without a store id step 7 does not run ({k})")

    # (d) An index whose definition text differs: schema-tampered (step 1) only, not scanned.
    q = copy("redefined")
    conn = sqlite3.connect(q)
    conn.execute("DROP INDEX audit_entries_actor")
    conn.execute("CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor) WHERE actor IS NOT NULL AND seq <> 5")
    conn.commit()
    conn.close()
    rep = av.verify(str(q), both, SID)
    check(kinds(rep) == [("schema-tampered", None)] and not mismatches(rep)
          and rep.findings[0].message == "index audit_entries_actor differs from its definition (edited?)",
          f"actor index redefined (without seq 5) -> schema-tampered only, no index-mismatch ({[str(f) for f in rep.findings]})")
    q = copy("dropped")
    tamper(q, "DROP INDEX audit_entries_engine")
    k = kinds(av.verify(str(q), both))
    check(k == [("schema-tampered", None)], f"engine index dropped -> schema-tampered only ({k})")


# ------------------------------------------------------------------------------------------
# 3e. The store's own checkpoints (section 11, step 8)
# ------------------------------------------------------------------------------------------

CKPT_SEED = bytes(range(0x40, 0x60))    # the PUBLIC TEST-ONLY checkpoint seed (FORMAT.md 14, 16.4)
OTHER_SEED = bytes(range(0x60, 0x80))   # another signer: not the key of checkpoint.pub
CKPT_PUB = DOCS / "test-vectors" / "checkpoint.pub"  # the public key of CKPT_SEED, version 1
CKPT_TIME = 1_795_439_710_000_000
CKPT_COLUMNS = ("seq", "created_at", "key_version", "public_key", "chain_head", "merkle_root", "signature", "frontier")
CKPT_TRIGGERS = [m.group(0) for m in re.finditer(r"CREATE TRIGGER audit_checkpoints\w* .*?END;", av.ALL_MIGRATIONS_SQL, re.S)]
CKPT_TRIGGER_NAMES = [re.match(r"CREATE TRIGGER (\w+)", t).group(1) for t in CKPT_TRIGGERS]


def leaves_of(rows: list[dict], store_id: bytes = SID) -> list[bytes]:
    """LEAF (16.2) of each row: SHA256(00 || ENC_ROW), commitments included."""
    return [ax.leaf_hash(av.enc_row(KS[r["key_version"]], store_id, as_bytes_row(r))) for r in rows]


def frontier_of(leaves: list[bytes]) -> list[bytes]:
    """The frontier (16.2): MTH of each perfect subtree along the right edge, largest first."""
    out, start, n = [], 0, len(leaves)
    bit = 1 << max(n.bit_length() - 1, 0)
    while bit:
        if n & bit:
            out.append(ax.merkle_root(leaves[start:start + bit]))
            start += bit
        bit >>= 1
    return out


def fold_frontier(frontier: list[bytes]) -> bytes:
    r = frontier[-1]
    for f in reversed(frontier[:-1]):
        r = ax.node_hash(f, r)
    return r


def checkpoint_row(seq: int, chain_head: bytes, leaves: list[bytes], seed: bytes = CKPT_SEED, key_version: int = 1,
                   store_id: bytes = SID, time: int = CKPT_TIME, flip_signature: bool = False) -> tuple:
    """An audit_checkpoints row (16.3) signing CKPT_MSG (16.1) with `seed`. Root and frontier are
    those of leaves[:seq] when 1 <= seq <= len(leaves), else made up (step 8 reads neither)."""
    if 1 <= seq <= len(leaves):
        frontier = frontier_of(leaves[:seq])
        root = ax.merkle_root(leaves[:seq])
    else:
        root = hashlib.sha256(b"no such tree %d" % seq).digest()
        frontier = [root] * bin(seq).count("1")
    public = ax.ed25519_public_key(seed)
    cp = {"storeId": store_id.hex(), "seq": seq, "chainHead": chain_head.hex(), "merkleRoot": root.hex(),
          "time": time, "keyVersion": key_version, "publicKey": public.hex()}
    msg = ax.statement(cp)
    assert len(msg) == 140
    signature = bytearray(ax.ed25519_sign(seed, msg))
    if flip_signature:
        signature[5] ^= 0x01
    return (seq, time, key_version, public, chain_head, root, bytes(signature), b"".join(frontier))


def insert_checkpoints(path: pathlib.Path, *rows: tuple, bypass_triggers: bool = False) -> None:
    conn = sqlite3.connect(path)
    if bypass_triggers:  # an attacker with file access (e.g. to insert below the newest row)
        for name in CKPT_TRIGGER_NAMES:
            conn.execute(f"DROP TRIGGER {name}")
    conn.executemany(f"INSERT INTO audit_checkpoints ({', '.join(CKPT_COLUMNS)}) VALUES ({', '.join('?' * 8)})", rows)
    if bypass_triggers:
        for t in CKPT_TRIGGERS:
            conn.execute(t)
    conn.commit()
    conn.close()


def append_rows(path: pathlib.Path, rows: list[dict], prev_mac: bytes, store_id: bytes = SID) -> list[bytes]:
    """Appends `rows` sealed with the real keys after `prev_mac`, as a key holder could."""
    conn = sqlite3.connect(path)
    macs = []
    for cols in rows:
        mac = av.seal(KS[cols["key_version"]], store_id, as_bytes_row(cols), prev_mac)
        conn.execute(f"INSERT INTO audit_entries ({', '.join(av.ROW_COLUMNS)}) VALUES ({', '.join('?' * 18)})",
                     [cols[c] for c in av.ROW_COLUMNS[:-1]] + [mac])
        macs.append(mac)
        prev_mac = mac
    conn.commit()
    conn.close()
    return macs


def test_stored_checkpoints(tmp: pathlib.Path) -> None:
    print("the store's own checkpoints (section 11, step 8)")
    both = ring({1: "active", 2: "active"})
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()},2:{K2.hex()}")
    pub = av.load_public_key_file(str(CKPT_PUB))
    check(pub == {1: ax.ed25519_public_key(CKPT_SEED)}, "checkpoint.pub holds the public key of the test seed 40..5f")
    FR = ("foreign-row", None)
    CAVEAT = "checked only against the public key it names"

    def both_modes(path: pathlib.Path):
        """(report without a public key file, report under checkpoint.pub)."""
        return av.verify(str(path), both, SID), av.verify(str(path), both, SID, checkpoint_keys=pub)

    def shown(rep) -> list[str]:
        return [str(f) for f in rep.findings]

    # The builder against the vectors: the checkpoint of the four vector rows is checkpoints.json's.
    vec_rows = [r["columns"] for r in av.build_vectors()["rows"]]
    vs = tmp / "ck-vectors.sqlite"
    vmacs = build_store(vs, vec_rows)
    vleaves = leaves_of(vec_rows)
    vrow = checkpoint_row(4, vmacs[3], vleaves, time=ax.TEST_TIME)
    cj = json.loads((DOCS / "test-vectors" / "checkpoints.json").read_text(encoding="utf-8"))["checkpoint"]
    check(vrow[6].hex() == cj["signature"] and vrow[5].hex() == cj["merkleRoot"] and vrow[4].hex() == cj["chainHead"],
          "a checkpoint row built here for the vector rows == checkpoints.json (root, chain head, signature)")
    check(len(vrow[7]) == 32 and fold_frontier(frontier_of(vleaves)) == vrow[5], "frontier of 4 leaves: one hash, the root")
    for n in (1, 5, 7, 10, 13):
        lv = [hashlib.sha256(bytes([i])).digest() for i in range(n)]
        fr = frontier_of(lv)
        check(len(fr) == bin(n).count("1") and fold_frontier(fr) == ax.merkle_root(lv),
              f"frontier of {n} leaves: popcount hashes, folds to the root")
    insert_checkpoints(vs, vrow)
    for rep in both_modes(vs):
        check(rep.intact, f"vector store with its checkpoint at seq 4 -> intact ({shown(rep)})")

    base = tmp / "ck-base.sqlite"  # the 10-row store: key version 2 from seq 7
    rows = base_rows()
    macs = build_store(base, rows)
    leaves = leaves_of(rows)

    def copy(name: str) -> pathlib.Path:
        q = tmp / f"ck-{name}.sqlite"
        shutil.copy(base, q)
        return q

    # (a) intact, with a checkpoint at the last seq (and an earlier one).
    p = copy("intact")
    insert_checkpoints(p, checkpoint_row(4, macs[3], leaves), checkpoint_row(10, macs[9], leaves))
    for rep in both_modes(p):
        check(rep.intact, f"(a) intact store, checkpoints at 4 and 10 (the last seq) -> no finding ({shown(rep)})")
    rc, out, err = run_cli("--store", str(p), "--public-key", str(CKPT_PUB), env=env)
    check(rc == 0 and out.startswith("intact"), f"(a) cli --public-key on an intact store -> exit 0 ({rc} {out}{err})")

    # (b) the tail cut below the checkpoints at 9 and 10 (rows > 8 deleted, the checkpoint rows left).
    p = copy("cut")
    insert_checkpoints(p, *(checkpoint_row(s, macs[s - 1], leaves) for s in (5, 9, 10)))
    tamper(p, "DELETE FROM audit_entries WHERE seq > 8")
    plain, keyed = both_modes(p)
    for rep, mode in ((plain, "without --public-key"), (keyed, "with --public-key")):
        check([(f.kind, f.first, f.last) for f in rep.findings] == [("truncated", 9, 10)],
              f"(b) tail cut to 8 below checkpoints at 9 and 10, {mode} -> truncated 9...10 only ({shown(rep)})")
    check(plain.findings and CAVEAT in plain.findings[0].message
          and "the log ends at seq 8 but the store's own checkpoint at seq 10 (made 2026-11-23T13:15:10.000000Z, "
              "checkpoint key version 1) covers 10 rows: rows 9...10 were cut" in plain.findings[0].message,
          f"(b) without a key file the message names the checkpoint and says the signature was only self-checked")
    check(keyed.findings and CAVEAT not in keyed.findings[0].message, "(b) under the key file: no such caveat")
    rc, out, _ = run_cli("--store", str(p), "--public-key", str(CKPT_PUB), env=env)
    check(rc == 1 and "truncated at seqs 9...10:" in out, f"(b) cli --public-key -> exit 1, truncated ({rc} {out})")
    rc, out, _ = run_cli("--store", str(p), "--json", env=env)
    check(rc == 1 and json.loads(out)["findings"][0]["kind"] == "truncated", f"(b) cli without --public-key -> truncated ({rc})")

    # (c) a checkpoint row with a bad signature beyond the end of the log.
    p = copy("bad-signature")
    insert_checkpoints(p, checkpoint_row(10, macs[9], leaves), checkpoint_row(15, bytes(32), leaves, flip_signature=True))
    for rep in both_modes(p):
        check(kinds(rep) == [FR] and rep.findings[0].message.startswith(
                  "audit_checkpoints row at seq 15 is not a checkpoint of this store: its Ed25519 signature does not verify"),
              f"(c) a bad signature beyond the end -> one foreign-row, no truncated ({shown(rep)})")

    # (d) a valid checkpoint signed by another key, beyond the end.
    p = copy("other-key")
    insert_checkpoints(p, checkpoint_row(12, bytes(range(32)), leaves, seed=OTHER_SEED))
    plain, keyed = both_modes(p)
    check(kinds(keyed) == [FR] and "names a different public key for version 1 than the public key file" in keyed.findings[0].message,
          f"(d) another signer, with --public-key -> foreign-row naming another public key ({shown(keyed)})")
    check([(f.kind, f.first, f.last) for f in plain.findings] == [("truncated", 11, 12)] and CAVEAT in plain.findings[0].message,
          f"(d) another signer, without --public-key -> truncated 11...12 (self-valid, with the caveat) ({shown(plain)})")
    q = copy("other-version")
    insert_checkpoints(q, checkpoint_row(12, bytes(range(32)), leaves, seed=OTHER_SEED, key_version=7))
    rep = av.verify(str(q), both, SID, checkpoint_keys=pub)
    check(kinds(rep) == [FR] and "checkpoint key version 7, which the public key file lacks" in rep.findings[0].message,
          f"(d) a key version the key file lacks -> foreign-row ({shown(rep)})")
    rc, out, _ = run_cli("--store", str(p), "--public-key", str(CKPT_PUB), env=env)
    check(rc == 1 and "foreign-row: audit_checkpoints row at seq 12" in out and "truncated" not in out,
          f"(d) cli --public-key -> foreign-row ({rc} {out})")

    # (e) rewritten by a key holder: the tail from seq 6 cut and re-appended with other values,
    # correctly sealed with the real keys; the checkpoint at 8 signed the old row 8.
    p = copy("rewritten")
    insert_checkpoints(p, checkpoint_row(8, macs[7], leaves))
    tamper(p, "DELETE FROM audit_entries WHERE seq > 5")
    forged = [dict(r, actor=f"mallory{r['seq']}") for r in rows[5:]]
    new_macs = append_rows(p, forged, macs[4])
    check(new_macs[2] != macs[7], "(e) the re-appended row 8 has another mac")
    plain, keyed = both_modes(p)
    for rep, mode in ((plain, "without --public-key"), (keyed, "with --public-key")):
        check([(f.kind, f.first, f.last) for f in rep.findings] == [("anchor-mismatch", 8, 8)],
              f"(e) rows 6...10 rewritten and re-signed, checkpoint at 8, {mode} -> anchor-mismatch at 8 only ({shown(rep)})")
    check(plain.findings and plain.findings[0].message.startswith(
              "row 8 does not have the chain head signed by the store's own checkpoint at seq 8") and CAVEAT in plain.findings[0].message
          and keyed.findings and CAVEAT not in keyed.findings[0].message, "(e) the anchor-mismatch messages")

    # (f) a checkpoint at a seq whose row was deleted in the middle: step 4's missing-rows only.
    p = copy("hole")
    insert_checkpoints(p, checkpoint_row(5, macs[4], leaves), checkpoint_row(10, macs[9], leaves))
    tamper(p, "DELETE FROM audit_entries WHERE seq = 5")
    for rep in both_modes(p):
        check(kinds(rep) == [("missing-rows", 5)], f"(f) row 5 deleted under a checkpoint at 5 -> missing-rows 5 only ({shown(rep)})")

    # A row that agrees with the log is checked under the key it names, and its frontier (full
    # passes): a bad signature is foreign-row, whether or not a public key file is given.
    p = copy("agreeing-forgery")
    insert_checkpoints(p, checkpoint_row(10, macs[9], leaves, flip_signature=True))
    for rep in both_modes(p):
        check([(f.kind, f.first) for f in rep.findings] == [("foreign-row", None)]
              and rep.findings[0].message.startswith("audit_checkpoints row at seq 10 has the chain head of the log but is "
                                                     "not a checkpoint of this store: "),
              f"a damaged row that agrees with the log -> foreign-row ({shown(rep)})")
    # ... and one whose unsigned frontier was changed.
    p = copy("agreeing-frontier")
    row = checkpoint_row(10, macs[9], leaves)
    insert_checkpoints(p, row[:-1] + (bytes(len(row[-1])),))  # the frontier, the last column, zeroed
    for rep in both_modes(p):
        check([(f.kind, f.first) for f in rep.findings] == [("foreign-row", None)]
              and "its frontier is not 32 × popcount(seq) bytes that fold to its Merkle root" in rep.findings[0].message,
              f"a frontier changed in a row that agrees with the log -> foreign-row ({shown(rep)})")

    # A valid checkpoint and a bad one beyond the end: the bad one is foreign, the valid one truncates.
    p = copy("mixed")
    insert_checkpoints(p, checkpoint_row(11, bytes(32), leaves), checkpoint_row(13, bytes(32), leaves, flip_signature=True))
    rep = av.verify(str(p), both, SID, checkpoint_keys=pub)
    check([(f.kind, f.first, f.last) for f in rep.findings] == [FR + (None,), ("truncated", 11, 11)],
          f"a forged row above a valid one beyond the end -> foreign-row, and truncated 11 from the valid one ({shown(rep)})")

    # A row below seq 1 (the trigger bypassed): never valid.
    p = copy("seq-zero")
    insert_checkpoints(p, checkpoint_row(0, bytes(32), leaves), bypass_triggers=True)
    rep = av.verify(str(p), both, SID)
    check(kinds(rep) == [FR] and "its seq 0 is below 1" in rep.findings[0].message, f"a checkpoint row at seq 0 -> foreign-row ({shown(rep)})")

    # At most 100 examined, newest first; then one "more than 100" finding.
    p = copy("many")
    fake = checkpoint_row(11, bytes(32), leaves, key_version=9, flip_signature=True)
    insert_checkpoints(p, *((s,) + fake[1:] for s in range(11, 112)))
    rep = av.verify(str(p), both, SID, checkpoint_keys=pub)
    msgs = [f.message for f in rep.findings]
    check(kinds(rep) == [FR] * 101 and msgs[0].startswith("audit_checkpoints row at seq 111 ")
          and msgs[99].startswith("audit_checkpoints row at seq 12 ")
          and msgs[100] == "more than 100 audit_checkpoints rows disagree with the log; only the newest 100 were examined",
          f"101 foreign checkpoint rows -> 100 named (newest first) + 1 'more than 100' ({len(msgs)} findings)")

    # Only with a store id: without a header there is no step 8.
    p = copy("no-header")
    insert_checkpoints(p, checkpoint_row(12, bytes(32), leaves))
    tamper(p, "DELETE FROM audit_store")
    k = kinds(av.verify(str(p), both))
    check(k == [("header-tampered", None)], f"no store id -> no step-8 finding ({k})")

    # The public key file on the command line.
    bad = tmp / "bad.pub"
    bad.write_text("auditdb-checkpoint-pubkey v1\nkey 1 abcd\n")
    rc, _, err = run_cli("--store", str(base), "--public-key", str(bad), env=env)
    check(rc == 2 and "error: public checkpoint key file" in err, f"cli: a malformed public key file -> exit 2 ({rc} {err})")
    twice = tmp / "twice.pub"
    twice.write_text(CKPT_PUB.read_text() + f"key 1 {ax.ed25519_public_key(OTHER_SEED).hex()}\n")
    rc, _, err = run_cli("--store", str(base), "--public-key", str(twice), env=env)
    check(rc == 2 and "appears twice" in err, f"cli: a version twice in the public key file -> exit 2 ({rc} {err})")
    rc, _, err = run_cli("--store", str(base), "--public-key", str(tmp / "absent.pub"), env=env)
    check(rc == 2 and "cannot open public checkpoint key file" in err, f"cli: no public key file -> exit 2 ({rc} {err})")
    test_public_key_files(tmp, base, env)


def test_public_key_files(tmp: pathlib.Path, store: pathlib.Path, env: dict) -> None:
    """Section 16.4 as every verifier reads a public key file: bytes, LF lines (CR only separates
    fields), at most 1 MiB, a regular file only (a FIFO is refused at once, never waited on)."""
    key = ax.ed25519_public_key(CKPT_SEED).hex()
    files = {
        "crlf.pub": (f"auditdb-checkpoint-pubkey v1\r\nkey 1 {key}\r\n".encode(), None),
        "cr.pub": (f"auditdb-checkpoint-pubkey v1\rkey 1 {key}\r".encode(),
                   "line 1: expected the header `auditdb-checkpoint-pubkey v1`"),
        "big.pub": (CKPT_PUB.read_bytes() + b"#" + b"x" * (1 << 20) + b"\n", "is larger than 1048576 bytes"),
        "latin1.pub": (b"# caf\xe9\n" + CKPT_PUB.read_bytes(), "is not UTF-8 text (byte 5)"),
        "vt.pub": (f"auditdb-checkpoint-pubkey v1\nkey\x0b1 {key}\n".encode(),
                   "line 2: expected `key VERSION PUBKEY_HEX` (64 hex digits)"),
        "dir.pub": (None, "is not a regular file (a FIFO, device or directory is refused)"),
    }
    for name, (data, _) in files.items():
        if data is None:
            (tmp / name).mkdir()
        else:
            (tmp / name).write_bytes(data)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp / "fifo.pub")
        files["fifo.pub"] = (None, "is not a regular file (a FIFO, device or directory is refused)")
    for name, (_, problem) in files.items():
        path = str(tmp / name)
        try:
            keys, why = ax.read_public_key_file(path), None
        except ValueError as e:
            keys, why = None, str(e)
        want = None if problem is None else f"public checkpoint key file {path} {problem}"
        check(why == want and (problem is not None or keys == {1: bytes.fromhex(key)}),
              f"public key file {name}: {'accepted' if problem is None else problem} ({why})")
    # Each command line: exit 2 with that reason (0 for CRLF), without waiting on the FIFO.
    report_dir = tmp / "pk-report"
    report_dir.mkdir()
    clis = {
        "auditdb_verify.py": ["--store", str(store)],
        "auditdb_verify_export.py": [str(DOCS / "test-vectors" / "bundle")],
        "auditdb_verify_report.py": [str(report_dir)],
        "consistency.py": [str(tmp / "pk-report"), "--store-id", SID.hex()],
    }
    for tool, args in clis.items():
        for name, (_, problem) in files.items():
            try:
                p = subprocess.run([sys.executable, str(HERE / tool), *args, "--public-key", str(tmp / name)],
                                   capture_output=True, text=True, env=env, timeout=60)
                rc, err = p.returncode, p.stderr
            except subprocess.TimeoutExpired:
                rc, err = None, "timed out (waited on the file)"
            if problem is None:
                ok = rc != 2  # the key file is usable: whatever the verdict on the input, not an error of the run
            else:
                ok = rc == 2 and f"public checkpoint key file {tmp / name} {problem}" in err
            check(ok, f"cli {tool} --public-key {name} -> {'usable' if problem is None else 'exit 2: ' + problem} ({rc} {err.strip()})")


# ------------------------------------------------------------------------------------------
# 3f. Expired rows (FORMAT.md section 20): tombstones, the expiry entry, step 9
# ------------------------------------------------------------------------------------------

DAY = 86_400_000_000
T0 = 1_795_439_700_000_000              # 2026-11-23T13:15:00Z: when the old rows were recorded
NOW = T0 + 30 * DAY                     # when the expiry ran
EXPIRED_ACTION = "auditdb.retention.expired"
POLICY = {"default": "1d", "tenants": {"archive": None, "bank": "2w"}}
ALL_TRIGGERS = [m.group(0) for m in re.finditer(r"CREATE TRIGGER .*?END;", av.ALL_MIGRATIONS_SQL, re.S)]
ALL_TRIGGER_NAMES = [re.match(r"CREATE TRIGGER (\w+)", t).group(1) for t in ALL_TRIGGERS]


def tamper_all(path: pathlib.Path, *sql) -> None:
    """Runs `sql` (each a statement, or (statement, parameters)) with every append-only trigger
    dropped (audit_expired's too), then restores them: an attacker with file access, or AuditDB's
    own connection, which runs without triggers."""
    conn = sqlite3.connect(path)
    for name in ALL_TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for s in sql:
        conn.execute(*((s,) if isinstance(s, str) else s))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    for t in ALL_TRIGGERS:
        if re.search(r" ON (\w+)", t).group(1) in tables:  # not the triggers of a table `sql` dropped
            conn.execute(t)
    conn.commit()
    conn.close()


def event(seq: int, recorded_at: int, key_version: int, **values) -> dict:
    row = {"seq": seq, "recorded_at": recorded_at, "occurred_at": None, "tenant": None, "actor": f"user{seq}",
           "action": "doc.read", "resource_type": "doc", "resource_id": f"doc-{seq}", "outcome": 0, "severity": 0,
           "correlation_id": None, "source": None, "details": None, "origin": 0, "origin_ref": None,
           "format_version": 1, "key_version": key_version}
    row.update(values)
    return row


def hold_placed(seq: int, recorded_at: int, key_version: int, field: str, value: str, previous: int = 0,
                resource_type: str | None = None) -> dict:
    d = {"field": field, "previousHoldEntry": previous, "reason": "case 2026-114", "value": value}
    if resource_type is not None:
        d["resourceType"] = resource_type
    return event(seq, recorded_at, key_version, actor="legal:dana", action="auditdb.hold.placed",
                 resource_type="legal-hold", resource_id=None, severity=1,
                 details=json.dumps(d, sort_keys=True, separators=(",", ":")))


def hold_released(seq: int, recorded_at: int, key_version: int, hold_id: int, previous: int) -> dict:
    d = {"holdId": hold_id, "previousHoldEntry": previous, "reason": "case closed"}
    return event(seq, recorded_at, key_version, actor="legal:dana", action="auditdb.hold.released",
                 resource_type="legal-hold", resource_id=str(hold_id), severity=1,
                 details=json.dumps(d, sort_keys=True, separators=(",", ":")))


def retention_rows() -> list[dict]:
    """Rows 1..12 of the store with expired rows: key version 1 up to seq 7, 2 from seq 8.
    2, 3 and 5 are old enough for the policy (default 1d, bank 2w); 4 is as old but held by the
    hold entry at 6 (resource id doc-4); 7 is old but of tenant archive (kept for ever); 8..12
    are younger than a day when the expiry runs (NOW)."""
    rows = [
        event(1, T0 + 1_000, 1, tenant="acme", actor="alice"),
        event(2, T0 + 2_000, 1, actor=None, details="{\"n\":2}"),
        event(3, T0 + 3_000, 1, tenant="bank", actor="carol", resource_type=None, source="web"),
        event(4, T0 + 4_000, 1, tenant="acme", actor="dave"),
        event(5, T0 + 5_000, 1, tenant="acme", actor="bob", correlation_id="c-5", occurred_at=T0 - 7),
        hold_placed(6, T0 + 10 * DAY, 1, "resource", "doc-4"),
        event(7, T0 + 7_000, 1, tenant="archive"),
    ]
    rows += [event(s, NOW - DAY // 2 + s, 2, tenant="bank" if s % 2 else None) for s in range(8, 13)]
    return rows


def sel_opt_str(x: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if x is None else len(x).to_bytes(4, "big") + x


def sel_tag(version: int, field: int, x: bytes, store_id: bytes = SID) -> bytes:
    """TAG(f, x) of 20.2, written here from the text (not the verifier's)."""
    return hmac_mod.new(KS[version].k_mac, b"ADB1TAG_" + store_id + bytes([field]) + x, hashlib.sha256).digest()[:16]


def sel_tombstone(row: dict, mac: bytes, version: int, expiry_seq: int) -> dict:
    """The tombstone (20.1) of `row`, whose stored MAC is `mac`, under the expiry entry's key version."""
    b = as_bytes_row(row)
    leaf = hashlib.sha256(b"\x00" + av.enc_row(KS[row["key_version"]], SID, b)).digest()
    tags = (sel_tag(version, 1, sel_opt_str(b["tenant"])) + sel_tag(version, 2, sel_opt_str(b["actor"]))
            + sel_tag(version, 3, sel_opt_str(b["resource_id"]))
            + sel_tag(version, 4, sel_opt_str(b["resource_type"]) + sel_opt_str(b["resource_id"]))
            + sel_tag(version, 5, sel_opt_str(b["correlation_id"])))
    return {"seq": row["seq"], "key_version": row["key_version"], "mac": mac, "leaf": leaf,
            "recorded_at": row["recorded_at"], "tags": tags, "expiry_seq": expiry_seq}


def sel_enc_tomb(t: dict) -> bytes:
    return (t["seq"].to_bytes(8, "big") + t["key_version"].to_bytes(4, "big") + t["mac"] + t["leaf"]
            + t["recorded_at"].to_bytes(8, "big", signed=True) + t["tags"])


def build_expired_store(path: pathlib.Path, rows: list[dict] | None = None, expire=(2, 3, 5), policy=None,
                        now: int = NOW, entry_version: int = 2, details_edit=None, entry_edit=None,
                        tail: dict | None = None) -> dict:
    """A store as the engine leaves it after one expiry (section 20): rows 1..12 (retention_rows),
    the expiry entry at 13 (signed by `entry_version`) expiring `expire` under `policy` at `now`,
    and row 14 after it (`tail`, else an ordinary row); the expired rows deleted, their tombstones
    inserted. `details_edit`
    changes the details object before it is signed, `entry_edit` the entry's columns (a key holder
    signing what it likes). Returns {"macs", "tombstones", "rows", "leaves"}."""
    rows = [dict(r) for r in (rows or retention_rows())]
    entry_seq = len(rows) + 1
    macs, prev = [], av.ZERO32
    for r in rows:
        prev = av.seal(KS[r["key_version"]], SID, as_bytes_row(r), prev)
        macs.append(prev)
    tombs = [sel_tombstone(rows[s - 1], macs[s - 1], entry_version, entry_seq) for s in sorted(expire)]
    details = {"policy": json.loads(json.dumps(POLICY if policy is None else policy)), "now": now, "first": min(expire), "last": max(expire),
               "count": len(expire), "tombstones": hashlib.sha256(b"".join(sel_enc_tomb(t) for t in tombs)).hexdigest()}
    if details_edit:
        details_edit(details)
    entry = event(entry_seq, now, entry_version, actor="auditdb", action=EXPIRED_ACTION, resource_type="retention",
                  resource_id=None, severity=1, details=json.dumps(details, sort_keys=True, separators=(",", ":")))
    if entry_edit:
        entry_edit(entry)
    all_rows = rows + [entry] + [tail or event(entry_seq + 1, now + 1_000, entry_version)]
    all_macs = build_store(path, all_rows)
    tamper_all(path, *(f"DELETE FROM audit_entries WHERE seq = {s}" for s in expire))
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO audit_expired VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [tuple(t[c] for c in retention.TOMBSTONE_COLUMNS) for t in tombs])
    conn.commit()
    conn.close()
    return {"macs": all_macs, "tombstones": {t["seq"]: t for t in tombs}, "rows": all_rows,
            "leaves": leaves_of(all_rows)}


def test_expired_rows(tmp: pathlib.Path) -> None:
    print("expired rows (section 20)")
    both = ring({1: "active", 2: "active"})
    ET, RV, FR = "expiry-tampered", "retention-violation", "foreign-row"

    def seqs(rep) -> list[tuple[str, int | None, int | None]]:
        return [(f.kind, f.first, f.last) for f in rep.findings]

    def shown(rep) -> list[str]:
        return [str(f) for f in rep.findings]

    # The grammar of periods (docs/retention.md "Durations"), each problem exactly.
    def problem(text: str) -> str | None:
        try:
            retention.parse_period(text, "default")
            return None
        except retention.PeriodError as e:
            m = str(e)
            head = f"default: the retention period {retention.sj.json_quoted(text)} "
            tail = ". Write a positive whole number followed by h (hours), d (days) or w (weeks), e.g. 90d"
            return m[len(head):-len(tail)] if m.startswith(head) and m.endswith(tail) else m
    FOREVER = "to keep rows for ever, use `forever` (or no maximum age)"
    for text, want in (
            ("", "is empty"), ("90 d", "contains whitespace at character 3; remove it"),
            (" 90d", "contains whitespace at character 1; remove it"), ("90d\n", "contains whitespace at character 4; remove it"),
            ("-5d", "is negative"), ("+5d", "has a sign; write the number alone"),
            ("0d", f"is zero: a maximum age of zero would let every row expire at once; {FOREVER}"),
            ("0h", f"is zero: a maximum age of zero would let every row expire at once; {FOREVER}"),
            ("007d", "has a leading zero; write 7d"), ("90", "has no unit (h, d or w)"),
            ("d", "does not start with a number"), ("forever", "does not start with a number"),
            ("1.5d", "is not a whole number; use a smaller unit (36h, not 1.5d)"),
            ("90D", "has the unit \"D\"; units are lowercase (d)"),
            ("90m", "has the unit \"m\", which could mean minutes or months; write hours or days (720h, 30d)"),
            ("1y", "has the unit \"y\"; years differ in length, so write days (365d or 366d)"),
            ("30s", "has the unit \"s\"; retention is counted in hours, days or weeks (1h is the shortest)"),
            ("90x", "has the unknown unit \"x\""),
            ("90d12h", "has text after the unit; write one number and one unit (2172h, not 90d12h)"),
            ("90dd", "has text after the unit; write one number and one unit (2172h, not 90d12h)"),
            ("\u0669\u0660d", "contains a digit that is not ASCII 0-9 (U+669)"),
            ("106751992d", f"is too long: at most 106751991d (the period in microseconds must fit a 64-bit integer); {FOREVER}"),
            ("99999999999999999999999d", f"is too long: at most 106751991d (the period in microseconds must fit a 64-bit integer); {FOREVER}"),
            ("12h", None), ("90d", None), ("2w", None), ("106751991d", None), ("2562047788h", None), ("15250284w", None)):
        check(problem(text) == want, f"period {text!r} -> {want or 'accepted'} ({problem(text)})")
    check(retention.parse_period("1w", "d") == retention.parse_period("7d", "d") == 7 * DAY
          and retention.parse_period("1h", "d") == 3_600_000_000, "periods in microseconds: 1w == 7d, 1h = 3.6e9")

    # (a) The store: rows 2, 3, 5 expired by the entry at 13 (key version 2), 4 kept (held by the
    # hold entry at 6), 7 kept (tenant archive, kept for ever), row 14 after the entry.
    base = tmp / "ex-base.sqlite"
    built = build_expired_store(base)
    macs, tombs = built["macs"], built["tombstones"]
    rep = av.verify(str(base), both, SID)
    check(rep.intact and rep.rows_checked == 11 and rep.rows_expired == 3 and rep.last_seq == 14,
          f"(a) a store with rows 2, 3, 5 expired -> intact, 11 rows checked, 3 expired ({shown(rep)}, "
          f"{rep.rows_checked}, {rep.rows_expired})")
    check(tombs[3]["tags"][:16] == retention.match_tag(KS[2].mac, SID, 1, retention.opt_str(b"bank"))
          and retention.enc_tomb(**{c: tombs[3][c] for c in ("seq", "key_version", "mac", "leaf", "recorded_at", "tags")})
          == sel_enc_tomb(tombs[3]), "the verifier's TAG and ENC_TOMB equal those written here from the text")
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()},2:{K2.hex()}")
    rc, out, _ = run_cli("--store", str(base), env=env)
    check(rc == 0 and out.startswith("intact: 11 rows (seq 1...14, 3 expired)"), f"(a) cli -> exit 0 ({rc} {out.strip()})")
    rc, out, _ = run_cli("--store", str(base), "--json", env=env)
    check(rc == 0 and json.loads(out)["rows_expired"] == 3, f"(a) cli --json rows_expired 3 ({rc})")

    def copy(name: str) -> pathlib.Path:
        q = tmp / f"ex-{name}.sqlite"
        shutil.copy(base, q)
        return q

    def variant(name: str, **kw) -> pathlib.Path:
        q = tmp / f"ex-{name}.sqlite"
        build_expired_store(q, **kw)
        return q

    # (b) Damage, and the findings the damage table of 20.4 promises.
    q = copy("tomb-deleted")
    tamper_all(q, "DELETE FROM audit_expired WHERE seq = 3")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("missing-rows", 3, 3), (ET, 13, 13)],
          f"(b) a tombstone deleted -> missing-rows 3, expiry-tampered at the entry 13 ({shown(rep)})")
    check(rep.findings[1:] and rep.findings[1].message == (
        "the expiry entry's tombstones do not match it: it states count 3, first 2, last 5, but 2 tombstone(s) "
        "name it, seqs 2...5 (tombstones deleted or added)"), f"(b) its message ({shown(rep)})")
    q = copy("tomb-and-row-gone")
    tamper_all(q, "DELETE FROM audit_expired WHERE seq IN (2, 3, 5)")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("missing-rows", 2, 3), ("missing-rows", 5, 5), (ET, 13, 13)]
          and "but no tombstone names it" in rep.findings[2].message,
          f"(b) every tombstone deleted -> missing-rows 2...3 and 5, expiry-tampered 13 ({shown(rep)})")

    for half, at in (("link", 31), ("row tag", 3)):
        q = copy(f"tomb-mac-{half}")
        flipped = bytearray(tombs[3]["mac"])
        flipped[at] ^= 1
        tamper_all(q, f"UPDATE audit_expired SET mac = X'{flipped.hex()}' WHERE seq = 3")
        rep = av.verify(str(q), both, SID)
        check(seqs(rep) == [("chain-break", 3, 3), (ET, 13, 13)] and rep.findings[0].message.startswith(
                  "the tombstone of this expired row does not follow seq 2"),
              f"(b) a tombstone's mac changed ({half}) -> chain-break at 3, expiry-tampered 13 ({shown(rep)})")
    q = copy("tomb-mac-next")  # row 1 damaged: tombstone 2 cannot be checked, so its change shows at 3
    flipped = bytearray(tombs[2]["mac"])
    flipped[20] ^= 1
    tamper_all(q, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1",
               f"UPDATE audit_expired SET mac = X'{flipped.hex()}' WHERE seq = 2")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("mac-mismatch", 1, 1), ("chain-break", 3, 3), (ET, 13, 13)],
          f"(b) after a bad row 1, tombstone 2's mac changed -> chain-break at the next (3), expiry-tampered 13 ({shown(rep)})")
    q = copy("tomb-mac-short")
    tamper_all(q, "UPDATE audit_expired SET mac = X'00' WHERE seq = 3")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(ET, 3, 3), ("malformed-row", 3, 3), (ET, 13, 13)],
          f"(b) a tombstone's mac of 1 byte -> malformed-row 3, expiry-tampered 3 (rule 2) and 13 ({shown(rep)})")

    for column, value in (("leaf", "X'" + bytes(32).hex() + "'"), ("recorded_at", str(NOW)),
                          ("tags", "X'" + (bytes(16) + tombs[3]["tags"][16:]).hex() + "'")):
        q = copy(f"tomb-{column}")
        tamper_all(q, f"UPDATE audit_expired SET {column} = {value} WHERE seq = 3")
        rep = av.verify(str(q), both, SID)
        check(seqs(rep) == [(ET, 13, 13)] and "the digest of its tombstones differs" in rep.findings[0].message,
              f"(b) a tombstone's {column} changed -> expiry-tampered at 13 only ({shown(rep)})")
    q = copy("tomb-kv-other")
    tamper_all(q, "UPDATE audit_expired SET key_version = 2 WHERE seq = 3")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("chain-break", 3, 3), (ET, 13, 13)],
          f"(b) a tombstone's key_version changed to another of the ring -> chain-break 3, expiry-tampered 13 ({shown(rep)})")
    q = copy("tomb-kv-unknown")
    tamper_all(q, "UPDATE audit_expired SET key_version = 9 WHERE seq = 3")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("unknown-key-version", 3, 3), (ET, 13, 13)],
          f"(b) a tombstone's key_version 9 (not in the ring) -> unknown-key-version 3, expiry-tampered 13 ({shown(rep)})")
    rep = av.verify(str(base), ring({2: "active"}), SID)
    check(seqs(rep) == [("unknown-key-version", None, None)] + [("unknown-key-version", s, s) for s in range(1, 8)],
          f"(b) the ring lacks version 1 -> unknown-key-version for the header and each row or tombstone it signed "
          f"({shown(rep)})")

    q = copy("rows-deleted")
    tamper_all(q, "DELETE FROM audit_entries WHERE seq IN (10, 11)")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("missing-rows", 10, 11)], f"(b) rows deleted without tombstones -> missing-rows 10...11 only ({shown(rep)})")
    q = copy("held-row-deleted")
    tamper_all(q, "DELETE FROM audit_entries WHERE seq = 4")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("missing-rows", 4, 4)], f"(b) the held row deleted between tombstones -> missing-rows 4 only ({shown(rep)})")

    q = copy("entry-deleted")
    tamper_all(q, "DELETE FROM audit_entries WHERE seq = 13")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(ET, 2, 2), (ET, 3, 3), (ET, 5, 5), ("missing-rows", 13, 13)]
          and rep.findings[0].message == "the tombstone names expiry entry 13, which is not an expiry entry that "
                                         "verified (it was deleted or changed, or never written)",
          f"(b) the expiry entry deleted -> missing-rows 13, expiry-tampered at 2, 3, 5 ({shown(rep)})")
    q = copy("entry-and-tail-cut")
    tamper_all(q, "DELETE FROM audit_entries WHERE seq >= 13")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(ET, 2, 2), (ET, 3, 3), (ET, 5, 5)],
          f"(b) the tail cut from the expiry entry on -> its tombstones still reveal it: expiry-tampered 2, 3, 5 ({shown(rep)})")
    q = copy("entry-changed")
    tamper_all(q, "UPDATE audit_entries SET details = replace(details, '\"1d\"', '\"1h\"') WHERE seq = 13")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(ET, 2, 2), (ET, 3, 3), (ET, 5, 5), ("mac-mismatch", 13, 13)],
          f"(b) the expiry entry's details changed -> mac-mismatch 13, expiry-tampered at 2, 3, 5 ({shown(rep)})")

    # An audit_expired row at a seq that is also in audit_entries, below 1 or above the last row is
    # not a tombstone of the log: foreign-row at its seq, and nothing reads it (section 20.4).
    q = copy("row-back")
    r3 = built["rows"][2]
    tamper_all(q, (f"INSERT INTO audit_entries ({', '.join(av.ROW_COLUMNS)}) VALUES ({', '.join('?' * 18)})",
                   [r3[c] for c in av.ROW_COLUMNS[:-1]] + [macs[2]]))
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(FR, 3, 3), (ET, 13, 13)] and rep.findings[0].message.startswith(
              "audit_expired row at seq 3 is not a tombstone of the log: the log has a row at that seq. AuditDB ignores it"),
          f"(b) expired row 3 put back (its tombstone kept) -> foreign-row at 3, expiry-tampered at its entry 13, which "
          f"no longer matches its tombstones ({shown(rep)}, {rep.rows_checked})")
    q = copy("tomb-over-row")
    t = dict(tombs[5], seq=7)
    tamper_all(q, "INSERT INTO audit_expired VALUES (7, 1, X'%s', X'%s', %d, X'%s', 13)"
               % (t["mac"].hex(), t["leaf"].hex(), t["recorded_at"], t["tags"].hex()))
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(FR, 7, 7)],
          f"(b) a tombstone inserted at seq 7, whose row is present -> foreign-row at 7 only: the entry 13 it names "
          f"still matches its own tombstones ({shown(rep)})")
    # Rule 2: naming a row that is not an expiry entry.
    q = copy("tomb-seq-0")
    tamper_all(q, "INSERT INTO audit_expired SELECT 0, key_version, mac, leaf, recorded_at, tags, 13 FROM audit_expired "
                  "WHERE seq = 2")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(FR, 0, 0)] and "the log starts at seq 1" in rep.findings[0].message,
          f"(b) a tombstone at seq 0 -> foreign-row at 0 only (not walked, not counted by 13) ({shown(rep)})")
    q = copy("tomb-other-entry")
    tamper_all(q, "UPDATE audit_expired SET expiry_seq = 12 WHERE seq = 5")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(ET, 5, 5), (ET, 13, 13)],
          f"(b) a tombstone naming seq 12 (an ordinary row) -> expiry-tampered at 5 and 13 ({shown(rep)})")

    # Step 8: the log row of an expired seq is its tombstone; 16: roots over the tombstones' leaves.
    q = copy("checkpoints")
    insert_checkpoints(q, checkpoint_row(3, tombs[3]["mac"], built["leaves"]),
                       checkpoint_row(14, macs[13], built["leaves"]))
    rep = av.verify(str(q), both, SID, checkpoint_keys=av.load_public_key_file(str(CKPT_PUB)))
    check(rep.intact, f"(c) checkpoints at 3 (expired: its tombstone's mac is the chain head) and 14 -> intact ({shown(rep)})")
    check(ax.merkle_root([tombs[s]["leaf"] if s in tombs else built["leaves"][s - 1] for s in range(1, 15)])
          == ax.merkle_root(built["leaves"]), "(c) a tombstone's leaf is the expired row's leaf: roots unchanged")
    flipped = bytearray(tombs[3]["mac"])
    flipped[31] ^= 1
    tamper_all(q, f"UPDATE audit_expired SET mac = X'{flipped.hex()}' WHERE seq = 3")
    rep = av.verify(str(q), both, SID, checkpoint_keys=av.load_public_key_file(str(CKPT_PUB)))
    check(seqs(rep) == [("anchor-mismatch", 3, 3), ("chain-break", 3, 3), (ET, 13, 13)],
          f"(c) ... the tombstone's mac changed -> anchor-mismatch and chain-break at 3, expiry-tampered 13 ({shown(rep)})")
    q = copy("checkpoint-cut")
    insert_checkpoints(q, checkpoint_row(14, macs[13], built["leaves"]))
    tamper_all(q, "DELETE FROM audit_entries WHERE seq >= 6")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [(FR, None, None), (ET, 2, 2), (ET, 3, 3), ("truncated", 5, 14), ("truncated", 5, 5), (FR, 7, 7)],
          f"(c) rows 6...14 cut (row 4 now the log's end; tombstone 5 above it, which links to row 4, shows the cut) -> "
          f"truncated 5...14 (the checkpoint) and 5...5 (the tombstone), the orphaned tombstones 2 and 3, the "
          f"cache row of version 2 (first seq 8) unconfirmed, and the time break at 7 now outside the log ({shown(rep)})")

    # (d) Expiries signed by a key holder that break the policy or a hold: retention-violation.
    young = retention_rows()
    young[2]["recorded_at"] = NOW - 3 * DAY  # tenant bank (2w): too young, though older than the default 1d
    rep = av.verify(str(variant("young", rows=young)), both, SID)
    check(seqs(rep) == [(RV, 3, 3)] and rep.findings[0].message == "expired under policy 2w before its time",
          f"(d) a bank row 3 days old expired (bank 2w) -> retention-violation at 3 ({shown(rep)})")
    for offset, want in ((0, [(RV, 2, 2)]), (-1, [])):
        edge = retention_rows()
        edge[1]["recorded_at"] = NOW - DAY + offset
        rep = av.verify(str(variant(f"edge{offset}", rows=edge)), both, SID)
        check(seqs(rep) == want, f"(d) row recorded at now - 1d {offset:+d} µs -> {want or 'intact'} ({shown(rep)})")
    rep = av.verify(str(variant("forever", policy={"default": None, "tenants": {"bank": "2w"}})), both, SID)
    check(seqs(rep) == [(RV, 2, 2), (RV, 5, 5)] and rep.findings[0].message == "expired under policy forever before its time",
          f"(d) default null (keep for ever) -> retention-violation at the rows without an override ({shown(rep)})")
    rep = av.verify(str(variant("held", expire=(2, 3, 4, 5))), both, SID)
    check(seqs(rep) == [(RV, 4, 4)] and rep.findings[0].message == "expired while legal hold 6 was in force",
          f"(d) the held row 4 expired -> retention-violation at 4 naming hold 6 ({shown(rep)})")
    released = retention_rows()
    released[6] = hold_released(7, T0 + 11 * DAY, 1, 6, 6)
    rep = av.verify(str(variant("released", rows=released, expire=(2, 3, 4, 5))), both, SID)
    check(rep.intact, f"(d) hold 6 released at 7, before the expiry -> row 4 may expire: intact ({shown(rep)})")
    rep = av.verify(str(variant("released-late", expire=(2, 3, 4, 5), tail=hold_released(14, NOW + 1_000, 2, 6, 6))),
                    both, SID)
    check(seqs(rep) == [(RV, 4, 4)], f"(d) hold 6 released at 14, after the expiry at 13 -> it was in force: "
                                     f"retention-violation at 4 ({shown(rep)})")
    for field, value, rtype in (("tenant", "acme", None), ("actor", "bob", None), ("resource", "doc-5", None),
                                ("resource", "doc-5", "doc"), ("correlationId", "c-5", None)):
        rows = retention_rows()
        rows[5] = hold_placed(6, T0 + 10 * DAY, 1, field, value, resource_type=rtype)
        rep = av.verify(str(variant(f"hold-{field}-{rtype}", rows=rows, expire=(2, 3, 5))), both, SID)
        # An actor hold also keeps row 2, whose actor is NULL (withheld): it cannot be shown not to be bob's.
        held = [(RV, 2, 2), (RV, 5, 5)] if field == "actor" else [(RV, 5, 5)]
        check(seqs(rep) == held and rep.findings[-1].message == "expired while legal hold 6 was in force",
              f"(d) a hold on {field} {value!r}{' type ' + rtype if rtype else ''} (tag "
              f"{ {'tenant': 1, 'actor': 2, 'correlationId': 5}.get(field, 4 if rtype else 3)}) -> retention-violation "
              f"at {', '.join(str(f[1]) for f in held)} ({shown(rep)})")
    rows = retention_rows()
    rows[5] = hold_placed(6, T0 + 10 * DAY, 1, "resource", "doc-5", resource_type="invoice")
    rep = av.verify(str(variant("hold-other-type", rows=rows, expire=(2, 3, 5))), both, SID)
    check(rep.intact, f"(d) a hold on resource invoice/doc-5 does not hold doc/doc-5 -> intact ({shown(rep)})")
    rows = retention_rows()
    rows[5]["origin"], rows[5]["origin_ref"] = 1, 1  # a back-signed legacy row with the hold action: no hold
    rep = av.verify(str(variant("hold-origin-1", rows=rows, expire=(2, 3, 4, 5))), both, SID)
    check(rep.intact, f"(d) a back-signed row with the hold action places no hold -> row 4 may expire ({shown(rep)})")

    # (e) The expiry entry itself: what counts, and details that do not parse (signed by a key holder).
    def with_origin_1(entry):
        entry["origin"], entry["origin_ref"] = 1, 1
    rep = av.verify(str(variant("entry-origin-1", entry_edit=with_origin_1)), both, SID)
    check(seqs(rep) == [(ET, 2, 2), (ET, 3, 3), (ET, 5, 5)],
          f"(e) the entry back-signed (origin 1) is no expiry entry -> expiry-tampered at its tombstones ({shown(rep)})")
    for name, edit, want in (
            ("zero", lambda d: d["policy"].update(default="0d"), 'default: the retention period "0d" is zero'),
            ("forever-text", lambda d: d["policy"].update(default="forever"), 'default: the retention period "forever" does not start'),
            ("tenant", lambda d: d["policy"]["tenants"].update(bank="2 w"), 'tenants["bank"]: the retention period "2 w" contains whitespace'),
            ("extra", lambda d: d.update(reason="x"), 'the member "reason" is not one of an expiry entry\'s'),
            ("missing", lambda d: d.pop("now"), 'the member "now" is missing'),
            ("count-float", lambda d: d.update(count=3.0), "count is not an integer"),
            ("last", lambda d: d.update(last=13), "first 2 and last 13 are not seqs before the entry"),
            ("digest-upper", lambda d: d.update(tombstones=d["tombstones"].upper()), "tombstones is not 64 lowercase hex")):
        # Section 20.3: an entry whose details do not parse counts as no entry for rule 2, so each
        # tombstone naming it is expiry-tampered too.
        rep = av.verify(str(variant(f"details-{name}", details_edit=edit)), both, SID)
        check(seqs(rep) == [(ET, 2, 2), (ET, 3, 3), (ET, 5, 5), (ET, 13, 13)] and rep.findings[-1].message.startswith(
                  "the expiry entry's details do not parse as an expiry entry: ") and want in rep.findings[-1].message,
              f"(e) details {name} -> expiry-tampered at 13 and at its tombstones 2, 3, 5, '{want}' ({shown(rep)})")
    rep = av.verify(str(variant("count-wrong", details_edit=lambda d: d.update(count=4))), both, SID)
    check(seqs(rep) == [(ET, 13, 13)], f"(e) a signed count of 4 for 3 tombstones -> expiry-tampered 13 ({shown(rep)})")

    # (f) Compromised keys: an expiry entry signed with a compromised key is not one that verified;
    # an attestation of an expired row attests its tombstone; a key version whose first row expired.
    rep = av.verify(str(base), ring({1: "active", 2: "compromised"}), SID)
    check(seqs(rep) == [(ET, 2, 2), (ET, 3, 3), (ET, 5, 5)] + [("compromised-key", s, s) for s in range(8, 15)],
          f"(f) version 2 (which signed the entry) compromised -> compromised-key 8...14, expiry-tampered 2, 3, 5 "
          f"({shown(rep)})")
    rows = retention_rows()
    rows[11] = event(12, NOW - DAY // 2 + 12, 2, action=DECLARATION)
    q = tmp / "ex-attested.sqlite"
    b = build_expired_store(q, rows=rows)
    conn = sqlite3.connect(q)
    hdr_mac = conn.execute("SELECT mac FROM audit_store").fetchone()[0]
    conn.executemany("INSERT INTO audit_attestations VALUES (?, 2, 12, ?)",
                     [(0, av.attestation_mac(KS[2], SID, 0, 1, hdr_mac, 12))]
                     + [(s, av.attestation_mac(KS[2], SID, s, 1, b["macs"][s - 1], 12)) for s in range(1, 8)])
    conn.commit()
    conn.close()
    rep = av.verify(str(q), ring({1: "compromised", 2: "active"}), SID)
    check(rep.intact, f"(f) version 1 compromised, rows 1...7 (2, 3, 5 expired) attested -> intact: an attestation of "
                      f"an expired row attests its tombstone, no foreign-row ({shown(rep)})")
    rows = retention_rows()
    for r in rows[1:]:
        r["key_version"] = 2  # version 2 from seq 2: its first row (2, in the cache) expires
    q = variant("first-seq-expired", rows=rows)
    conn = sqlite3.connect(q)
    cache = conn.execute("SELECT key_version, first_seq FROM audit_key_versions ORDER BY 1").fetchall()
    conn.close()
    rep = av.verify(str(q), both, SID)
    check(cache == [(1, 1), (2, 2)] and rep.intact,
          f"(f) the cache names seq 2 (expired) as version 2's first -> still confirmed, intact ({cache}, {shown(rep)})")

    # (g) Schema: migration 0005's objects are compared like every other.
    q = copy("trigger-dropped")
    conn = sqlite3.connect(q)
    conn.execute("DROP TRIGGER audit_expired_no_delete")
    conn.commit()
    conn.close()
    rep = av.verify(str(q), both, SID)
    check([(f.kind, f.message) for f in rep.findings] == [("schema-tampered", "trigger audit_expired_no_delete is missing (dropped?)")],
          f"(g) audit_expired's delete trigger dropped -> schema-tampered ({shown(rep)})")
    q = tmp / "ex-at-0004.sqlite"
    build_store(q, base_rows())
    tamper_all(q, "DROP TABLE audit_time_breaks", "DROP TABLE audit_expired", "ALTER TABLE audit_entries DROP COLUMN seals",
               "DROP INDEX audit_entries_tenant_seq",
               # 0003's bucketed indexes, as they were before 0011 re-created them
               "DROP INDEX audit_entries_actor", "DROP INDEX audit_entries_resource",
               "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor) WHERE actor IS NOT NULL",
               "CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id) WHERE resource_id IS NOT NULL",
               "DELETE FROM grdb_migrations WHERE identifier IN ('0005-retention', '0006-erasure', '0007-erasure-paths', "
               "'0008-tenant-seq-index', '0009-time-breaks', '0010-tenant-filter-index', '0011-key-filter-indexes')")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("schema-outdated", None, None)], f"(g) a store at 0004 without audit_expired -> schema-outdated only ({shown(rep)})")
    q = copy("table-dropped")
    tamper_all(q, "DROP TABLE audit_expired")
    rep = av.verify(str(q), both, SID)
    check(seqs(rep) == [("schema-tampered", None, None)] * 3 + [("missing-rows", 2, 3), ("missing-rows", 5, 5), (ET, 13, 13)],
          f"(g) audit_expired dropped -> schema-tampered (table, 2 triggers), missing-rows, expiry-tampered 13 ({shown(rep)})")


# ------------------------------------------------------------------------------------------
# 4. The reference C code against the vectors
# ------------------------------------------------------------------------------------------


class AdbBytes(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("len", ctypes.c_int64)]


class AdbRow(ctypes.Structure):
    _fields_ = [
        ("seq", ctypes.c_int64), ("recorded_at", ctypes.c_int64), ("occurred_at", ctypes.c_int64),
        ("has_occurred_at", ctypes.c_int32), ("key_version", ctypes.c_uint32),
        ("format_version", ctypes.c_uint8), ("outcome", ctypes.c_uint8), ("severity", ctypes.c_uint8),
        ("origin", ctypes.c_uint8), ("origin_ref", ctypes.c_int64), ("has_origin_ref", ctypes.c_int32),
    ] + [(n, AdbBytes) for n in ("tenant", "actor", "action", "resource_type", "resource_id", "correlation_id",
                                 "source", "details")]


def test_reference_c(tmp: pathlib.Path) -> None:
    print("reference C code (Sources/CAuditCore/audit_core.c) against vectors.json")
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc or not C_SOURCE.exists():
        print("  skipped: no C compiler or no audit_core.c")
        return
    lib_path = tmp / "libauditcore.so"
    r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-I", str(C_INCLUDE), str(C_SOURCE), "-o", str(lib_path),
                        "-lcrypto"], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  skipped: could not compile against OpenSSL: {r.stderr.strip()[:200]}")
        return
    lib = ctypes.CDLL(str(lib_path))
    B = ctypes.c_char_p
    lib.adb_keyset_size.restype = ctypes.c_size_t
    lib.adb_row_encode.restype = ctypes.c_size_t
    lib.adb_row_encode.argtypes = [ctypes.c_void_p, B, ctypes.POINTER(AdbRow), ctypes.c_char_p, ctypes.c_size_t]
    lib.adb_row_seal.argtypes = [ctypes.c_void_p, B, ctypes.POINTER(AdbRow), B, ctypes.c_char_p]
    lib.adb_row_check.argtypes = [ctypes.c_void_p, B, ctypes.POINTER(AdbRow), B, B, ctypes.c_size_t]
    lib.adb_field_nonce.argtypes = [ctypes.c_void_p, B, ctypes.c_int64, ctypes.c_uint8, ctypes.c_char_p]
    lib.adb_commitment.argtypes = [B, ctypes.c_uint8, AdbBytes, ctypes.c_char_p]
    lib.adb_header_mac.argtypes = [ctypes.c_void_p, B, ctypes.c_int64, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_char_p]
    lib.adb_attestation_mac.argtypes = [ctypes.c_void_p, B, ctypes.c_int64, ctypes.c_uint32, B, ctypes.c_int64,
                                        ctypes.c_char_p]
    lib.adb_hmac_sha256.argtypes = [B, ctypes.c_size_t, B, ctypes.c_size_t, ctypes.c_char_p]
    lib.adb_keyset_init.argtypes = [ctypes.c_void_p, B]

    vec = json.loads(VECTORS.read_text(encoding="utf-8"))
    sid = bytes.fromhex(vec["store_id"])
    keysets = {}
    for k in vec["keys"]:
        master = bytes.fromhex(k["master"])
        ks = ctypes.create_string_buffer(lib.adb_keyset_size())
        lib.adb_keyset_init(ks, master)
        keysets[k["version"]] = ks
        for label, name in ((b"AuditDB/v1/mac-key", "k_mac"), (b"AuditDB/v1/nonce-key", "k_nonce")):
            out = ctypes.create_string_buffer(32)
            lib.adb_hmac_sha256(master, 32, label, len(label), out)
            check(out.raw.hex() == k[name], f"C: key {k['version']} {name}")

    out = ctypes.create_string_buffer(32)
    h = vec["header"]
    lib.adb_header_mac(keysets[h["key_version"]], sid, h["created_at"], h["format_version"], h["key_version"], out)
    check(out.raw.hex() == h["mac"], "C: header mac")

    keep = []
    for r in vec["rows"]:
        c = r["columns"]
        row = AdbRow()
        row.seq, row.recorded_at = c["seq"], c["recorded_at"]
        row.has_occurred_at, row.occurred_at = (0, 0) if c["occurred_at"] is None else (1, c["occurred_at"])
        row.has_origin_ref, row.origin_ref = (0, 0) if c["origin_ref"] is None else (1, c["origin_ref"])
        row.key_version, row.format_version = c["key_version"], c["format_version"]
        row.outcome, row.severity, row.origin = c["outcome"], c["severity"], c["origin"]
        for name in av.TEXT_COLUMNS:
            hx = r["text_utf8_hex"][name]
            if hx is None:
                setattr(row, name, AdbBytes(None, -1))
            else:
                data = bytes.fromhex(hx)
                keep.append(data)
                setattr(row, name, AdbBytes(data, len(data)))
        ks = keysets[c["key_version"]]
        seq = c["seq"]
        for fid, name in ((1, "actor"), (2, "source"), (3, "details")):
            nonce = ctypes.create_string_buffer(32)
            lib.adb_field_nonce(ks, sid, seq, fid, nonce)
            check(nonce.raw.hex() == r["nonces"][name], f"C: seq {seq} nonce {name}")
            com = ctypes.create_string_buffer(32)
            lib.adb_commitment(nonce.raw, fid, getattr(row, name), com)
            check(com.raw.hex() == r["commitments"][name], f"C: seq {seq} commitment {name}")
        n = lib.adb_row_encode(ks, sid, ctypes.byref(row), None, 0)
        buf = ctypes.create_string_buffer(n)
        lib.adb_row_encode(ks, sid, ctypes.byref(row), buf, n)
        check(buf.raw.hex() == r["enc_row"], f"C: seq {seq} ENC_ROW")
        mac = ctypes.create_string_buffer(32)
        prev = bytes.fromhex(r["prev_mac"])
        lib.adb_row_seal(ks, sid, ctypes.byref(row), prev, mac)
        check(mac.raw.hex() == r["mac"], f"C: seq {seq} stored mac")
        check(lib.adb_row_check(ks, sid, ctypes.byref(row), prev, mac.raw, 32) == 0, f"C: seq {seq} adb_row_check")
    a = vec["attestation"]
    lib.adb_attestation_mac(keysets[a["attesting_key_version"]], sid, a["seq"], a["row_key_version"],
                            bytes.fromhex(a["row_mac"]), a["declaration_seq"], out)
    check(out.raw.hex() == a["mac"], "C: attestation mac")
    ha = vec["header_attestation"]
    check(ha["seq"] == 0 and ha["row_mac"] == h["mac"] and ha["row_key_version"] == h["key_version"],
          "vectors: header_attestation attests the header (seq 0, header mac and key version)")
    lib.adb_attestation_mac(keysets[ha["attesting_key_version"]], sid, ha["seq"], ha["row_key_version"],
                            bytes.fromhex(ha["row_mac"]), ha["declaration_seq"], out)
    check(out.raw.hex() == ha["mac"], "C: header attestation mac")


def test_time_breaks(tmp: pathlib.Path) -> None:
    """Section 24: a store whose clock went backwards at seqs 4 and 9 verifies intact with its
    breaks; a break deleted is index-mismatch at its seq; a break inserted where time does not go
    back, at a seq with no row, or outside the log is foreign-row at its seq; a recorded_at
    edited to go backwards is mac-mismatch only (not judged); the fill of migration 0009 equals
    the breaks; expired rows keep their steps."""
    print("time breaks (section 24)")
    both = ring({1: "active", 2: "active"})
    rows = sample_rows(12)
    for r in rows:
        if r["seq"] >= 4:
            r["recorded_at"] -= 60_000_000  # the clock stepped back a minute at seq 4
        if r["seq"] >= 9:
            r["recorded_at"] -= 3_000_000_000  # and again at seq 9
    base = tmp / "tb-base.sqlite"
    build_store(base, rows)

    def copy(name: str) -> pathlib.Path:
        p = tmp / f"tb-{name}.sqlite"
        shutil.copy(base, p)
        return p

    def shown(rep) -> list[tuple[str, int | None, int | None]]:
        return [(f.kind, f.first, f.last) for f in rep.findings]

    conn = sqlite3.connect(base)
    stored = [r[0] for r in conn.execute("SELECT seq FROM audit_time_breaks ORDER BY seq")]
    conn.close()
    check(stored == [4, 9], f"breaks at the two steps back: {stored}")
    rep = av.verify(str(base), both, SID)
    check(shown(rep) == [], f"intact with its breaks ({shown(rep)})")
    p = copy("deleted")
    tamper_all(p, "DELETE FROM audit_time_breaks WHERE seq = 9")
    rep = av.verify(str(p), both, SID)
    check(shown(rep) == [("index-mismatch", 9, 9)], f"a break deleted -> index-mismatch at 9 ({shown(rep)})")
    p = copy("inserted")
    tamper_all(p, "INSERT INTO audit_time_breaks VALUES (6)", "INSERT INTO audit_time_breaks VALUES (13)",
               "INSERT INTO audit_time_breaks VALUES (0)")
    rep = av.verify(str(p), both, SID)
    check(shown(rep) == [("foreign-row", 0, 0), ("foreign-row", 6, 6), ("foreign-row", 13, 13)],
          f"breaks inserted at 6 (no step back), 13 and 0 (outside the log) -> foreign-row at each ({shown(rep)})")
    p = copy("gap")
    tamper_all(p, "DELETE FROM audit_entries WHERE seq = 7", "INSERT INTO audit_time_breaks VALUES (7)")
    rep = av.verify(str(p), both, SID)
    check(shown(rep) == [("foreign-row", 7, 7), ("missing-rows", 7, 7)],
          f"a break at a deleted row -> foreign-row and missing-rows at 7 ({shown(rep)})")
    p = copy("edited")
    tamper_all(p, "UPDATE audit_entries SET recorded_at = recorded_at - 86400000000 WHERE seq = 6")
    rep = av.verify(str(p), both, SID)
    check(shown(rep) == [("mac-mismatch", 6, 6)], f"recorded_at of 6 moved back a day -> mac-mismatch at 6 only ({shown(rep)})")
    p = copy("fill")
    tamper_all(p, "DELETE FROM audit_time_breaks")
    conn = sqlite3.connect(p)
    fill = next(sql for name, sql in av.MIGRATIONS if name == "0009-time-breaks")
    conn.execute(fill[fill.index("INSERT INTO audit_time_breaks"):])
    conn.commit()
    refilled = [r[0] for r in conn.execute("SELECT seq FROM audit_time_breaks ORDER BY seq")]
    conn.close()
    check(refilled == [4, 9], f"migration 0009's fill gives the same breaks ({refilled})")
    # Expired rows keep their steps: row 3 (expired, a tombstone) was recorded before row 2; row 7 before 6.
    expired_rows = retention_rows()
    expired_rows[2]["recorded_at"] = T0 + 1_500
    p = tmp / "tb-expired.sqlite"
    build_expired_store(p, rows=expired_rows)
    conn = sqlite3.connect(p)
    stored = [r[0] for r in conn.execute("SELECT seq FROM audit_time_breaks ORDER BY seq")]
    conn.close()
    rep = av.verify(str(p), both, SID)
    check(stored == [3, 7] and shown(rep) == [], f"expired store with breaks at 3 (a tombstone) and 7: intact ({stored}, {shown(rep)})")
    tamper_all(p, "DELETE FROM audit_time_breaks WHERE seq = 3")
    rep = av.verify(str(p), both, SID)
    check(shown(rep) == [("index-mismatch", 3, 3)], f"the tombstone's break deleted -> index-mismatch at 3 ({shown(rep)})")


def main() -> int:
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-c", action="store_true", help="skip compiling the reference C code")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    VERBOSE = args.verbose
    with tempfile.TemporaryDirectory(prefix="auditdb-selftest-") as d:
        tmp = pathlib.Path(d)
        test_vectors_and_schema()
        test_stores(tmp)
        test_key_proof(tmp)
        test_side_tables(tmp)
        test_query_indexes(tmp)
        test_stored_checkpoints(tmp)
        test_expired_rows(tmp)
        test_time_breaks(tmp)
        if not args.no_c:
            test_reference_c(tmp)
        print("checkpoints and export bundles (auditdb_verify_export.py)")
        import auditdb_verify_export
        FAILURES.extend(auditdb_verify_export.selftest())
        print("hostile JSON documents and bundles (hostile_vectors.py, docs/test-vectors/hostile.json)")
        import hostile_vectors
        FAILURES.extend(hostile_vectors.selftest())
        print("stores with an expired range and a hold (retention_vectors.py, docs/test-vectors/retention.json)")
        import retention_vectors
        FAILURES.extend(retention_vectors.selftest())
        print("consistency proofs and anchors checked against each other (consistency.py, docs/test-vectors/consistency.json)")
        import consistency
        FAILURES.extend(consistency.selftest())
        print("central shipping proven against the witness with public keys (shipping.py, docs/test-vectors/shipping.json)")
        import shipping
        FAILURES.extend(shipping.selftest())
        print("masking: partial masks and hash tokens (masking.py, docs/masking.md)")
        import masking
        FAILURES.extend(masking.selftest())
    if FAILURES:
        print(f"selftest: {len(FAILURES)} FAILURE(S)")
        return 1
    print("selftest: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
