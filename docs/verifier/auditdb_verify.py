#!/usr/bin/env python3
"""auditdb_verify.py - an independent verifier of AuditDB stores (format version 1).

Written from docs/FORMAT.md alone, with nothing but the Python standard library, as the
proof that FORMAT.md is complete: if this file and the Swift/C reference ever disagree, one
of them (or the document) has a bug.

Usage:
    python3 auditdb_verify.py --store FILE --key-file FILE [--store-id HEX] [--json]
    python3 auditdb_verify.py --store FILE [--store-id HEX] [--json]     # $AUDITDB_KEY_FILE or $AUDITDB_KEYS
    python3 auditdb_verify.py --store FILE --key-file FILE --public-key checkpoint.pub   # step 8 under your key
    python3 auditdb_verify.py --emit-vectors OUT.json                     # regenerate test vectors

Exit status: 0 intact, 1 findings (printed as KIND, seq, message), 2 the store could not be
verified: usage or I/O error, or a wrong key (FORMAT.md section 11, step 0: a key of the ring
verifies none of what its version signed; printed as `error: wrong key for version V: ...`).

The store is opened read-only (SQLite URI mode=ro) and read inside one transaction, so the
check sees one consistent snapshot even while a writer appends.

Expired rows (FORMAT.md section 20) are walked through their tombstones (table audit_expired) in
step 4 and step 8, and step 9 checks the expiry entries, their tombstones, the retention policy
and the legal holds in force; that part lives in retention.py, which must sit next to this file.

Step 8 (the store's own checkpoints, table audit_checkpoints) checks a checkpoint row's Ed25519
signature under the public checkpoint key file given with --public-key (FORMAT.md 16.4), else
only under the public key the row names itself (then a forged row can pass as valid). Ed25519
and CKPT_MSG come from auditdb_verify_export.py, which must sit next to this file.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import importlib.util
import json
import os
import pathlib
import re
import sqlite3
import stat
import struct
import sys

_HERE = pathlib.Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
import retention  # noqa: E402  (FORMAT.md section 20: tombstones, expiry entries, step 9)
import erasure  # noqa: E402  (FORMAT.md section 21: row format 2, erased fields, step 10)
import time_breaks  # noqa: E402  (FORMAT.md section 24: the log's time breaks, step 11)
import strict_json as sj  # noqa: E402  (section 18.6: what output never prints raw)

# --------------------------------------------------------------------------------------------
# FORMAT.md "Constants"
# --------------------------------------------------------------------------------------------

FORMAT_VERSION = 1
STORE_ID_LEN = 16
MAC_LEN = 32
TAG_LEN = 16
KEY_LEN = 32

LABEL_MAC_KEY = b"AuditDB/v1/mac-key"
LABEL_NONCE_KEY = b"AuditDB/v1/nonce-key"

MAGIC_ROW = b"ADB1ROW_"
MAGIC_LINK = b"ADB1LINK"
MAGIC_NONCE = b"ADB1NONC"
MAGIC_HEADER = b"ADB1STOR"
MAGIC_ATTEST = b"ADB1ATST"

FIELD_ACTOR = 1
FIELD_SOURCE = 2
FIELD_DETAILS = 3

ZERO32 = bytes(32)

OUTCOMES = {"success": 0, "failure": 1, "denied": 2, "error": 3}
SEVERITIES = {"info": 0, "notice": 1, "warning": 2, "critical": 3}
ORIGINS = {"recorded": 0, "back-signed": 1}

FINDING_LIMIT = 1000

# Section 11, step 0 (the key proof): rows checked per place, and how far from each place.
KEY_PROOF_ROWS = 64
KEY_PROOF_WINDOW = 4096
# Section 11, step 6: foreign side-table rows named one by one per table; the rest are counted.
FOREIGN_NAMED_LIMIT = 100
# Section 11, step 8: audit_checkpoints rows that disagree with the log examined one by one.
CHECKPOINT_EXAMINED_LIMIT = 100

# --------------------------------------------------------------------------------------------
# FORMAT.md "Primitives"
# --------------------------------------------------------------------------------------------


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def sha256(msg: bytes) -> bytes:
    return hashlib.sha256(msg).digest()


def u8(v: int) -> bytes:
    if not 0 <= v <= 0xFF:
        raise ValueError(f"u8 out of range: {v}")
    return bytes([v])


def u32(v: int) -> bytes:
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError(f"u32 out of range: {v}")
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    """Signed 64-bit integer, two's complement, big-endian (the same 8 bytes as u64(v mod 2^64))."""
    return struct.pack(">q", v)


def opt_i64(v: int | None) -> bytes:
    return b"\x00" if v is None else b"\x01" + i64(v)


def opt_str(v: bytes | None) -> bytes:
    if v is None:
        return b"\xff\xff\xff\xff"
    if len(v) >= 0xFFFFFFFF:
        raise ValueError("text field too long for format version 1")
    return u32(len(v)) + v


# --------------------------------------------------------------------------------------------
# FORMAT.md "Keys"
# --------------------------------------------------------------------------------------------


class KeySet:
    """The two keys derived from one 32-byte master key."""

    def __init__(self, master: bytes):
        if len(master) != KEY_LEN:
            raise ValueError("a master key is 32 bytes")
        self.k_mac = hmac_sha256(master, LABEL_MAC_KEY)
        self.k_nonce = hmac_sha256(master, LABEL_NONCE_KEY)

    def mac(self, msg: bytes) -> bytes:
        return hmac_sha256(self.k_mac, msg)


# --------------------------------------------------------------------------------------------
# FORMAT.md "Commitments"
# --------------------------------------------------------------------------------------------


def nonce_message(store_id: bytes, seq: int, field: int) -> bytes:
    return MAGIC_NONCE + store_id + i64(seq) + u8(field)


def field_nonce(ks: KeySet, store_id: bytes, seq: int, field: int) -> bytes:
    return hmac_sha256(ks.k_nonce, nonce_message(store_id, seq, field))


def commitment(nonce: bytes, field: int, value: bytes | None) -> bytes:
    if value is None:
        return ZERO32
    return sha256(nonce + u8(field) + value)


def committed_field(ks: KeySet, store_id: bytes, seq: int, field: int, value: bytes | None) -> bytes:
    if value is None:
        return ZERO32
    return commitment(field_nonce(ks, store_id, seq, field), field, value)


def row_commitment(ks: KeySet, store_id: bytes, row: dict, field: int) -> bytes:
    """C_f of a row as ENC_ROW holds it: section 7 for format 1, section 21.1 for format 2."""
    value = row[("actor", "source", "details")[field - 1]]
    if row["format_version"] == erasure.FORMAT_SEALED:
        return erasure.commitment_v2(row.get("seals"), field, value)
    return committed_field(ks, store_id, row["seq"], field, value)


# --------------------------------------------------------------------------------------------
# FORMAT.md "The row encoding ENC_ROW"
# --------------------------------------------------------------------------------------------

# The columns of audit_entries in the order this file reads them.
ROW_COLUMNS = (
    "seq", "recorded_at", "occurred_at", "tenant", "actor", "action", "resource_type", "resource_id",
    "outcome", "severity", "correlation_id", "source", "details", "origin", "origin_ref",
    "format_version", "key_version", "mac",
)
# The columns read from a store: ROW_COLUMNS and `seals` (migration 0006, section 21; read as NULL
# in a store without it, erasure.adapt).
READ_COLUMNS = ROW_COLUMNS + ("seals",)
TEXT_COLUMNS = ("tenant", "actor", "action", "resource_type", "resource_id", "correlation_id", "source", "details")


def enc_row(ks: KeySet, store_id: bytes, row: dict) -> bytes:
    """ENC_ROW of `row`: a dict of column values; text columns as UTF-8 bytes or None."""
    seq = row["seq"]
    return b"".join([
        MAGIC_ROW,
        store_id,
        i64(seq),
        u8(row["format_version"]),
        u32(row["key_version"]),
        i64(row["recorded_at"]),
        opt_i64(row["occurred_at"]),
        opt_str(row["tenant"]),
        opt_str(row["action"]),
        opt_str(row["resource_type"]),
        opt_str(row["resource_id"]),
        u8(row["outcome"]),
        u8(row["severity"]),
        opt_str(row["correlation_id"]),
        u8(row["origin"]),
        opt_i64(row["origin_ref"]),
        row_commitment(ks, store_id, row, FIELD_ACTOR),
        row_commitment(ks, store_id, row, FIELD_SOURCE),
        row_commitment(ks, store_id, row, FIELD_DETAILS),
    ])


def row_tag(ks: KeySet, store_id: bytes, row: dict) -> bytes:
    return ks.mac(enc_row(ks, store_id, row))[:TAG_LEN]


def link_message(store_id: bytes, seq: int, tag: bytes, prev_mac: bytes) -> bytes:
    return MAGIC_LINK + store_id + i64(seq) + tag + prev_mac


def link_tag(ks: KeySet, store_id: bytes, seq: int, tag: bytes, prev_mac: bytes) -> bytes:
    return ks.mac(link_message(store_id, seq, tag, prev_mac))[:TAG_LEN]


def seal(ks: KeySet, store_id: bytes, row: dict, prev_mac: bytes) -> bytes:
    """The stored MAC of `row`: row tag || link tag."""
    t = row_tag(ks, store_id, row)
    return t + link_tag(ks, store_id, row["seq"], t, prev_mac)


# --------------------------------------------------------------------------------------------
# FORMAT.md "Store header" and "Attestations"
# --------------------------------------------------------------------------------------------


def header_message(store_id: bytes, created_at: int, format_version: int, key_version: int) -> bytes:
    return MAGIC_HEADER + store_id + i64(created_at) + u8(format_version) + u32(key_version)


def header_mac(ks: KeySet, store_id: bytes, created_at: int, format_version: int, key_version: int) -> bytes:
    return ks.mac(header_message(store_id, created_at, format_version, key_version))


def attestation_message(store_id: bytes, seq: int, row_key_version: int, row_mac: bytes, declaration_seq: int) -> bytes:
    return MAGIC_ATTEST + store_id + i64(seq) + u32(row_key_version) + row_mac + i64(declaration_seq)


def attestation_mac(ks: KeySet, store_id: bytes, seq: int, row_key_version: int, row_mac: bytes,
                    declaration_seq: int) -> bytes:
    return ks.mac(attestation_message(store_id, seq, row_key_version, row_mac, declaration_seq))


# --------------------------------------------------------------------------------------------
# FORMAT.md "Key file" and "AUDITDB_KEYS"
# --------------------------------------------------------------------------------------------


class KeyError_(Exception):
    """A key file or variable that cannot be used (exit status 2). Never carries key bytes."""


class Key:
    def __init__(self, version: int, status: str, created: str, master: bytes):
        self.version = version
        self.status = status
        self.created = created
        self.keyset = KeySet(master)


HEXDIGITS = set(b"0123456789abcdefABCDEF")


_RFC3339 = re.compile(rb"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def rfc3339_micros(text: bytes) -> int | None:
    """The time `text` names (section 18.7's grammar: at most 6 fractional digits, within
    0001-01-01T00:00:00Z...9999-12-31T23:59:59.999999Z), in microseconds since 1970; else None."""
    m = _RFC3339.fullmatch(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or b"."
    if len(frac) > 7 or (len(frac) == 1 and m.group(7)):
        return None
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    days_in = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not 1 <= mo <= 12 or not 1 <= d <= days_in[mo - 1] or h > 23 or mi > 59 or s > 59:
        return None
    offset = 0
    zone = m.group(8)
    if zone not in (b"Z", b"z"):
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (-1 if zone[:1] == b"-" else 1)
    yy = y - (1 if mo <= 2 else 0)  # H. Hinnant's days_from_civil
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    micros = (days * 86400 + h * 3600 + mi * 60 + s - offset) * 1_000_000 + int((frac[1:] + b"000000")[:6])
    if not -62135596800_000000 <= micros <= 253402300799_999999:
        return None
    return micros


def parse_key_text(data: bytes, origin: str, place=lambda number: f"line {number}") -> dict[int, Key]:
    try:
        data.decode("utf-8")  # UTF-8 or ASCII text, comments included (section 12)
    except UnicodeDecodeError as e:
        raise KeyError_(f"{origin} is not UTF-8 text (byte {e.start})")
    keys: dict[int, Key] = {}
    masters: dict[int, bytes] = {}  # to refuse one key under two versions
    saw_header = False
    for number, line in enumerate(data.split(b"\n"), start=1):
        fields = [f for f in line.replace(b"\t", b" ").replace(b"\r", b" ").split(b" ") if f]
        if not fields or fields[0].startswith(b"#"):
            continue
        if not saw_header:
            if fields != [b"auditdb-keys", b"v1"]:
                raise KeyError_(f"{origin} {place(number)}: expected the header `auditdb-keys v1`")
            saw_header = True
            continue
        if len(fields) != 5 or fields[0] != b"key":
            raise KeyError_(f"{origin} {place(number)}: expected `key VERSION STATUS CREATED HEX` (5 fields)")
        version_text = fields[1]
        # Digits only, no sign or leading zero (section 12).
        if not version_text.isdigit() or version_text.startswith(b"0") or not 1 <= int(version_text) <= 0xFFFFFFFF:
            raise KeyError_(f"{origin} {place(number)}: the version must be a whole number from 1, "
                            "in digits without a sign or leading zeros")
        version = int(version_text)
        status = fields[2].decode("ascii", "replace")
        if status not in ("active", "compromised"):
            raise KeyError_(f"{origin} {place(number)}: status must be `active` or `compromised`")
        hex_field = fields[4]
        if len(hex_field) != 64:
            raise KeyError_(f"{origin} {place(number)}: the key must be 64 hex digits (32 bytes); "
                            f"found {len(hex_field)} characters")
        if fields[3] != b"-" and rfc3339_micros(fields[3]) is None:
            raise KeyError_(f"{origin} {place(number)}: the creation time must be an RFC 3339 time "
                            "(as AuditDB writes it, e.g. 2026-11-23T13:15:00.000000Z) or -")
        if not all(c in HEXDIGITS for c in hex_field):
            raise KeyError_(f"{origin} {place(number)}: the key is not valid hex")
        secret = bytes.fromhex(hex_field.decode())
        if secret == bytes(32):
            raise KeyError_(f"key version {version} is 32 zero bytes, which anyone could sign with; "
                            "generate a key (`auditdb keys generate`)")
        if version in keys:
            raise KeyError_(f"{origin}: key version {version} appears twice; each version must be unique")
        twin = next((v for v, other in masters.items() if hmac.compare_digest(other, secret)), None)
        if twin is not None:
            raise KeyError_(f"key versions {min(twin, version)} and {max(twin, version)} hold the same key; "
                            "each version must be a key of its own (`auditdb keys rotate` generates one)")
        keys[version] = Key(version, status, fields[3].decode("utf-8", "replace"), secret)
        masters[version] = secret
    if not saw_header:
        raise KeyError_(f"{origin}: no `auditdb-keys v1` header; is this a key file?")
    if not any(k.status == "active" for k in keys.values()):
        raise KeyError_(f"{origin}: no active key (the ring needs at least one)")
    return keys


def load_key_file(path: str) -> dict[int, Key]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise KeyError_(f"cannot open key file {path}: {e.strerror}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyError_(f"key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyError_(f"key file {path} is accessible by group or others (mode {st.st_mode & 0o777:o}); "
                            f"run `chmod 600 {path}`")
        if not 0 < st.st_size < (1 << 20):
            raise KeyError_(f"key file {path} is empty or too large ({st.st_size} bytes)")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return parse_key_text(b"".join(chunks), f"key file {path}")


def keys_from_environment(variable: str = "AUDITDB_KEYS") -> dict[int, Key]:
    raw = os.environb.get(variable.encode()) if hasattr(os, "environb") else os.environ.get(variable, "").encode()
    if raw is None:
        raise KeyError_(f"environment variable {variable} is not set")
    lines = [b"auditdb-keys v1"]
    number = 0  # entries are numbered from 1, counting only non-empty ones
    for entry in raw.replace(b",", b" ").replace(b"\n", b" ").split(b" "):
        if not entry:
            continue
        number += 1
        parts = entry.split(b":")
        if len(parts) not in (2, 3):
            raise KeyError_(f"environment variable {variable}, entry {number}: "
                            f"expected VERSION:HEX or VERSION:HEX:STATUS (found {len(parts)} field(s))")
        empty = next((i for i, p in enumerate(parts) if not p or p.startswith(b"#") or b"\t" in p or b"\r" in p), None)
        if empty is not None:
            raise KeyError_(f"environment variable {variable}, entry {number}: {('VERSION', 'HEX', 'STATUS')[empty]} is "
                            "empty or holds a tab, a CR or a leading #; write VERSION:HEX or VERSION:HEX:STATUS (STATUS "
                            "active or compromised)")
        status = parts[2] if len(parts) == 3 else b"active"
        lines.append(b"key " + parts[0] + b" " + status + b" - " + parts[1])
    # Line 1 is the header; line n + 1 is entry n.
    return parse_key_text(b"\n".join(lines) + b"\n", f"environment variable {variable}",
                          place=lambda number: f"entry {number - 1}")


# --------------------------------------------------------------------------------------------
# FORMAT.md Appendix A.1, migration 0001-initial (format version 1; selftest.py checks that
# this copy and FORMAT.md agree, and that all migrations together equal schema/audit.sql)
# --------------------------------------------------------------------------------------------

SCHEMA_SQL = r"""
CREATE TABLE audit_store (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    store_id       BLOB    NOT NULL CHECK (length(store_id) = 16),
    created_at     INTEGER NOT NULL,
    format_version INTEGER NOT NULL,
    key_version    INTEGER NOT NULL,
    mac            BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;

CREATE TABLE audit_entries (
    seq            INTEGER PRIMARY KEY,
    recorded_at    INTEGER NOT NULL,
    occurred_at    INTEGER,
    tenant         TEXT,
    actor          TEXT,
    action         TEXT    NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    outcome        INTEGER NOT NULL,
    severity       INTEGER NOT NULL,
    correlation_id TEXT,
    source         TEXT,
    details        TEXT,
    origin         INTEGER NOT NULL,
    origin_ref     INTEGER,
    format_version INTEGER NOT NULL,
    key_version    INTEGER NOT NULL,
    mac            BLOB    NOT NULL
) STRICT;

CREATE TABLE audit_key_versions (
    key_version INTEGER PRIMARY KEY,
    first_seq   INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_attestations (
    seq             INTEGER NOT NULL,
    key_version     INTEGER NOT NULL,
    declaration_seq INTEGER NOT NULL,
    mac             BLOB    NOT NULL,
    PRIMARY KEY (seq, key_version)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER audit_store_no_update BEFORE UPDATE ON audit_store
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_store is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_store_no_delete BEFORE DELETE ON audit_store
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_store is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_store_no_overwrite BEFORE INSERT ON audit_store
WHEN EXISTS (SELECT 1 FROM audit_store)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_store is append-only: the store header cannot be replaced'); END;

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'AuditDB: the audit log is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'AuditDB: the audit log is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_entries_next_seq_only BEFORE INSERT ON audit_entries
WHEN NEW.seq IS NULL OR NEW.seq <> coalesce((SELECT max(seq) FROM audit_entries), 0) + 1
BEGIN SELECT RAISE(ABORT, 'AuditDB: the audit log is append-only: a new row must take the next seq (no overwrite, no gap)'); END;

CREATE TRIGGER audit_key_versions_no_update BEFORE UPDATE ON audit_key_versions
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_key_versions is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_key_versions_no_delete BEFORE DELETE ON audit_key_versions
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_key_versions is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_key_versions_no_overwrite BEFORE INSERT ON audit_key_versions
WHEN EXISTS (SELECT 1 FROM audit_key_versions WHERE key_version = NEW.key_version)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_key_versions is append-only: a row cannot be replaced'); END;

CREATE TRIGGER audit_attestations_no_update BEFORE UPDATE ON audit_attestations
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_attestations is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_attestations_no_delete BEFORE DELETE ON audit_attestations
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_attestations is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_attestations_no_overwrite BEFORE INSERT ON audit_attestations
WHEN EXISTS (SELECT 1 FROM audit_attestations WHERE seq = NEW.seq AND key_version = NEW.key_version)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_attestations is append-only: a row cannot be replaced'); END;

CREATE VIEW audit_log AS
SELECT seq,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000000.0, 'unixepoch') AS recorded_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', occurred_at / 1000000.0, 'unixepoch') AS occurred_at,
       tenant, actor, action, resource_type, resource_id,
       CASE outcome WHEN 0 THEN 'success' WHEN 1 THEN 'failure' WHEN 2 THEN 'denied' WHEN 3 THEN 'error' END AS outcome,
       CASE severity WHEN 0 THEN 'info' WHEN 1 THEN 'notice' WHEN 2 THEN 'warning' WHEN 3 THEN 'critical' END AS severity,
       correlation_id, source, details,
       CASE origin WHEN 0 THEN 'recorded' WHEN 1 THEN 'back-signed' END AS origin,
       key_version
FROM audit_entries;
"""

# The schema history (FORMAT.md, Appendix A): each migration's SQL, in order. A store's expected
# objects are those its recorded migrations (GRDB's grdb_migrations table) create.
MIGRATIONS = [
    ("0001-initial", SCHEMA_SQL),
    ("0002-origin-ref-index",
     "CREATE INDEX audit_entries_origin_ref ON audit_entries(origin_ref) WHERE origin_ref IS NOT NULL;"),
    ("0003-query-indexes", """CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor) WHERE actor IS NOT NULL;
CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id) WHERE resource_id IS NOT NULL;
CREATE INDEX audit_entries_tenant_time ON audit_entries(tenant, recorded_at) WHERE tenant IS NOT NULL;
CREATE INDEX audit_entries_recorded_at ON audit_entries(recorded_at);
CREATE INDEX audit_entries_engine ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/';
CREATE VIEW audit_scan_history AS
SELECT seq,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000000.0, 'unixepoch') AS recorded_at,
       json_extract(details, '$.mode') AS mode,
       json_extract(details, '$.fromSeq') AS from_seq,
       json_extract(details, '$.throughSeq') AS through_seq,
       json_extract(details, '$.rowsChecked') AS rows_checked,
       json_extract(details, '$.durationMicros') AS duration_us,
       json_extract(details, '$.result') AS result,
       json_extract(details, '$.findings') AS findings,
       json_extract(details, '$.firstFinding') AS first_finding
FROM audit_entries
WHERE action = 'auditdb.scan' AND origin = 0;"""),
    ("0004-checkpoints", """
CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
    chain_head  BLOB    NOT NULL CHECK (length(chain_head) = 32),
    merkle_root BLOB    NOT NULL CHECK (length(merkle_root) = 32),
    signature   BLOB    NOT NULL CHECK (length(signature) = 64),
    frontier    BLOB    NOT NULL
) STRICT;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_checkpoints is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_checkpoints is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_checkpoints_next_only BEFORE INSERT ON audit_checkpoints
WHEN NEW.seq <= coalesce((SELECT max(seq) FROM audit_checkpoints), 0)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_checkpoints is append-only: a checkpoint must cover more rows than the last one'); END;
"""),
    ("0005-retention", """
CREATE TABLE audit_expired (
    seq         INTEGER PRIMARY KEY,
    key_version INTEGER NOT NULL,
    mac         BLOB    NOT NULL,
    leaf        BLOB    NOT NULL,
    recorded_at INTEGER NOT NULL,
    tags        BLOB    NOT NULL,
    expiry_seq  INTEGER NOT NULL
) STRICT;

CREATE TRIGGER audit_expired_no_update BEFORE UPDATE ON audit_expired
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_expired is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_expired_no_delete BEFORE DELETE ON audit_expired
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_expired is append-only: DELETE is not allowed'); END;
"""),
    ("0006-erasure", """
ALTER TABLE audit_entries ADD COLUMN seals BLOB;
"""),
    ("0007-erasure-paths", """
SELECT 1;
"""),
    ("0008-tenant-seq-index",
     "CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant) WHERE tenant IS NOT NULL;"),
    ("0009-time-breaks", """
CREATE TABLE audit_time_breaks (
    seq INTEGER PRIMARY KEY
) STRICT;

CREATE TRIGGER audit_time_breaks_no_update BEFORE UPDATE ON audit_time_breaks
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_time_breaks is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_time_breaks_no_delete BEFORE DELETE ON audit_time_breaks
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_time_breaks is append-only: DELETE is not allowed'); END;

INSERT INTO audit_time_breaks(seq)
SELECT seq FROM (
    SELECT seq, recorded_at < lag(recorded_at) OVER (ORDER BY seq) AS backwards
    FROM (SELECT seq, recorded_at FROM audit_entries WHERE seq >= 1
          UNION ALL SELECT seq, recorded_at FROM audit_expired x WHERE seq >= 1
                    AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq))
) WHERE backwards;
"""),
    ("0010-tenant-filter-index", """
DROP INDEX audit_entries_tenant_seq;
CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, (seq >> 0), outcome, severity, action) WHERE tenant IS NOT NULL;
"""),
    ("0011-key-filter-indexes", """
DROP INDEX audit_entries_actor;
CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, (seq >> 0), outcome, severity, action) WHERE actor IS NOT NULL;
DROP INDEX audit_entries_resource;
CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id, (seq >> 0), outcome, severity, action) WHERE resource_id IS NOT NULL;
"""),
]
ALL_MIGRATIONS_SQL = "\n".join(sql for _, sql in MIGRATIONS)


ALL_OBJECTS_SQL = r"""
SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name
"""
_KNOWN = None  # (names, tables) of every object the known migrations create; filled on first use


def _known_objects() -> tuple[set[str], set[str]]:
    """AuditDB's objects (section 11, step 1): every object any known migration creates, by name,
    and the tables and views whose attached objects (triggers, indexes) are AuditDB's concern."""
    global _KNOWN
    if _KNOWN is None:
        mem = sqlite3.connect(":memory:")
        try:
            mem.executescript(ALL_MIGRATIONS_SQL)
            rows = mem.execute(ALL_OBJECTS_SQL).fetchall()
        finally:
            mem.close()
        _KNOWN = ({_ascii_lower(r[1]) for r in rows}, {_ascii_lower(r[1]) for r in rows if r[0] in ("table", "view")})
    return _KNOWN


def _as_sqlite_reads(name) -> str:
    """A stored name up to its first NUL: the name SQLite reads (a C string)."""
    return _s(name).split("\x00", 1)[0]


def _ascii_lower(name) -> str:
    """SQLite's names ignore ASCII case only: `AUDIT_ENTRIES` is the table audit_entries."""
    text = _s(name)
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def schema_objects(conn: sqlite3.Connection) -> dict[str, tuple[str, str | None]]:
    out = {}
    names, tables = _known_objects()
    for typ, name, table, sql in conn.execute(ALL_OBJECTS_SQL):
        # Which objects are AuditDB's goes by the names SQLite reads (ASCII case ignored, up to a
        # NUL: an index whose tbl_name is "audit_entries" and a NUL is on audit_entries); the
        # comparison is of every stored byte (section 11, step 1).
        if _ascii_lower(_as_sqlite_reads(name)) not in names and _ascii_lower(_as_sqlite_reads(table)) not in tables:
            continue  # not AuditDB's: an app's own objects, whatever their names
        key = f"{_s(typ)} {_s(name)}"
        out.setdefault(key, (_s(table), None if sql is None else _s(sql)))
    return out


def expected_schema_objects(schema_sql: str = SCHEMA_SQL) -> dict[str, tuple[str, str | None]]:
    mem = sqlite3.connect(":memory:")
    try:
        mem.executescript(schema_sql)
        return schema_objects(mem)
    finally:
        mem.close()


def _s(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


# --------------------------------------------------------------------------------------------
# FORMAT.md "Verification"
# --------------------------------------------------------------------------------------------


class Finding:
    def __init__(self, kind: str, first: int | None, last: int | None, message: str):
        self.kind, self.first, self.last, self.message = kind, first, last, message

    def sort_key(self):
        return (-(1 << 63) if self.first is None else self.first, self.kind)

    def where(self) -> str:
        if self.first is None:
            return ""
        if self.first == self.last:
            return f" at seq {self.first}"
        return f" at seqs {self.first}...{self.last}"

    def __str__(self) -> str:
        return f"{self.kind}{self.where()}: {self.message}"

    def as_json(self) -> dict:
        return {"kind": self.kind, "first_seq": self.first, "last_seq": self.last, "message": self.message}


class Report:
    def __init__(self):
        self.store_id: bytes | None = None
        self.rows_checked = 0
        self.rows_expired = 0  # expired seqs walked through their tombstones (section 20.4), not checked rows
        self.last_seq = 0
        self.findings: list[Finding] = []

    @property
    def intact(self) -> bool:
        return not self.findings

    def add(self, kind: str, first: int | None, last: int | None, message: str):
        self.findings.append(Finding(kind, first, last, message))


class StoreOpenError(Exception):
    """The store could not be opened or read for a reason other than damage (exit status 2)."""


class WrongKeyError(Exception):
    """Section 11, step 0: a key of the ring verifies none of the evidence its version signed.
    Not damage: verification does not run and there is no report (exit status 2).

    `versions`: every wrong version, ascending; `evidence`: the seqs checked for the first of
    them (0 = the store header)."""

    def __init__(self, versions: list[int], evidence: list[int], path: str):
        self.versions, self.evidence = versions, evidence
        names = ", ".join(str(v) for v in versions)
        what = ", ".join("the store header" if s == 0 else f"row {s}" for s in evidence[:3])
        more = f" and {len(evidence) - 3} more row(s) it signed" if len(evidence) > 3 else ""
        super().__init__(
            f"wrong key for version {names}: the key supplied for version {versions[0]} verifies none of what "
            f"that version signed in {path} ({what}{more}). Load the right key file (or fix AUDITDB_KEYS); if "
            "you are sure the key is right, the store was tampered with (the header and every row checked "
            "were altered)")


SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26


def _is_corruption(e: sqlite3.DatabaseError) -> bool:
    """A damaged page or a file that is not a database (SQLITE_CORRUPT, SQLITE_NOTADB), or a header
    whose schema format number (bytes 44-47) is above 4, which SQLite refuses to read (SQLITE_ERROR
    "unsupported file format"; section 11, step 5)."""
    if str(e) == "unsupported file format":
        return True
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(e).lower()
    return "malformed" in text or "not a database" in text


def open_read_only(path: str) -> sqlite3.Connection:
    p = pathlib.Path(path)
    if not p.is_file():
        raise StoreOpenError(f"{path}: no such store file")
    if p.stat().st_size == 0:
        # SQLite would open it as an empty database; AuditDB never makes an empty store file (section 11).
        raise StoreOpenError(f"{path} is an empty file, not an AuditDB store: check the path (`auditdb init` creates a store); "
                             "if it held a store, it was emptied: restore it from a backup")
    uri = p.absolute().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.text_factory = bytes  # text exactly as stored (UTF-8 bytes), never decoded or normalised
    try:
        _refuse_another_applications_file(conn, path)
    except StoreOpenError:
        conn.close()
        raise
    return conn


def _refuse_another_applications_file(conn: sqlite3.Connection, path: str) -> None:
    """Section 11: an SQLite file without the tables audit_entries and audit_store whose
    grdb_migrations (if any) records fewer than two of Appendix A's identifiers is another
    application's file, not a store: the verifier cannot run. (Two or more: a store whose tables
    were dropped, verified with findings.) A file SQLite cannot read this way is left to the
    verification, which reports it as corruption."""
    try:
        own = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('audit_entries', 'audit_store')").fetchone()[0]
        if own:
            return
        known = {name.encode() for name, _ in MIGRATIONS}
        recorded: set[bytes] = set()
        if conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'grdb_migrations'").fetchone()[0]:
            recorded = {row[0] for row in conn.execute("SELECT CAST(identifier AS TEXT) FROM grdb_migrations NOT INDEXED WHERE identifier IS NOT NULL")}
    except (sqlite3.DatabaseError, UnicodeDecodeError):
        # UnicodeDecodeError: SQLite's error message quotes schema text that is not UTF-8 (see
        # verify); the verification reports that damage.
        return
    if len(recorded & known) < 2:
        raise StoreOpenError(f"{path} is an SQLite database without AuditDB's tables or migration record, not an AuditDB store: "
                             "another application's file (check the path; it was not changed)")


def verify(path: str, keys: dict[int, Key], expected_store_id: bytes | None = None,
           schema_sql: str | None = SCHEMA_SQL, checkpoint_keys: dict[int, bytes] | None = None) -> Report:
    """`checkpoint_keys`: the verifier's public checkpoint key file (version -> 32-byte Ed25519
    public key, see load_public_key_file), which step 8 trusts; None: step 8 checks each
    checkpoint row only against the public key it names."""
    report = Report()
    conn = open_read_only(path)
    try:
        try:
            conn.execute("BEGIN")  # one read transaction: one consistent snapshot
            _verify(conn, report, keys, expected_store_id, schema_sql, path, checkpoint_keys)
            try:
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as e:
                # Ending the read transaction meets the damage a step already reported (a damaged
                # index page, step 7): the same damage, not a second finding.
                if not (_is_corruption(e) and any(f.kind == "corruption" for f in report.findings)):
                    raise
        except sqlite3.DatabaseError as e:
            if isinstance(e, LogExtentUnknown):
                # Damage met before step 4 makes its one finding the whole report (section 11, step 5).
                report = Report()
                report.add("corruption", None, None, f"SQLite cannot read the store: {e}")
            elif _is_corruption(e):
                report.add("corruption", None, None, f"SQLite cannot read the store: {e}")
            elif os.path.exists(path + "-journal") and os.path.getsize(path + "-journal") > 0:
                raise StoreOpenError(f"{path}: {e}: its rollback journal ({path}-journal) must be rolled back first, which "
                                     "needs write access (section 11): open the store once with `auditdb verify`, or copy "
                                     "the file with its -journal and open the copy with sqlite3, then verify again")
            else:
                raise StoreOpenError(f"{path}: {e}")
        except UnicodeDecodeError as e:
            # Text is read as bytes (text_factory), so only an error message of SQLite's can fail
            # to decode: one that quotes a schema name that is not UTF-8 ("malformed database
            # schema (NAME)"), written there by another client.
            report.add("corruption", None, None,
                       f"SQLite cannot read the store: its error quotes bytes that are not UTF-8 ({e.object[:80]!r}), a damaged schema")
    finally:
        conn.close()
    report.findings = merge_missing_rows(report.findings)
    report.findings.sort(key=Finding.sort_key)
    return report


def merge_missing_rows(findings: list[Finding]) -> list[Finding]:
    """Section 11, "Merging": among the `missing-rows` findings ordered by their first seq (ties in
    the order found), one that starts right after the one before it is joined to it. (Step 5 reports consecutive rows moved out of the tail one by one; joined, they
    read as one range, the way a gap is reported.)"""
    ordered = sorted(findings, key=lambda f: -(1 << 63) if f.first is None else f.first)
    out: list[Finding] = []
    last_missing = None  # index in `out` of the last missing-rows finding: only those are compared
    for f in ordered:
        last = out[last_missing] if last_missing is not None else None
        if (f.kind == "missing-rows" and last is not None and last.last is not None
                and f.first is not None and last.last + 1 == f.first):
            out[last_missing] = Finding("missing-rows", last.first, f.last,
                                        f"{f.last - last.first + 1} row(s) missing before seq {f.last + 1} (removed)")
            continue
        if f.kind == "missing-rows":
            last_missing = len(out)
        out.append(f)
    return out


def _table_exists(conn, name: str) -> bool:
    # Table names are case-insensitive in SQLite (and in GRDB's tableExists).
    return conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
                        (name,)).fetchone() is not None


def _verify(conn, report: Report, keys: dict[int, Key], expected: bytes | None, schema_sql: str | None,
            path: str = "the store", checkpoint_keys: dict[int, bytes] | None = None):
    # Step 0: the keys, before any finding. A wrong key raises WrongKeyError (no report).
    # Without a well-formed header there is no store id, so no MAC can be checked, hence no
    # evidence can verify: the proof is skipped (as in the reference).
    header, header_problem = _read_header(conn)
    if header is not None:
        _prove_keys(conn, keys, header, path)

    engine_rows = _verify_log(conn, report, keys, expected, schema_sql, header, header_problem)

    # Step 6: side tables (this verifier always makes full passes).
    _foreign_key_versions(conn, report)
    _foreign_attestations(conn, report, keys, header)

    # A damaged page that ended step 4's reading of the rows (its `corruption` finding has seqs):
    # steps 7, 9, 10 and 11 judge indexes, tombstones, erased fields and time breaks against the
    # rows, and are not run on a log that was not all read (section 11, step 5).
    rows_unread = any(f.kind == "corruption" and f.first is not None for f in report.findings)

    # Step 7: query indexes (with a store id; this verifier always makes full passes).
    if header is not None and not rows_unread:
        _check_indexes(conn, report)

    # Step 8: the store's own checkpoints (with a store id).
    if header is not None:
        _stored_checkpoints(conn, report, header["store_id"], checkpoint_keys)

    # Step 9: expiry (section 20.4; with a store id and the log's table).
    if header is not None and _table_exists(conn, "audit_entries") and not rows_unread:
        retention.check_expiry(conn, report, keys, header["store_id"], engine_rows,
                               _table_exists(conn, "audit_expired"))
        # Step 10: erased fields (section 21.4).
        erasure.check_erasure(conn, report, engine_rows)

    # Step 11: time breaks (section 24.3; with a store id).
    if header is not None and not rows_unread:
        time_breaks.check_time_breaks(conn, report)

    # Step 12: the file's structure, as SQLite checks it, unless damage is already reported.
    if not any(f.kind == "corruption" for f in report.findings):
        # SQLite checks every b-tree and the free-page list before each row's NULLs and STRICT
        # types: a value as the first problem means the structure is sound (steps 2-4 judge values).
        first = _s(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
        problem = "; ".join(line for line in first.split("\n") if line and line != "*** in database main ***")
        if first != "ok" and not re.match(r"(NULL|non-[A-Z]+) value in ", problem):
            report.add("corruption", None, None,
                       f"SQLite's own check of the file (PRAGMA quick_check) finds its structure damaged: {problem}. "
                       "Appends may fail; restore the store from a backup and keep this copy as evidence")


def _file_header_bytes(conn):
    """Bytes 18, 19 and 20 of the main database file's header, and bytes 72-91 (reserved for
    expansion), as stored in the file (not a page image in the -wal); None if the file cannot be
    read now or is too short (section 11, step 1)."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    path = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError:
        return None
    return (head[18], head[19], head[20], head[72:92]) if len(head) == 100 else None


MIGRATION_RECORD_INDEX = "sqlite_autoindex_grdb_migrations_1"


def _migration_index_disagreement(conn) -> str | None:
    """Section 11, step 1: the identifiers of grdb_migrations read through its PRIMARY KEY index
    against those of the table itself (each as SQLite's quote() renders it, in identifier order);
    None when they agree or there is no such index."""
    exists = conn.execute("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ? "
                          "AND tbl_name = 'grdb_migrations')", (MIGRATION_RECORD_INDEX,)).fetchone()[0]
    if not exists:
        return None
    table = [_s(r[0]) for r in conn.execute("SELECT quote(identifier) FROM grdb_migrations NOT INDEXED ORDER BY identifier")]
    index = [_s(r[0]) for r in conn.execute(
        f"SELECT quote(identifier) FROM grdb_migrations INDEXED BY {MIGRATION_RECORD_INDEX} ORDER BY identifier")]
    if table == index:
        return None
    only_index = [v for v in index if v not in table]
    only_table = [v for v in table if v not in index]
    differences = ([f"in the index only: {', '.join(only_index)}"] if only_index else []) + \
                  ([f"in the table only: {', '.join(only_table)}"] if only_table else [])
    return (f"the index of the migration record ({MIGRATION_RECORD_INDEX}) does not list what grdb_migrations holds ("
            + ("; ".join(differences) if differences else "the same identifiers, in another order or number")
            + "): another client changed the index, and GRDB's migrator, which reads the record through it, would "
            "believe it. Keep a copy of the file as evidence, then rebuild the index: sqlite3 STORE "
            "'REINDEX grdb_migrations' (docs/migrations.md)")


def _encoding_message(encoding: str) -> str:
    return (f"the database's text encoding is {encoding}; AuditDB stores are UTF-8 (the file was rebuilt by "
            "another tool): SQLite orders and compares text in another way in this encoding, so queries and "
            "index ranges could miss rows")


def _verify_log(conn, report: Report, keys: dict[int, Key], expected: bytes | None, schema_sql: str | None,
                header: dict | None, header_problem: str | None) -> dict[int, dict]:
    """Steps 1-5. Returns the verified expiry and hold entries step 9 reads (see _scan)."""
    # Step 1: schema.
    if schema_sql is not None:
        if schema_sql is SCHEMA_SQL:  # the default: follow the store's recorded migrations
            known = [name for name, _ in MIGRATIONS]
            # Read from the table itself; any value is an identifier (NULL reads as "NULL").
            record_state = (None if _table_exists(conn, "grdb_migrations")
                            and any(r[1] == b"identifier" or r[1] == "identifier"
                                    for r in conn.execute("PRAGMA table_info(grdb_migrations)"))
                            else "missing" if not _table_exists(conn, "grdb_migrations")
                            else "without its identifier column")
            applied = ([_s(r[0]) for r in conn.execute(
                           "SELECT coalesce(CAST(identifier AS TEXT), 'NULL') FROM grdb_migrations NOT INDEXED ORDER BY 1")]
                       if record_state is None else [])
            if not applied and (_table_exists(conn, "audit_entries") or _table_exists(conn, "audit_store")):
                state = record_state or "empty"
                report.add("schema-tampered", None, None,
                           f"the migration record (grdb_migrations) is {state}: every AuditDB store records the migrations "
                           "it took, so it was removed by another SQLite client. Until it is restored (from a backup), "
                           "other commands refuse the store")
            unknown = [name for name in applied if name not in known]
            if unknown:
                report.add("schema-tampered", None, None,
                           f"unknown migrations recorded: {', '.join(unknown)} (newer AuditDB, or tampering)")
            # grdb_migrations is attacker-controlled too: a skipped record is tampering, fewer
            # records than Appendix A is schema-outdated (section 11, step 1).
            recorded = [name for name in applied if name in known]
            if applied and recorded != known[:len(recorded)]:
                report.add("schema-tampered", None, None,
                           f"the recorded migrations ({', '.join(recorded)}) skip some of {', '.join(known)}: "
                           "a migration record was removed or edited")
            elif applied and len(recorded) < len(known):
                report.add("schema-outdated", None, None,
                           f"the store records schema migrations up to {recorded[-1] if recorded else 'none'} only; "
                           f"this verifier's schema goes to {known[-1]}. Run `auditdb migrate`. If this store was "
                           "migrated before, its migration record and the objects of the later migrations were "
                           "removed (tampering)")
            # The record's own index, through which GRDB's migrator reads it, must list what the
            # table holds (section 11, step 1).
            disagreement = _migration_index_disagreement(conn) if record_state is None else None
            if disagreement:
                report.add("schema-tampered", None, None, disagreement)
            # Every migration up to the last one recorded, a skipped record included: a record
            # taken out must not lower what is expected (the skip is reported above).
            through = max((i for i, (name, _) in enumerate(MIGRATIONS) if name in applied), default=len(MIGRATIONS) - 1)
            use = [sql for _, sql in MIGRATIONS[:through + 1]]
            schema_sql = "\n".join(use)
        want = expected_schema_objects(schema_sql)
        have = schema_objects(conn)
        for key in sorted(want):
            if key not in have:
                report.add("schema-tampered", None, None, f"{key} is missing (dropped?)")
            elif have[key] != want[key]:
                report.add("schema-tampered", None, None, f"{key} differs from its definition (edited?)")
        for key in sorted(have):
            if key not in want:
                report.add("schema-tampered", None, None, f"unexpected {key} on {have[key][0]}")
        encoding = _s(conn.execute("PRAGMA encoding").fetchone()[0])
        if encoding != "UTF-8":
            report.add("schema-tampered", None, None, _encoding_message(encoding))
        header_bytes = _file_header_bytes(conn)
        if header_bytes is not None and not all(v in (1, 2) for v in header_bytes[:2]):
            write, read = header_bytes[:2]
            report.add("corruption", None, None,
                       f"the SQLite file header's format versions are {write} (write, byte 18) and {read} (read, byte 19), "
                       "not 1 or 2 as SQLite writes them: with a write version above 2 SQLite opens the file read-only, so "
                       "every append fails. Another client changed them; restore the store from a backup (or write 2 back "
                       "into both bytes)")
        if header_bytes is not None and header_bytes[2] != 0:
            report.add("corruption", None, None,
                       f"the SQLite file header reserves {header_bytes[2]} byte(s) at the end of every page (byte 20), not 0 "
                       "as AuditDB creates every store: SQLite then lays out every page differently, so the pages read as "
                       "damaged (PRAGMA quick_check) and writes fail. Another client changed it; restore the store from a "
                       "backup (or write 0 back into byte 20)")
        if header_bytes is not None and any(header_bytes[3]):
            first = 72 + next(i for i, b in enumerate(header_bytes[3]) if b)
            report.add("corruption", None, None,
                       f"the SQLite file header's bytes 72 to 91, reserved for expansion, are not all zero (byte {first} is "
                       "not), as SQLite requires: another client edited the file header. Restore the store from a backup "
                       "(or write zeros back into bytes 72 to 91)")

    # The attestations that count (section 10), needed only when some key version is compromised:
    # by the header check (seq 0) and the row scan. Without audit_entries there are no
    # declarations, hence no attestation counts.
    compromised = {v for v, k in keys.items() if k.status == "compromised"}
    has_entries = _table_exists(conn, "audit_entries")
    attestations = (_load_attestations(conn)
                    if compromised and has_entries and _table_exists(conn, "audit_attestations") else {})

    # Step 2: header.
    store_id = _check_header(report, keys, expected, compromised, attestations, header, header_problem)
    report.store_id = store_id

    if not has_entries:
        if schema_sql is None:  # otherwise already reported by the schema check
            report.add("schema-tampered", None, None, "table audit_entries is missing (dropped?)")
        return {}

    low = conn.execute("SELECT min(seq), max(seq), count(*) FROM audit_entries NOT INDEXED WHERE seq < 1").fetchone()
    if low[2]:
        report.add("unexpected-rows", low[0], low[1], f"{low[2]} row(s) with seq below 1; the log starts at seq 1")
    has_tombstones = _table_exists(conn, "audit_expired")
    hi = log_end(conn, has_tombstones)
    first = conn.execute("SELECT seq FROM audit_entries NOT INDEXED WHERE seq >= 1 ORDER BY seq LIMIT 1").fetchone()
    if (first is None) != (hi is None):
        # A damaged last page can hide the last row from one read and not the first row from the
        # other: the log's extent is unknown, and SQLite gave no error to report (section 11, step 5).
        raise LogExtentUnknown(f"database disk image is malformed: the table audit_entries returns a first row "
                               f"(seq {first[0] if first else 0}) but no last one: a damaged page")
    report.last_seq = hi or 0
    if store_id is None or hi is None:
        return {}  # without a store id no MAC can be checked; an empty log has nothing more to check

    engine_rows = _scan(conn, report, keys, store_id, compromised, attestations, hi, has_tombstones)
    if low[2] and low[2] <= 1000:
        _moved_from_tail(conn, report, keys, store_id, hi, low[2])
    return engine_rows


class LogExtentUnknown(sqlite3.DatabaseError):
    """The first and the last row of audit_entries disagree: damage met before step 4."""


def log_end(conn, has_tombstones: bool) -> int | None:
    """L, the highest seq >= 1 of the log's rows (AuditDB never expires the newest row, so a
    tombstone above it is not one of the log's: section 20.4). None for an empty log."""
    return conn.execute("SELECT max(seq) FROM audit_entries NOT INDEXED WHERE seq >= 1").fetchone()[0]


def _moved_from_tail(conn, report: Report, keys, store_id: bytes, hi: int, count: int):
    """Step 5: a row below seq 1 whose row tag verifies at one of the seqs just past the end of
    the log was moved out of that place (a cut tail): report that seq as missing."""
    n = len(READ_COLUMNS)
    query = _SELECT_ROWS.replace("WHERE seq >= 1 ORDER BY seq", "WHERE seq < 1 ORDER BY seq LIMIT 1000")
    for values in conn.execute(erasure.adapt(conn, query)).fetchall():
        row = dict(zip(READ_COLUMNS, values[:n]))
        types = {c: _s(t) for c, t in zip(READ_COLUMNS, values[n:])}
        key = keys.get(row["key_version"]) if _malformed(row, types) is None else None
        if key is None:
            continue
        stored = bytes(row["mac"])
        for candidate in range(hi + 1, min(hi + count, 2**63 - 1) + 1):  # no seq past 2^63 - 1
            if hmac.compare_digest(row_tag(key.keyset, store_id, dict(row, seq=candidate)), stored[:TAG_LEN]):
                report.add("missing-rows", candidate, candidate,
                           f"the row of seq {candidate} was moved out of the log to seq {row['seq']} (the tail was cut)")
                break


def _read_header(conn) -> tuple[dict | None, str | None]:
    """Step 2.1: the header if it is well-formed (store_id, created_at, format_version,
    key_version, mac), else None and why (the message of a `header-tampered` finding)."""
    if not _table_exists(conn, "audit_store"):
        return None, "the audit_store table is missing"
    rows = conn.execute(
        "SELECT store_id, typeof(store_id), created_at, typeof(created_at), format_version, typeof(format_version),"
        " key_version, typeof(key_version), mac, typeof(mac), singleton, typeof(singleton) FROM audit_store").fetchall()
    if len(rows) != 1:
        return None, f"audit_store holds {len(rows)} rows; it must hold exactly one"
    sid, t_sid, created, t_created, fmt, t_fmt, kv, t_kv, mac, t_mac, singleton, t_singleton = rows[0]
    if (_s(t_sid) != "blob" or len(sid) != STORE_ID_LEN or _s(t_created) != "integer"
            or _s(t_fmt) != "integer" or _s(t_kv) != "integer" or not 0 <= kv <= 0xFFFFFFFF
            or _s(t_mac) != "blob"):
        return None, "the store header has invalid columns"
    # `singleton` is outside the header MAC: another value is a finding of its own (step 2.1),
    # and the header is read regardless, so that it cannot hide the rows' findings.
    singleton_problem = None
    if _s(t_singleton) != "integer":  # the rowid: an integer unless the table itself was rebuilt
        singleton_problem = "not an INTEGER"
    elif singleton != 1:
        singleton_problem = str(singleton)
    return {"store_id": bytes(sid), "created_at": created, "format_version": fmt, "key_version": kv,
            "mac": bytes(mac), "singleton_problem": singleton_problem}, None


def _check_header(report: Report, keys: dict[int, Key], expected: bytes | None, compromised: set[int],
                  attestations, header: dict | None, header_problem: str | None) -> bytes | None:
    if header is None:
        report.add("header-tampered", None, None, header_problem)
        return None
    sid, created, fmt, kv, mac = (header[c] for c in ("store_id", "created_at", "format_version", "key_version", "mac"))
    if header.get("singleton_problem") is not None:
        report.add("header-tampered", None, None,
                   f"the store header's singleton column is {header['singleton_problem']}, not the INTEGER 1: another "
                   "SQLite client switched its CHECK off and changed it (the rest of the header is checked as stored)")
    if expected is not None and expected != sid:
        report.add("store-identity-mismatch", None, None,
                   f"the file holds store {sid.hex()}, not the expected store {expected.hex()}: "
                   "it was replaced by another store's file")
    key = keys.get(kv)
    if key is None:
        report.add("unknown-key-version", None, None,
                   f"the store header is signed with key version {kv}, which the key ring lacks")
        return sid
    if fmt != FORMAT_VERSION:
        report.add("header-tampered", None, None,
                   f"the store header claims format version {fmt}; this AuditDB reads format {FORMAT_VERSION}")
        return sid
    want = header_mac(key.keyset, sid, created, fmt, kv)
    if len(mac) != MAC_LEN or not hmac.compare_digest(want, mac):
        report.add("header-tampered", None, None,
                   "the store header fails its MAC (store id, creation time or format changed)")
    elif kv in compromised and not _attested(keys, compromised, attestations, sid, 0, kv, mac):
        # The header is attested as seq 0 (section 10).
        report.add("compromised-key", None, None,
                   f"the store header is signed with key version {kv}, declared compromised, and not re-attested")
    return sid


DECLARATION_ACTION = b"auditdb.key.compromised"


def _load_attestations(conn) -> dict[int, list[tuple[int, int, bytes]]]:
    """The attestations that count, by attested seq (0 = the store header): section 10."""
    # Declarations: entries with the action auditdb.key.compromised that some attestation names.
    declarations = {seq for (seq,) in conn.execute(
        "SELECT seq FROM audit_entries WHERE action = ?"
        " AND seq IN (SELECT DISTINCT declaration_seq FROM audit_attestations)",
        (DECLARATION_ACTION.decode(),))}
    out: dict[int, list[tuple[int, int, bytes]]] = {}
    for seq, kv, decl, mac in conn.execute("SELECT seq, key_version, declaration_seq, mac FROM audit_attestations"):
        if not isinstance(seq, int) or not isinstance(kv, int) or not 0 <= kv <= 0xFFFFFFFF:
            continue  # not a valid u32 attesting key version: ignored
        if not isinstance(decl, int) or decl not in declarations or decl <= seq:
            continue  # no declaration entry after the attested row (or header): ignored
        mac = bytes(mac) if isinstance(mac, (bytes, bytearray, memoryview)) else b""
        out.setdefault(seq, []).append((kv, decl, mac))
    return out


_SELECT_ROWS = (
    "SELECT " + ", ".join(READ_COLUMNS) + ", " + ", ".join(f"typeof({c})" for c in READ_COLUMNS)
    + " FROM audit_entries NOT INDEXED WHERE seq >= 1 ORDER BY seq"
)
_INT_COLUMNS = ("recorded_at", "outcome", "severity", "origin", "format_version", "key_version")
_OPT_INT_COLUMNS = ("occurred_at", "origin_ref")


def _scan(conn, report: Report, keys, store_id: bytes, compromised: set[int], attestations, hi: int,
          has_tombstones: bool) -> dict[int, dict]:
    """Step 4 (with section 20's walk through tombstones). Returns the rows step 9 needs: seq ->
    columns of each row whose action is an expiry or hold action, whose origin is 0 and which
    passed step 4 with no finding."""
    state = {"expected": 1, "engine": {}}
    try:
        _scan_rows(conn, report, keys, store_id, compromised, attestations, state, has_tombstones)
    except sqlite3.DatabaseError as e:
        if not _is_corruption(e):
            raise
        first = state["expected"]
        report.add("corruption", first, max(first, hi), f"SQLite cannot read the rows from seq {first} on: {e}")
    return state["engine"]


_SELECT_ONE_ROW = _SELECT_ROWS.replace(" WHERE seq >= 1 ORDER BY seq", " WHERE seq = ?")


def _read_up_to_damage(conn, query: str, next_after, parameters: tuple = ()):
    """The rows of `query` (seq first, ascending), up to a damaged page. Python's sqlite3 cursor
    steps to the next row before it returns one, so a damaged page would lose the readable row
    before it as well: after the cursor fails, `next_after(last)` reads the one after the last
    returned, one statement each, until it gives None or cannot read; then the cursor's error is
    raised, and step 4's `corruption` finding starts at the seq expected next (section 11)."""
    last = parameters[0] if parameters else 0  # the read after damage starts where the query did
    try:
        for values in conn.cursor().execute(query, parameters):
            last = values[0]
            yield values
    except sqlite3.DatabaseError as error:
        if not _is_corruption(error) or not isinstance(last, int):
            raise
        while True:
            try:
                values = next_after(last)
            except sqlite3.DatabaseError:
                values = None
            if values is None:
                raise error
            last = values[0]
            yield values


def _rows_up_to_damage(conn):
    """The rows of _SELECT_ROWS up to a damaged page; read one by one after it over the seqs of
    expired rows, which have a tombstone instead, until a seq in neither table."""
    one = erasure.adapt(conn, _SELECT_ONE_ROW)
    tombstones = _table_exists(conn, "audit_expired")

    def next_row(last):
        seq = last + 1
        while True:
            values = conn.execute(one, (seq,)).fetchone()
            if values is not None or not tombstones or conn.execute(
                    "SELECT 1 FROM audit_expired WHERE seq = ?", (seq,)).fetchone() is None:
                return values
            seq += 1  # an expired row: its tombstone is walked in its place; read on after it
    return _read_up_to_damage(conn, erasure.adapt(conn, _SELECT_ROWS), next_row)


_TOMBSTONES_AFTER = retention.WALK_TOMBSTONES.replace("WHERE t.seq >= 1", "WHERE t.seq >= 1 AND t.seq > ?")
_NEXT_TOMBSTONE = _TOMBSTONES_AFTER + " LIMIT 1"


def _tombstones_up_to_damage(conn, after: int = 0):
    """The log's tombstones (retention.WALK_TOMBSTONES) with seq > `after`, up to a damaged page
    of audit_entries, which each one's NOT EXISTS reads: the cursor's look-ahead would meet damage
    behind a later tombstone before an earlier one that the rows still reach."""
    return _read_up_to_damage(conn, _TOMBSTONES_AFTER, lambda last: conn.execute(_NEXT_TOMBSTONE, (last,)).fetchone(),
                              (after,))


def _with_tombstones(rows, tombstones_after):
    """The rows (seq >= 1) and the tombstones of expired seqs (seq >= 1, no row) merged in seq
    order: (is_tombstone, values); `tombstones_after(s)` gives those with seq > s. When the
    tombstones can no longer be read (a damaged page of audit_entries behind the next one), the
    rows go on while they follow each other with no gap a tombstone could fill; the error is
    raised at the first gap, or after the last row. A row that comes back below the one before it
    (a damaged b-tree returns rows out of order) restarts the tombstones after it: step 4 walks
    each gap it meets through the tombstones of that gap (section 20.4), whatever came before."""
    failure = None
    tombstones = tombstones_after(0)

    def advance():
        nonlocal failure
        try:
            return next(tombstones, None)
        except sqlite3.DatabaseError as e:
            if not _is_corruption(e):
                raise
            failure = e
            return None

    tomb = advance()
    last = 0
    for values in rows:
        if values[0] <= last and failure is None:
            tombstones = tombstones_after(values[0])
            tomb = advance()
        while tomb is not None and tomb[0] < values[0]:
            yield True, tomb
            last = tomb[0]
            tomb = advance()
        if failure is not None and values[0] != last + 1:
            raise failure
        yield False, values
        last = values[0]
    while tomb is not None:
        yield True, tomb
        tomb = advance()
    if failure is not None:
        raise failure


def _scan_rows(conn, report: Report, keys, store_id: bytes, compromised: set[int], attestations, state: dict,
               has_tombstones: bool = False):
    prev_mac = ZERO32
    prev_known = True
    expected = 1
    n = len(READ_COLUMNS)
    def tombstones(after: int):
        return _tombstones_up_to_damage(conn, after) if has_tombstones else iter(())
    for is_tombstone, values in _with_tombstones(_rows_up_to_damage(conn), tombstones):
        seq = values[0]
        if seq > expected:
            report.add("missing-rows", expected, seq - 1, f"{seq - expected} row(s) missing before seq {seq} (removed)")
            prev_known = False
        expected = seq + 1
        state["expected"] = expected
        if is_tombstone:  # section 20.4: an expired row, walked by its tombstone's link tag only
            report.rows_expired += 1
            prev_mac, prev_known = _walk_tombstone(report, keys, store_id, values, prev_mac, prev_known)
            continue
        row = dict(zip(READ_COLUMNS, values[:n]))
        types = {c: _s(t) for c, t in zip(READ_COLUMNS, values[n:])}
        report.rows_checked += 1

        why = _malformed(row, types)
        if why is not None:
            report.add("malformed-row", seq, seq, why)
            prev_known = False  # the next row's link tag cannot be checked
            continue

        stored = bytes(row["mac"])
        kv = row["key_version"]
        key = keys.get(kv)
        verdict = "unknown-key"
        if key is not None:
            tag = row_tag(key.keyset, store_id, row)
            if not hmac.compare_digest(tag, stored[:TAG_LEN]):
                verdict = "mac-mismatch"
            elif prev_known and not hmac.compare_digest(
                    link_tag(key.keyset, store_id, seq, stored[:TAG_LEN], prev_mac), stored[TAG_LEN:]):
                verdict = "chain-break"
            else:
                verdict = "ok"

        if verdict == "unknown-key":
            report.add("unknown-key-version", seq, seq,
                       f"signed with key version {kv}, which the key ring lacks; load the key file that holds it")
        elif verdict == "mac-mismatch":
            report.add("mac-mismatch", seq, seq,
                       "the stored values do not match the row's MAC (changed, or copied from another store)")
        elif verdict == "chain-break":
            report.add("chain-break", seq, seq,
                       f"the row is intact but does not follow seq {seq - 1} (rows removed, inserted or reordered, "
                       "or taken from another copy of this store)")
        elif kv in compromised and not _attested(keys, compromised, attestations, store_id, seq, kv, stored):
            report.add("compromised-key", seq, seq,
                       f"signed with key version {kv}, declared compromised, and not re-attested: "
                       "it may be forged with the stolen key")
        elif (row["action"] in retention.STEP9_ACTIONS or row["action"] == erasure.ACTION) and row["origin"] == 0:
            state["engine"][seq] = row  # verified, with no finding: an expiry, hold or erasure entry for steps 9-10
        # The next row links to this row's stored MAC. After a row that failed (or could not be
        # checked) that MAC proves nothing, so the next row's link tag is not checked: that
        # would only repeat this finding. Its row tag still is.
        prev_mac, prev_known = stored, verdict == "ok"


def _walk_tombstone(report: Report, keys, store_id: bytes, values, prev_mac: bytes, prev_known: bool):
    """Section 20.4, step 4: the tombstone (seq, key_version, its type, mac, its type) of an
    expired seq, as if it were the row: its link tag over its own row tag and the previous MAC.
    Returns the new (prev_mac, prev_known)."""
    seq, kv, t_kv, mac, t_mac = values
    if _s(t_mac) != "blob" or len(mac) != MAC_LEN:
        report.add("malformed-row", seq, seq, "the tombstone of this expired row has a mac that is not 32 bytes")
        return prev_mac, False
    if _s(t_kv) != "integer" or not 0 <= kv <= 0xFFFFFFFF:
        report.add("malformed-row", seq, seq, "the tombstone of this expired row has an invalid key version")
        return prev_mac, False
    mac = bytes(mac)
    key = keys.get(kv)
    if key is None:
        report.add("unknown-key-version", seq, seq,
                   f"the tombstone of this expired row names key version {kv}, which the key ring lacks; load the "
                   "key file that holds it")
        return mac, False
    if prev_known and not hmac.compare_digest(link_tag(key.keyset, store_id, seq, mac[:TAG_LEN], prev_mac),
                                              mac[TAG_LEN:]):
        report.add("chain-break", seq, seq,
                   f"the tombstone of this expired row does not follow seq {seq - 1} (its mac was changed, or rows "
                   "were removed, inserted or reordered)")
        return mac, False
    return mac, True


def _malformed(row: dict, types: dict) -> str | None:
    for c in _INT_COLUMNS:
        if types[c] != "integer":
            return f"column {c} is not an integer"
    for c in _OPT_INT_COLUMNS:
        if types[c] not in ("integer", "null"):
            return f"column {c} is not an integer or NULL"
    for c in TEXT_COLUMNS:
        if types[c] not in ("text", "null"):
            return f"column {c} is not text or NULL"
    if types["action"] == "null":
        return "action is NULL"
    if types["mac"] != "blob" or len(row["mac"]) != MAC_LEN:
        return "the MAC is missing or not 32 bytes"
    if not (0 <= row["outcome"] <= 3 and 0 <= row["severity"] <= 3 and 0 <= row["origin"] <= 1):
        return "outcome, severity or origin holds an undefined code"
    if row["format_version"] not in (FORMAT_VERSION, erasure.FORMAT_SEALED):
        return f"unknown format version {row['format_version']}"
    if not 0 <= row["key_version"] <= 0xFFFFFFFF:
        return f"invalid key version {row['key_version']}"
    return erasure.seals_problem(row, types)  # section 21.2


def _attested(keys, compromised, attestations, store_id, seq, kv, stored) -> bool:
    for att_kv, decl, mac in attestations.get(seq, []):
        att_key = keys.get(att_kv)
        if att_kv in compromised or att_key is None or len(mac) != MAC_LEN:
            continue
        if hmac.compare_digest(attestation_mac(att_key.keyset, store_id, seq, kv, stored, decl), mac):
            return True
    return False


# --------------------------------------------------------------------------------------------
# FORMAT.md section 11, step 0: the key proof
# --------------------------------------------------------------------------------------------

_ROW_SELECT_LIST = ", ".join(READ_COLUMNS) + ", " + ", ".join(f"typeof({c})" for c in READ_COLUMNS)
# The two places a version's rows are found without an index: from the first seq the cache names
# (?1 = F), and among the newest rows of the log (?1 = L). ?2 = the key version. The limit counts
# every row the query returns, including rows skipped below (malformed, or already taken).
_EVIDENCE_FROM_FIRST = (
    f"SELECT {_ROW_SELECT_LIST} FROM audit_entries NOT INDEXED WHERE seq >= ?1 AND seq < ?1 + {KEY_PROOF_WINDOW}"
    f" AND key_version = ?2 ORDER BY seq LIMIT {KEY_PROOF_ROWS}")
_EVIDENCE_FROM_LAST = (
    f"SELECT {_ROW_SELECT_LIST} FROM audit_entries NOT INDEXED WHERE seq > ?1 - {KEY_PROOF_WINDOW} AND seq <= ?1"
    f" AND seq >= 1 AND key_version = ?2 ORDER BY seq DESC LIMIT {KEY_PROOF_ROWS}")


def _cached_first_seqs(conn) -> dict[int, int]:
    """audit_key_versions as stored (untrusted): version -> first_seq, where both are INTEGERs."""
    if not _table_exists(conn, "audit_key_versions"):
        return {}
    return {v: f for v, f in conn.execute(
        "SELECT key_version, first_seq FROM audit_key_versions"
        " WHERE typeof(key_version) = 'integer' AND typeof(first_seq) = 'integer'")}


def key_proof(conn, keys: dict[int, Key], header: dict) -> dict[int, tuple[str, list[int]]]:
    """Step 0: for each version of the ring, ("proven" | "unproven" | "wrong", the seqs checked
    without success, 0 standing for the header). `header` is the well-formed header (step 2.1)."""
    store_id = header["store_id"]
    cache = _cached_first_seqs(conn)
    has_entries = _table_exists(conn, "audit_entries")
    last = conn.execute("SELECT max(seq) FROM audit_entries NOT INDEXED").fetchone()[0] if has_entries else None
    n = len(READ_COLUMNS)
    out: dict[int, tuple[str, list[int]]] = {}
    for v in sorted(keys):
        ks = keys[v].keyset
        checked: list[int] = []
        proven = False
        if header["key_version"] == v and header["format_version"] == FORMAT_VERSION:
            want = header_mac(ks, store_id, header["created_at"], FORMAT_VERSION, v)
            if len(header["mac"]) == MAC_LEN and hmac.compare_digest(want, header["mac"]):
                proven = True
            else:
                checked.append(0)
        places = []
        if has_entries and not proven:
            first = cache.get(v)
            if first is not None and first >= 1:
                places.append((_EVIDENCE_FROM_FIRST, first))
            if last is not None and last >= 1:
                places.append((_EVIDENCE_FROM_LAST, last))
        for sql, argument in places:
            for values in conn.execute(erasure.adapt(conn, sql), (argument, v)).fetchall():
                row = dict(zip(READ_COLUMNS, values[:n]))
                types = {c: _s(t) for c, t in zip(READ_COLUMNS, values[n:])}
                if _malformed(row, types) is not None or row["seq"] in checked:
                    continue  # a malformed row is no evidence either way; a row is taken once
                if hmac.compare_digest(row_tag(ks, store_id, row), bytes(row["mac"])[:TAG_LEN]):
                    proven = True
                    break
                checked.append(row["seq"])
            if proven:
                break
        out[v] = ("proven", []) if proven else ("wrong", checked) if checked else ("unproven", [])
    return out


_EVIDENCE_ALL = (
    f"SELECT {_ROW_SELECT_LIST} FROM audit_entries NOT INDEXED WHERE seq >= 1 AND key_version = ?1 ORDER BY seq")


def _any_row_verifies(conn, key: "Key", store_id: bytes) -> bool:
    """Verification's last look before it calls a key wrong (step 0): any well-formed row signed
    by the version whose row tag verifies, over every row of the log."""
    n = len(READ_COLUMNS)
    for values in conn.execute(erasure.adapt(conn, _EVIDENCE_ALL), (key.version,)):
        row = dict(zip(READ_COLUMNS, values[:n]))
        types = {c: _s(t) for c, t in zip(READ_COLUMNS, values[n:])}
        if _malformed(row, types) is None and hmac.compare_digest(row_tag(key.keyset, store_id, row), bytes(row["mac"])[:TAG_LEN]):
            return True
    return False


def _prove_keys(conn, keys: dict[int, Key], header: dict, path: str) -> None:
    """Raises WrongKeyError naming every wrong version, ascending: judged wrong by the quick
    evidence and by every row of the log (step 0)."""
    verdicts = key_proof(conn, keys, header)
    wrong = [v for v in sorted(verdicts) if verdicts[v][0] == "wrong"
             and not (_table_exists(conn, "audit_entries") and _any_row_verifies(conn, keys[v], header["store_id"]))]
    if wrong:
        raise WrongKeyError(wrong, verdicts[wrong[0]][1], path)


# --------------------------------------------------------------------------------------------
# FORMAT.md section 11, step 6: side tables
# --------------------------------------------------------------------------------------------


def _show(value, typ) -> str:
    """A stored value as it appears in a message."""
    t = _s(typ)
    if t == "null":
        return "NULL"
    if t == "text":
        return sj.json_quoted(_s(value))
    if t == "blob":
        b = bytes(value)
        return f"x'{b[:16].hex()}{'...' if len(b) > 16 else ''}'"
    return str(value)


def _add_foreign(report: Report, messages: list[str], more: str) -> None:
    for m in messages[:FOREIGN_NAMED_LIMIT]:
        report.add("foreign-row", None, None, m)
    if len(messages) > FOREIGN_NAMED_LIMIT:
        report.add("foreign-row", None, None, f"{len(messages) - FOREIGN_NAMED_LIMIT} more {more}")


def _log_row_has_key_version(seq: str, key_version: str, expired: bool) -> str:
    """SQL: the log row at `seq` has `key_version` (compared with IS). Where rows expired (section
    20), the log row at an expired seq (>= 1, no row in audit_entries) is its tombstone."""
    row = f"EXISTS (SELECT 1 FROM audit_entries x WHERE x.seq = {seq} AND x.key_version IS {key_version})"
    if not expired:
        return row
    return (f"({row} OR (NOT EXISTS (SELECT 1 FROM audit_entries x WHERE x.seq = {seq}) AND EXISTS ("
            f"SELECT 1 FROM audit_expired y WHERE y.seq = {seq} AND y.seq >= 1 AND y.key_version IS {key_version}"
            " AND y.seq <= (SELECT coalesce(max(seq), 0) FROM audit_entries NOT INDEXED))))")


def _foreign_key_versions(conn, report: Report) -> None:
    """Step 6.1: every audit_key_versions row the log does not confirm. The rows of expired seqs
    are their tombstones (section 20): a version whose first rows expired stays confirmed."""
    if not (_table_exists(conn, "audit_key_versions") and _table_exists(conn, "audit_entries")):
        return
    expired = _table_exists(conn, "audit_expired")
    messages = []
    for v, t_v, s, t_s, confirmed in conn.execute(f"""
            SELECT c.key_version, typeof(c.key_version), c.first_seq, typeof(c.first_seq),
                   typeof(c.key_version) = 'integer' AND typeof(c.first_seq) = 'integer'
                   AND c.key_version BETWEEN 1 AND 4294967295 AND c.first_seq >= 1
                   AND {_log_row_has_key_version("c.first_seq", "c.key_version", expired)}
                   AND (c.first_seq = 1 OR NOT {_log_row_has_key_version("c.first_seq - 1", "c.key_version", expired)})
            FROM audit_key_versions c ORDER BY c.key_version"""):
        if not confirmed:
            messages.append(
                f"audit_key_versions row (key_version {_show(v, t_v)}, first_seq {_show(s, t_s)}) is not confirmed "
                "by the log: the row at that seq is not the first one signed with that version. AuditDB ignores "
                "it; it was inserted by another SQLite client")
    _add_foreign(report, messages, "unconfirmed audit_key_versions row(s)")


def _foreign_attestations(conn, report: Report, keys: dict[int, Key], header: dict | None) -> None:
    """Step 6.2: every audit_attestations row that is not an attestation AuditDB wrote. Only with
    a well-formed header (step 2.1): without a store id no attestation can be judged."""
    if header is None:
        return
    if not (_table_exists(conn, "audit_attestations") and _table_exists(conn, "audit_entries")):
        return
    store_id = header["store_id"]
    # The attested row of an expired seq is its tombstone (section 20): its key_version and mac.
    expired = _table_exists(conn, "audit_expired")
    target = ("CASE WHEN e.seq IS NOT NULL THEN e.{0} ELSE t.{0} END" if expired else "e.{0}").format
    messages = []
    for (seq, t_seq, kv, t_kv, decl, t_decl, mac, t_mac, counts,
         e_kv, t_e_kv, e_mac, t_e_mac) in conn.execute(f"""
            SELECT a.seq, typeof(a.seq), a.key_version, typeof(a.key_version),
                   a.declaration_seq, typeof(a.declaration_seq), a.mac, typeof(a.mac),
                   typeof(a.seq) = 'integer' AND typeof(a.declaration_seq) = 'integer'
                   AND a.declaration_seq > a.seq AND EXISTS (SELECT 1 FROM audit_entries d
                       WHERE d.seq = a.declaration_seq AND d.action = 'auditdb.key.compromised'),
                   {target("key_version")}, typeof({target("key_version")}), {target("mac")}, typeof({target("mac")})
            FROM audit_attestations a LEFT JOIN audit_entries e ON e.seq = a.seq AND a.seq >= 1
            {"LEFT JOIN audit_expired t ON t.seq = a.seq AND a.seq >= 1 AND e.seq IS NULL" if expired else ""}
            ORDER BY a.seq, a.key_version"""):
        why = None
        if (_s(t_seq) != "integer" or _s(t_kv) != "integer" or _s(t_decl) != "integer"
                or not 0 <= kv <= 0xFFFFFFFF or _s(t_mac) != "blob" or len(mac) != MAC_LEN):
            why = "its columns have impossible types or values"
        elif not counts:
            why = ("it does not count (section 10): its declaration_seq does not name an auditdb.key.compromised "
                   "entry after the row it attests")
        else:
            target = None  # (the attested row's key_version, its mac)
            if seq == 0:
                if len(header["mac"]) == MAC_LEN:
                    target = (header["key_version"], header["mac"])
                else:
                    why = f"it attests the store header, whose mac is {len(header['mac'])} bytes, not 32"
            elif (seq >= 1 and _s(t_e_kv) == "integer" and 0 <= e_kv <= 0xFFFFFFFF and _s(t_e_mac) == "blob"
                  and len(e_mac) == MAC_LEN):
                target = (e_kv, bytes(e_mac))
            else:
                why = f"it attests seq {seq}, which is not in the log"
            key = keys.get(kv)
            if target is not None and key is not None:
                want = attestation_mac(key.keyset, store_id, seq, target[0], target[1], decl)
                if not hmac.compare_digest(want, bytes(mac)):
                    why = "its MAC does not verify over the row it attests (forged, or that row was changed)"
        if why is not None:
            messages.append(
                f"audit_attestations row (seq {_show(seq, t_seq)}, key_version {_show(kv, t_kv)}) is not an "
                f"attestation AuditDB wrote: {why}. It attests nothing; another SQLite client inserted it")
    _add_foreign(report, messages, "foreign audit_attestations row(s)")


# --------------------------------------------------------------------------------------------
# FORMAT.md section 11, step 7: query indexes
# --------------------------------------------------------------------------------------------

# The indexes queries read through, in the order of step 7's table: (name, the entry's columns
# as the covering scan selects them, the scan's WHERE clause).
QUERY_INDEXES = (
    ("audit_entries_actor", ("seq >> 14", "actor", "seq >> 0", "outcome", "severity", "action", "seq"),
     "actor IS NOT NULL"),
    ("audit_entries_resource", ("seq >> 14", "resource_id", "seq >> 0", "outcome", "severity", "action", "seq"),
     "resource_id IS NOT NULL"),
    ("audit_entries_tenant_time", ("tenant", "recorded_at", "seq"), "tenant IS NOT NULL"),
    ("audit_entries_recorded_at", ("recorded_at", "seq"), None),
    ("audit_entries_engine", ("action", "seq"), "action >= 'auditdb.' AND action < 'auditdb/'"),
    ("audit_entries_origin_ref", ("origin_ref", "seq"), "origin_ref IS NOT NULL"),
    ("audit_entries_tenant_seq", ("tenant", "seq >> 0", "outcome", "severity", "action", "seq"), "tenant IS NOT NULL"),
)
_ENGINE_LOW, _ENGINE_HIGH = b"auditdb.", b"auditdb/"

# The table side: every row of audit_entries (any seq), read from the table itself (NOT INDEXED:
# a full scan of the table b-tree, never an index). Each value with its storage class.
_TABLE_ENTRY_COLUMNS = ("seq >> 14", "seq", "actor", "resource_id", "tenant", "recorded_at", "action", "origin_ref",
                        "outcome", "severity")
_TABLE_ENTRY_SQL = (
    "SELECT " + ", ".join(f"{c}, typeof({c})" for c in _TABLE_ENTRY_COLUMNS) + " FROM audit_entries NOT INDEXED")

_KNOWN_INDEXES = None  # name -> (tbl_name, sql) of the query indexes as Appendix A defines them


def _appendix_a_indexes() -> dict[str, tuple[str, str | None]]:
    """The sqlite_schema rows of the query indexes as Appendix A's migrations create them."""
    global _KNOWN_INDEXES
    if _KNOWN_INDEXES is None:
        objects = expected_schema_objects(ALL_MIGRATIONS_SQL)
        _KNOWN_INDEXES = {name: objects[f"index {name}"] for name, _, _ in QUERY_INDEXES
                          if f"index {name}" in objects}
    return _KNOWN_INDEXES


def _index_is_appendix_a(conn, name: str) -> bool:
    """Whether the store's sqlite_schema row (type, name, tbl_name, sql) of `name` is exactly
    Appendix A's (a missing or different one is a schema-tampered finding of step 1)."""
    want = _appendix_a_indexes().get(name)
    rows = conn.execute("SELECT type, tbl_name, sql FROM sqlite_schema WHERE name = ?", (name,)).fetchall()
    if want is None or len(rows) != 1:
        return False
    typ, table, sql = rows[0]
    return _s(typ) == "index" and _s(table) == want[0] and sql is not None and _s(sql) == want[1]


def _typed(value, typ) -> tuple:
    """A value as stored, tagged with its storage class (so that TEXT 'a' is not BLOB x'61' and
    INTEGER 1 is not REAL 1.0); REAL by its IEEE 754 bits."""
    t = _s(typ)
    if t == "integer":
        return ("integer", value)
    if t == "real":
        return ("real", struct.pack(">d", value))
    if t in ("text", "blob"):
        return (t, bytes(value))
    return ("null",)


def _table_entries(conn) -> list:
    """One Counter per query index (in QUERY_INDEXES order): the entries the rows of
    audit_entries imply, by step 7's table (conditions and entries computed here, not by SQL)."""
    out = [collections.Counter() for _ in QUERY_INDEXES]
    for values in conn.execute(_TABLE_ENTRY_SQL):
        v = {c: _typed(values[2 * i], values[2 * i + 1]) for i, c in enumerate(_TABLE_ENTRY_COLUMNS)}
        bucket, seq = v["seq >> 14"], v["seq"]
        filters = (v["outcome"], v["severity"], v["action"])
        if v["actor"][0] != "null":
            out[0][(bucket, v["actor"], seq) + filters + (seq,)] += 1  # seq >> 0 is seq
        if v["resource_id"][0] != "null":
            out[1][(bucket, v["resource_id"], seq) + filters + (seq,)] += 1
        if v["tenant"][0] != "null":
            out[2][(v["tenant"], v["recorded_at"], seq)] += 1
            out[6][(v["tenant"], seq, v["outcome"], v["severity"], v["action"], seq)] += 1  # seq >> 0 is seq
        out[3][(v["recorded_at"], seq)] += 1
        action = v["action"]
        if action[0] == "text" and _ENGINE_LOW <= action[1] < _ENGINE_HIGH:  # bytewise
            out[4][(action, seq)] += 1
        if v["origin_ref"][0] != "null":
            out[5][(v["origin_ref"], seq)] += 1
    return out


def _index_scan_sql(name: str, columns: tuple[str, ...], where: str | None) -> str:
    """The covering scan that reads the entries from the index alone (keys and rowids)."""
    select = ", ".join(f"{c}, typeof({c})" for c in columns)
    return f"SELECT {select} FROM audit_entries INDEXED BY {name}" + (f" WHERE {where}" if where else "")


_CLASS_RANK = {"null": 0, "integer": 1, "real": 1, "text": 2, "blob": 3}


def _compare_values(a: tuple, b: tuple) -> int:
    """SQLite's order of two stored values (BINARY collation): NULL < INTEGER and REAL, by numeric
    value < TEXT < BLOB, each by its bytes with a prefix first."""
    ra, rb = _CLASS_RANK[a[0]], _CLASS_RANK[b[0]]
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 0:
        return 0
    if ra == 1:
        x = a[1] if a[0] == "integer" else struct.unpack(">d", a[1])[0]
        y = b[1] if b[0] == "integer" else struct.unpack(">d", b[1])[0]
        return (x > y) - (x < y)  # Python compares an int with a float exactly, as SQLite does
    return (a[1] > b[1]) - (a[1] < b[1])


def _compare_entries(a: tuple, b: tuple) -> int:
    for x, y in zip(a, b):
        c = _compare_values(x, y)
        if c:
            return c
    return 0


class NoDbstat(StoreOpenError):
    """This Python's SQLite has no dbstat virtual table, which step 7 needs."""


def _cell_count(conn, name: str) -> int:
    """The entries of index `name`'s b-tree: the cells of all its pages, as the read
    transaction sees them (the -wal's pages included)."""
    try:
        return conn.execute("SELECT coalesce(sum(ncell), 0) FROM dbstat WHERE name = ?", (name,)).fetchone()[0]
    except sqlite3.OperationalError as e:
        if "no such table: dbstat" in str(e):
            raise NoDbstat(f"this Python's SQLite library ({sqlite3.sqlite_version}) has no dbstat virtual table "
                           "(SQLITE_ENABLE_DBSTAT_VTAB), which step 7 needs to count the entries of index "
                           f"{name} (section 11): run this verifier with a Python whose SQLite has it (the system "
                           "Python of Debian and Ubuntu does)") from e
        raise


def _check_indexes(conn, report: Report) -> None:
    """Step 7 (full pass, with a store id): each index whose definition is Appendix A's must
    hold exactly the entries its rows imply, in key order; one `index-mismatch` finding per index
    that does not."""
    if not _table_exists(conn, "audit_entries"):
        return
    provable = [i for i, (name, _, _) in enumerate(QUERY_INDEXES) if _index_is_appendix_a(conn, name)]
    if not provable:
        return
    try:
        table = _table_entries(conn)
    except sqlite3.DatabaseError as e:
        if not _is_corruption(e):
            raise
        if not any(f.kind == "corruption" for f in report.findings):  # step 4 reported it already
            report.add("corruption", None, None, f"SQLite cannot read the rows of audit_entries: {e}")
        return
    for i in provable:
        name, columns, where = QUERY_INDEXES[i]
        expected = table[i]
        want = sum(expected.values())
        found = 0
        previous = None
        disorder = None  # the rowid of the first entry that does not sort after the one before it
        try:
            for values in conn.execute(_index_scan_sql(name, columns, where)):
                entry = tuple(_typed(values[2 * k], values[2 * k + 1]) for k in range(len(columns)))
                if previous is not None and disorder is None and _compare_entries(previous, entry) >= 0:
                    disorder = values[-2]
                previous = entry
                expected[entry] -= 1
                found += 1
            # The scan repeats the index's condition, which SQLite turns into a seek when it is on
            # the first key column: entries outside it (an index rebuilt under a wider condition,
            # then given its text back) are never read. Every cell of an index b-tree's pages,
            # interior and leaf, is one entry: count them all.
            outside = _cell_count(conn, name) - found
        except sqlite3.DatabaseError as e:
            if not _is_corruption(e):
                raise
            report.add("corruption", None, None, f"SQLite cannot read index {name}: {e}")
            return
        if disorder is not None:
            report.add("index-mismatch", None, None,
                       f"index {name} is not in key order (its entry for rowid {disorder} does not sort after the "
                       "entry before it): the b-tree was rebuilt in another order, so seeks through it miss rows "
                       "that are there. The rows themselves are checked separately; rebuild the index with "
                       "`auditdb repair-indexes` once you have kept a copy of the file as evidence")
        elif any(expected.values()):  # an entry missing (> 0), extra or altered (< 0)
            counts = (f"{found} entries, as many as the rows imply, but some are altered" if found == want
                      else f"{found} entries where the rows imply {want}")
            report.add("index-mismatch", None, None,
                       f"index {name} does not hold exactly the entries of the log's rows ({counts}): queries "
                       "through it could miss rows or return wrong ones. The rows themselves are checked "
                       "separately; rebuild the index with `auditdb repair-indexes` once you have kept a copy "
                       "of the file as evidence")
        elif outside > 0:
            report.add("index-mismatch", None, None,
                       f"index {name} holds {outside} entr{'y' if outside == 1 else 'ies'} that its own condition "
                       f"(WHERE {where}) excludes, which no row implies: the index was rebuilt under another "
                       "definition, then given its text back. Queries do not reach them, but the file was written "
                       "by another SQLite client. Rebuild the index with `auditdb repair-indexes` once you have "
                       "kept a copy of the file as evidence")


# --------------------------------------------------------------------------------------------
# FORMAT.md section 11, step 8: the store's own checkpoints (sections 16.1, 16.3, 16.4)
# --------------------------------------------------------------------------------------------

_EXPORT_MODULE = "auditdb_verify_export"


def _export_verifier():
    """auditdb_verify_export.py (next to this file): Ed25519 (RFC 8032 reference code), CKPT_MSG
    (section 16.1) and the public checkpoint key file (16.4), loaded on first use."""
    module = sys.modules.get(_EXPORT_MODULE)
    if module is None:
        path = pathlib.Path(__file__).resolve().parent / "auditdb_verify_export.py"
        spec = importlib.util.spec_from_file_location(_EXPORT_MODULE, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_EXPORT_MODULE] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[_EXPORT_MODULE]
            raise
    return module


class PublicKeyFileError(Exception):
    """A public checkpoint key file that cannot be used (exit status 2)."""


def parse_public_key_text(text: bytes | str, origin: str) -> dict[int, bytes]:
    """Section 16.4's public key file: `auditdb-checkpoint-pubkey v1`, then `key VERSION HEX`
    lines; version -> 32-byte Ed25519 public key. Parsed by auditdb_verify_export.py, exactly as
    16.4 says (versions in 1..2^32-1 and unique, as the reference requires)."""
    try:
        return _export_verifier().parse_public_keys(text, origin)
    except ValueError as e:  # includes a bad version number or bad hex
        raise PublicKeyFileError(str(e))


def load_public_key_file(path: str) -> dict[int, bytes]:
    """Reads a public checkpoint key file (any mode: it holds nothing secret): a regular file (a
    FIFO or device is refused at once, never waited on) of at most 1 MiB, by
    auditdb_verify_export.read_public_key_file."""
    try:
        return _export_verifier().read_public_key_file(path)
    except ValueError as e:
        raise PublicKeyFileError(str(e))


def _checkpoint_time(us) -> str:
    try:
        return _export_verifier()._iso(us)
    except (OverflowError, ValueError, OSError, TypeError):
        return f"{us} µs since the epoch"


_CHECKPOINT_COLUMNS = ("seq", "created_at", "key_version", "public_key", "chain_head", "merkle_root", "signature")
# The rows that disagree with the log (L = ?1): beyond its end, at a seq with no log row (rows
# below seq 1 are not the log's: step 3), or whose chain head is not that row's mac. Newest first;
# one more than the limit, to know whether there are more.
_DISAGREEING_CHECKPOINTS = (
    "SELECT " + ", ".join(f"c.{c}, typeof(c.{c})" for c in _CHECKPOINT_COLUMNS) + ", e.seq IS NOT NULL"
    " FROM audit_checkpoints c LEFT JOIN audit_entries e ON e.seq = c.seq AND e.seq >= 1"
    " WHERE c.seq > ?1 OR e.seq IS NULL OR e.mac IS NOT c.chain_head"
    " ORDER BY c.seq DESC LIMIT ?2")
# The same where rows expired (section 20.4): the log row at an expired seq is its tombstone, whose
# mac is compared with the chain head.
_DISAGREEING_CHECKPOINTS_EXPIRED = (
    "SELECT " + ", ".join(f"c.{c}, typeof(c.{c})" for c in _CHECKPOINT_COLUMNS)
    + ", e.seq IS NOT NULL OR t.seq IS NOT NULL"
    " FROM audit_checkpoints c LEFT JOIN audit_entries e ON e.seq = c.seq AND e.seq >= 1"
    " LEFT JOIN audit_expired t ON t.seq = c.seq AND t.seq >= 1 AND e.seq IS NULL"
    " WHERE c.seq > ?1 OR (e.seq IS NULL AND t.seq IS NULL)"
    " OR (CASE WHEN e.seq IS NOT NULL THEN e.mac ELSE t.mac END) IS NOT c.chain_head"
    " ORDER BY c.seq DESC LIMIT ?2")
_CHECKPOINT_BLOB_LENGTHS = {"public_key": 32, "chain_head": 32, "merkle_root": 32, "signature": 64}


def checkpoint_row_invalidity(store_id: bytes, row: dict, types: dict, trusted: dict[int, bytes] | None) -> str | None:
    """Why an audit_checkpoints row is not a valid checkpoint of the store (section 16.1), or None:
    under the public key file `trusted` (its version present, the same public key), else under the
    public key the row names itself. The signature is checked over CKPT_MSG built from the row."""
    ax = _export_verifier()
    if types["seq"] != "integer" or types["created_at"] != "integer" or types["key_version"] != "integer":
        return "its seq, created_at or key_version is not an integer"
    kv = row["key_version"]
    if not 1 <= kv <= 0xFFFFFFFF:
        return f"its checkpoint key version {kv} is not in 1...4294967295"
    for c, size in _CHECKPOINT_BLOB_LENGTHS.items():
        if types[c] != "blob" or len(row[c]) != size:
            return "a field has the wrong length"
    cp = {"format": "auditdb-checkpoint v1", "storeId": store_id.hex(), "seq": row["seq"],
          "chainHead": bytes(row["chain_head"]).hex(), "merkleRoot": bytes(row["merkle_root"]).hex(),
          "time": row["created_at"], "keyVersion": kv, "publicKey": bytes(row["public_key"]).hex(),
          "signature": bytes(row["signature"]).hex()}
    # Key version present and equal public key (under the file), seq >= 1, the signature over CKPT_MSG.
    return ax.checkpoint_invalidity(cp, trusted if trusted is not None else {kv: bytes(row["public_key"])})


def _stored_checkpoints(conn, report: Report, store_id: bytes, trusted: dict[int, bytes] | None) -> None:
    """Step 8: the audit_checkpoints rows that disagree with the log, newest first, at most
    CHECKPOINT_EXAMINED_LIMIT. An invalid row is foreign-row; a valid one beyond the end of the
    log is truncated (the highest only); a valid one whose row has another mac is anchor-mismatch;
    a valid one at a missing seq <= L gives nothing here (step 4 reported missing-rows)."""
    if not (_table_exists(conn, "audit_checkpoints") and _table_exists(conn, "audit_entries")):
        return
    expired = _table_exists(conn, "audit_expired")
    last = log_end(conn, expired) or 0
    query = _DISAGREEING_CHECKPOINTS_EXPIRED if expired else _DISAGREEING_CHECKPOINTS
    rows = conn.execute(query, (last, CHECKPOINT_EXAMINED_LIMIT + 1)).fetchall()
    caveat = ("" if trusted is not None else
              " (its signature was checked only against the public key it names; verify with --public-key to "
              "rule out a forged checkpoint row)")
    truncation_reported = False
    n = len(_CHECKPOINT_COLUMNS)
    for values in rows[:CHECKPOINT_EXAMINED_LIMIT]:
        row = {c: values[2 * i] for i, c in enumerate(_CHECKPOINT_COLUMNS)}
        types = {c: _s(values[2 * i + 1]) for i, c in enumerate(_CHECKPOINT_COLUMNS)}
        present = bool(values[2 * n])
        seq = row["seq"]
        why = checkpoint_row_invalidity(store_id, row, types, trusted)
        if why is not None:
            report.add("foreign-row", None, None,
                       f"audit_checkpoints row at seq {_show(seq, types['seq'])} is not a checkpoint of this store: "
                       f"{why}. AuditDB ignores it; another SQLite client inserted it")
            continue
        named = (f"the store's own checkpoint at seq {seq} (made {_checkpoint_time(row['created_at'])}, "
                 f"checkpoint key version {row['key_version']})")
        if seq > last:
            if truncation_reported:
                continue  # the highest valid one says it all
            truncation_reported = True
            report.add("truncated", last + 1, seq,
                       f"the log ends at seq {last} but {named} covers {seq} rows: rows {last + 1}...{seq} were cut "
                       f"from the tail after it was made{caveat}")
        elif present:
            report.add("anchor-mismatch", seq, seq,
                       f"row {seq} does not have the chain head signed by {named}: the log up to it was rewritten "
                       f"or forked{caveat}")
        # else: a valid checkpoint at a seq whose row is missing: step 4 reports missing-rows there.
    if len(rows) > CHECKPOINT_EXAMINED_LIMIT:
        report.add("foreign-row", None, None,
                   f"more than {CHECKPOINT_EXAMINED_LIMIT} audit_checkpoints rows disagree with the log; only the "
                   f"newest {CHECKPOINT_EXAMINED_LIMIT} were examined")
    _agreeing_checkpoints(conn, report, store_id, last, {values[0] for values in rows},
                          len(rows) > CHECKPOINT_EXAMINED_LIMIT, expired)


def _agreeing_checkpoints(conn, report: Report, store_id: bytes, last: int, disagreeing: set, unexamined: bool,
                          expired: bool) -> None:
    """Step 8, full passes: every audit_checkpoints row that agrees with the log (seq 1...L, not
    among the disagreeing rows), newest first, must be a checkpoint under the public key it names,
    with a frontier of 32 x popcount(seq) bytes that folds to its root; else foreign-row. With more
    disagreeing rows than were examined, only rows whose chain head a lookup confirms are judged."""
    ax = _export_verifier()
    columns = _CHECKPOINT_COLUMNS + ("frontier",)
    query = ("SELECT " + ", ".join(f"{c}, typeof({c})" for c in columns)
             + " FROM audit_checkpoints WHERE seq >= 1 AND seq <= ? ORDER BY seq DESC")
    for values in conn.execute(query, (last,)).fetchall():
        row = {c: values[2 * i] for i, c in enumerate(columns)}
        types = {c: _s(values[2 * i + 1]) for i, c in enumerate(columns)}
        seq = row["seq"]
        if seq in disagreeing:
            continue
        if unexamined:
            mac = conn.execute("SELECT mac FROM audit_entries WHERE seq = ?", (seq,)).fetchone()
            if mac is None and expired:
                mac = conn.execute("SELECT mac FROM audit_expired WHERE seq = ?", (seq,)).fetchone()
            if mac is None or mac[0] != row["chain_head"]:
                continue
        why = checkpoint_row_invalidity(store_id, row, types, None)
        if why is None:
            frontier = bytes(row["frontier"]) if types["frontier"] == "blob" else b""
            hashes = [frontier[i:i + 32] for i in range(0, len(frontier), 32)]
            root = None
            if hashes and len(frontier) == 32 * bin(seq).count("1"):
                root = hashes[-1]
                for left in reversed(hashes[:-1]):
                    root = ax.node_hash(left, root)
            if root != bytes(row["merkle_root"]):
                why = "its frontier is not 32 × popcount(seq) bytes that fold to its Merkle root"
        if why is not None:
            report.add("foreign-row", None, None,
                       f"audit_checkpoints row at seq {seq} has the chain head of the log but is not a checkpoint of this "
                       f"store: {why}. AuditDB ignores it (a checkpoint or export skips it); another SQLite client changed "
                       "or inserted it")


# --------------------------------------------------------------------------------------------
# Test vectors (docs/test-vectors/README.md describes the JSON)
# --------------------------------------------------------------------------------------------

# PUBLIC TEST-ONLY KEYS. They are printed in this file and in docs/test-vectors/vectors.json:
# anyone can forge rows with them. NEVER use them for a real store.
TEST_MASTER_KEY_1 = bytes(range(0x00, 0x20))  # 000102...1f
TEST_MASTER_KEY_2 = bytes(range(0x20, 0x40))  # 202122...3f
TEST_STORE_ID = bytes(range(0xA0, 0xB0))      # a0a1...af
TEST_CREATED_AT = 1_795_439_700_000_000       # 2026-11-23T13:15:00.000000Z

TEST_ROWS = [
    {
        "description": "seq 1: minimal row; every optional field NULL (occurred_at, tenant, resource_type, "
                       "resource_id, correlation_id, source, details, origin_ref); previous MAC is 32 zero bytes",
        "columns": {
            "seq": 1, "recorded_at": 1_795_439_702_123_456, "occurred_at": None, "tenant": None,
            "actor": "alice", "action": "auth.login", "resource_type": None, "resource_id": None,
            "outcome": 0, "severity": 0, "correlation_id": None, "source": None, "details": None,
            "origin": 0, "origin_ref": None, "format_version": 1, "key_version": 1,
        },
    },
    {
        "description": "seq 2: every field present; occurred_at present; non-ASCII UTF-8 (NFC) in actor, "
                       "resource_id and details; details is a JSON object",
        "columns": {
            "seq": 2, "recorded_at": 1_795_439_703_000_001, "occurred_at": 1_795_439_701_999_999,
            "tenant": "acme-eu", "actor": "Zo\u00eb \u00c5ngstr\u00f6m <zoe@example.com>",
            "action": "document.delete", "resource_type": "document", "resource_id": "\u6587\u66f8-42",
            "outcome": 2, "severity": 2, "correlation_id": "req-7f3a9c", "source": "web 10.0.0.8",
            "details": "{\"attempt\":2,\"reason\":\"r\u00e9sum\u00e9 locked \U0001F512\"}",
            "origin": 0, "origin_ref": None, "format_version": 1, "key_version": 1,
        },
    },
    {
        "description": "seq 3: the entry of a migration run; occurred_at before 1970 (negative, two's "
                       "complement); source NULL but details present",
        "columns": {
            "seq": 3, "recorded_at": 1_795_439_704_500_000, "occurred_at": -86_400_000_000,
            "tenant": None, "actor": "auditdb-migrate", "action": "auditdb.migration.run",
            "resource_type": "table", "resource_id": "legacy_audit", "outcome": 0, "severity": 1,
            "correlation_id": None, "source": None, "details": "{\"rows\":1}",
            "origin": 0, "origin_ref": None, "format_version": 1, "key_version": 1,
        },
    },
    {
        "description": "seq 4: a back-signed row (origin 1) brought in by the migration run at seq 3 "
                       "(origin_ref 3); signed with key version 2 after a rotation; outcome error, severity "
                       "critical; details NULL",
        "columns": {
            "seq": 4, "recorded_at": 1_795_439_705_000_000, "occurred_at": 1_262_304_000_000_000,
            "tenant": "acme-eu", "actor": "bob", "action": "user.grant_admin", "resource_type": "user",
            "resource_id": "u-1001", "outcome": 3, "severity": 3, "correlation_id": None,
            "source": "legacy", "details": None, "origin": 1, "origin_ref": 3, "format_version": 1,
            "key_version": 2,
        },
    },
]

TEST_ATTESTATION = {
    "description": "key version 1 is declared compromised by the entry at seq 5; key version 2 re-attests "
                   "the row at seq 2 (signed with version 1)",
    "seq": 2, "declaration_seq": 5, "attesting_key_version": 2,
}

TEST_HEADER_ATTESTATION = {
    "description": "the same declaration (the entry at seq 5); key version 2 re-attests the store header, "
                   "attested as seq 0 (signed with version 1): row_mac is the header's mac",
    "seq": 0, "declaration_seq": 5, "attesting_key_version": 2,
}


def _row_bytes(columns: dict) -> dict:
    row = dict(columns)
    for c in TEXT_COLUMNS:
        if row[c] is not None:
            row[c] = row[c].encode("utf-8")
    return row


def enc_row_layout(ks: KeySet, store_id: bytes, row: dict) -> list[dict]:
    """ENC_ROW split into its fields: [{offset, size, field, hex}] (for FORMAT.md's worked example)."""
    seq = row["seq"]
    parts = [
        ("magic \"ADB1ROW_\"", MAGIC_ROW), ("store_id", store_id), ("seq", i64(seq)),
        ("format_version", u8(row["format_version"])), ("key_version", u32(row["key_version"])),
        ("recorded_at", i64(row["recorded_at"])),
    ]
    def opt_int(name, v):
        parts.append((f"{name} flag", b"\x00" if v is None else b"\x01"))
        if v is not None:
            parts.append((name, i64(v)))
    def opt_text(name, v):
        if v is None:
            parts.append((f"{name} length (NULL)", b"\xff\xff\xff\xff"))
        else:
            parts.append((f"{name} length", u32(len(v))))
            if v:
                parts.append((name, v))
    opt_int("occurred_at", row["occurred_at"])
    opt_text("tenant", row["tenant"])
    opt_text("action", row["action"])
    opt_text("resource_type", row["resource_type"])
    opt_text("resource_id", row["resource_id"])
    parts.append(("outcome", u8(row["outcome"])))
    parts.append(("severity", u8(row["severity"])))
    opt_text("correlation_id", row["correlation_id"])
    parts.append(("origin", u8(row["origin"])))
    opt_int("origin_ref", row["origin_ref"])
    parts.append(("C_actor", committed_field(ks, store_id, seq, FIELD_ACTOR, row["actor"])))
    parts.append(("C_source", committed_field(ks, store_id, seq, FIELD_SOURCE, row["source"])))
    parts.append(("C_details", committed_field(ks, store_id, seq, FIELD_DETAILS, row["details"])))
    out, offset = [], 0
    for name, data in parts:
        out.append({"offset": offset, "size": len(data), "field": name, "hex": data.hex()})
        offset += len(data)
    assert b"".join(bytes.fromhex(p["hex"]) for p in out) == enc_row(ks, store_id, row)
    return out


# Section 21: a format-2 row after the rows above (seq 5, key version 1), fresh and then with its
# actor and details erased. The seed is a public test-only value (bytes 60..7f).
TEST_SEED = bytes(range(0x60, 0x80))
TEST_SEALED_ROW = {
    "seq": 5, "recorded_at": 1_795_439_705_000_000, "occurred_at": None, "tenant": "acme-eu",
    "actor": "alice@example.org", "action": "user.login", "resource_type": None, "resource_id": None,
    "outcome": 0, "severity": 0, "correlation_id": None, "source": "198.51.100.7",
    "details": '{"email":"alice@example.org"}', "origin": 0, "origin_ref": None, "format_version": 2,
    "key_version": 1,
}


def build_erasure_vector(ks: KeySet, sid: bytes, prev: bytes) -> dict:
    cols = dict(TEST_SEALED_ROW)
    row = _row_bytes(cols)
    row["seals"] = b"\x00" + TEST_SEED
    nonces = {name: erasure.nonce_v2(row["seals"], fid).hex()
              for name, fid in (("actor", FIELD_ACTOR), ("source", FIELD_SOURCE), ("details", FIELD_DETAILS))}
    commits = {name: row_commitment(ks, sid, row, fid).hex()
               for name, fid in (("actor", FIELD_ACTOR), ("source", FIELD_SOURCE), ("details", FIELD_DETAILS))}
    enc = enc_row(ks, sid, row)
    mac = seal(ks, sid, row, prev)
    erased_seals = erasure.erase_seals(row, 0b101)  # actor and details
    erased = dict(row, actor=None, details=None, seals=erased_seals)
    assert enc_row(ks, sid, erased) == enc and seal(ks, sid, erased, prev) == mac
    assert erasure.seals_problem(erased, {"seals": "blob"}) is None
    return {
        "description": "seq 5, row format 2 (section 21): a random seed in `seals`; then its actor and details "
                       "erased (mask 05): values NULL, their slots their commitments, the source slot its nonce. "
                       "ENC_ROW and the MAC do not change. The seed is a public test-only value.",
        "columns": cols,
        "text_utf8_hex": {c: None if row[c] is None else row[c].hex() for c in TEXT_COLUMNS},
        "seed": TEST_SEED.hex(),
        "seals": row["seals"].hex(),
        "nonces": nonces,
        "commitments": commits,
        "enc_row": enc.hex(),
        "prev_mac": prev.hex(),
        "mac": mac.hex(),
        "erased_fields": ["actor", "details"],
        "erased_seals": erased_seals.hex(),
        "erasure_entry_details": '{"fields":["actor","details"],"reason":"TICKET-1","seqs":[5],"subject":"actor"}',
    }


def build_erasure_paths_vector(ks: KeySet, sid: bytes, prev: bytes) -> dict:
    """Section 21.7: the same format-2 row with details {"email":…,"plan":…}; details.email erased."""
    cols = dict(TEST_SEALED_ROW, details='{"email":"alice@example.org", "plan":"gold"}')
    row = _row_bytes(cols)
    row["seals"] = b"\x00" + TEST_SEED
    enc = enc_row(ks, sid, row)
    mac = seal(ks, sid, row, prev)
    residual = '{"plan":"gold"}'  # the member and the comma after it removed; every other byte kept
    text = '{"erased":["details.email"],"residual":' + residual + '}'
    erased_seals = erasure.erase_seals(row, erasure.PARTIAL)
    erased = dict(row, details=text.encode(), seals=erased_seals)
    assert enc_row(ks, sid, erased) == enc and seal(ks, sid, erased, prev) == mac
    assert erasure.seals_problem(erased, {"seals": "blob"}) is None
    assert erasure.restored_paths(text.encode(), ["details.email"]) == []
    rh = erasure.residual_hash(cols["seq"], text.encode())
    return {
        "description": "seq 5 as in `erasure`, with details {\"email\":…, \"plan\":…}; then details.email erased "
                       "(section 21.7, mask 0c): the details slot holds C_details, the column the erased-details "
                       "text; the erasure entry records its RESIDUAL_HASH. ENC_ROW and the MAC do not change.",
        "details": cols["details"],
        "seals": row["seals"].hex(),
        "enc_row": enc.hex(),
        "prev_mac": prev.hex(),
        "mac": mac.hex(),
        "paths": ["details.email"],
        "erased_seals": erased_seals.hex(),
        "erased_details": text,
        "residual_hash": rh.hex(),
        "erasure_entry_details": '{"fields":[],"paths":["details.email"],"reason":"TICKET-1","residuals":["'
                                 + rh.hex() + '"],"seqs":[5],"subject":"actor"}',
    }


def build_vectors() -> dict:
    masters = {1: TEST_MASTER_KEY_1, 2: TEST_MASTER_KEY_2}
    keysets = {v: KeySet(m) for v, m in masters.items()}
    sid = TEST_STORE_ID
    vec: dict = {
        "vectors_format": "auditdb-test-vectors",
        "vectors_version": 1,
        "format_version": FORMAT_VERSION,
        "WARNING": "PUBLIC TEST-ONLY KEYS. Everything here, including the master keys, is published: anyone "
                   "can forge rows with these keys. Never use them for a real store.",
        "generator": "docs/verifier/auditdb_verify.py --emit-vectors",
        "keys": [
            {"version": v, "master": masters[v].hex(), "k_mac": keysets[v].k_mac.hex(),
             "k_nonce": keysets[v].k_nonce.hex()}
            for v in sorted(masters)
        ],
        "store_id": sid.hex(),
    }
    hdr_msg = header_message(sid, TEST_CREATED_AT, FORMAT_VERSION, 1)
    vec["header"] = {
        "created_at": TEST_CREATED_AT, "format_version": FORMAT_VERSION, "key_version": 1,
        "message": hdr_msg.hex(), "mac": header_mac(keysets[1], sid, TEST_CREATED_AT, FORMAT_VERSION, 1).hex(),
    }
    rows_out = []
    prev = ZERO32
    macs = {}
    for spec in TEST_ROWS:
        cols = spec["columns"]
        row = _row_bytes(cols)
        ks = keysets[row["key_version"]]
        seq = row["seq"]
        nonces, commits, nonce_msgs = {}, {}, {}
        for name, fid in (("actor", FIELD_ACTOR), ("source", FIELD_SOURCE), ("details", FIELD_DETAILS)):
            nonce_msgs[name] = nonce_message(sid, seq, fid).hex()
            nonce = field_nonce(ks, sid, seq, fid)
            nonces[name] = nonce.hex()
            commits[name] = commitment(nonce, fid, row[name]).hex()
        enc = enc_row(ks, sid, row)
        full_row = ks.mac(enc)
        tag = full_row[:TAG_LEN]
        lmsg = link_message(sid, seq, tag, prev)
        full_link = ks.mac(lmsg)
        mac = tag + full_link[:TAG_LEN]
        assert mac == seal(ks, sid, row, prev)
        rows_out.append({
            "description": spec["description"],
            "columns": {c: cols[c] for c in ROW_COLUMNS if c != "mac"},
            "text_utf8_hex": {c: None if row[c] is None else row[c].hex() for c in TEXT_COLUMNS},
            "nonce_messages": nonce_msgs,
            "nonces": nonces,
            "commitments": commits,
            "enc_row": enc.hex(),
            "enc_row_length": len(enc),
            "row_hmac": full_row.hex(),
            "row_tag": tag.hex(),
            "prev_mac": prev.hex(),
            "link_message": lmsg.hex(),
            "link_hmac": full_link.hex(),
            "link_tag": full_link[:TAG_LEN].hex(),
            "mac": mac.hex(),
        })
        macs[seq] = mac
        prev = mac
    vec["rows"] = rows_out
    vec["erasure"] = build_erasure_vector(keysets[1], sid, macs[len(TEST_ROWS)])
    vec["erasure_paths"] = build_erasure_paths_vector(keysets[1], sid, macs[len(TEST_ROWS)])
    a = TEST_ATTESTATION
    row_kv = TEST_ROWS[a["seq"] - 1]["columns"]["key_version"]
    amsg = attestation_message(sid, a["seq"], row_kv, macs[a["seq"]], a["declaration_seq"])
    vec["attestation"] = {
        "description": a["description"],
        "seq": a["seq"], "row_key_version": row_kv, "row_mac": macs[a["seq"]].hex(),
        "declaration_seq": a["declaration_seq"], "attesting_key_version": a["attesting_key_version"],
        "message": amsg.hex(),
        "mac": attestation_mac(keysets[a["attesting_key_version"]], sid, a["seq"], row_kv, macs[a["seq"]],
                               a["declaration_seq"]).hex(),
    }
    h = TEST_HEADER_ATTESTATION
    hkv, hmac_ = vec["header"]["key_version"], bytes.fromhex(vec["header"]["mac"])
    vec["header_attestation"] = {
        "description": h["description"],
        "seq": h["seq"], "row_key_version": hkv, "row_mac": hmac_.hex(),
        "declaration_seq": h["declaration_seq"], "attesting_key_version": h["attesting_key_version"],
        "message": attestation_message(sid, h["seq"], hkv, hmac_, h["declaration_seq"]).hex(),
        "mac": attestation_mac(keysets[h["attesting_key_version"]], sid, h["seq"], hkv, hmac_,
                               h["declaration_seq"]).hex(),
    }
    vec["enc_row_layout_seq_2"] = enc_row_layout(keysets[1], sid, _row_bytes(TEST_ROWS[1]["columns"]))
    vec["key_file_text"] = (
        "# PUBLIC TEST-ONLY KEYS - never use them for a real store.\n"
        "auditdb-keys v1\n"
        f"key 1 active 2026-11-23T13:15:00.000000Z {TEST_MASTER_KEY_1.hex()}\n"
        f"key 2 active 2026-11-23T13:15:04.000000Z {TEST_MASTER_KEY_2.hex()}\n"
    )
    return vec


def emit_vectors(out_path: str) -> None:
    text = json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="auditdb_verify.py",
        description="Independently verify an AuditDB store (format version 1); see docs/FORMAT.md.")
    parser.add_argument("--store", metavar="FILE", help="the SQLite store file (opened read-only)")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the key file (`auditdb-keys v1`, mode 0600); default: $AUDITDB_KEY_FILE, "
                             "else the keys in $AUDITDB_KEYS")
    parser.add_argument("--store-id", metavar="HEX", help="the expected store id (32 hex digits), to pin the store")
    parser.add_argument("--public-key", metavar="FILE",
                        help="the public checkpoint key file (`auditdb-checkpoint-pubkey v1`): the store's own "
                             "checkpoints (step 8) are trusted only under it; without it, a checkpoint row is "
                             "checked only against the public key it names")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-schema-check", action="store_true",
                        help="skip the comparison of the store's schema with format version 1's")
    parser.add_argument("--emit-vectors", metavar="OUT.json",
                        help="write the test vectors (public TEST-ONLY keys) to OUT.json and exit")
    args = parser.parse_args(argv)

    if args.emit_vectors:
        try:
            emit_vectors(args.emit_vectors)
        except OSError as e:
            print(f"error: cannot write {sj.escaped(args.emit_vectors)}: {e.strerror}", file=sys.stderr)
            return 2
        return 0
    if not args.store:
        parser.print_usage(sys.stderr)
        print("error: --store FILE is required", file=sys.stderr)
        return 2
    expected = None
    if args.store_id is not None:
        try:
            expected = bytes.fromhex(args.store_id)
        except ValueError:
            expected = None
        if expected is None or len(expected) != STORE_ID_LEN or len(args.store_id) != 2 * STORE_ID_LEN:
            print("error: --store-id must be 32 hex digits", file=sys.stderr)
            return 2
    try:
        key_file = args.key_file or os.environ.get("AUDITDB_KEY_FILE")
        keys = load_key_file(key_file) if key_file else keys_from_environment()
    except KeyError_ as e:
        print(f"error: {sj.escaped(str(e))}", file=sys.stderr)
        return 2
    checkpoint_keys = None
    if args.public_key is not None:
        try:
            checkpoint_keys = load_public_key_file(args.public_key)
        except (PublicKeyFileError, ImportError, OSError) as e:
            print(f"error: {sj.escaped(str(e))}", file=sys.stderr)
            return 2
    try:
        report = verify(args.store, keys, expected, None if args.no_schema_check else SCHEMA_SQL, checkpoint_keys)
    except (StoreOpenError, WrongKeyError, OSError, sqlite3.Error, ImportError) as e:
        print(f"error: {sj.escaped(str(e))}", file=sys.stderr)
        return 2

    total = len(report.findings)
    shown = report.findings[:FINDING_LIMIT]
    if args.json:
        print(json.dumps({
            "intact": report.intact,
            "store_id": None if report.store_id is None else report.store_id.hex(),
            "rows_checked": report.rows_checked,
            "rows_expired": report.rows_expired,
            "last_seq": report.last_seq,
            "total_findings": total,
            "findings": [f.as_json() for f in shown],
        }, indent=2))
    elif report.intact:
        sid = report.store_id.hex() if report.store_id else "?"
        span = f"seq 1...{report.last_seq}" if report.last_seq else "empty log"
        if report.rows_expired:
            span += f", {report.rows_expired} expired"
        print(f"intact: {report.rows_checked} rows ({span}), store {sid}")
    else:
        print(f"NOT intact: {total} finding(s); {report.rows_checked} rows read")
        for f in shown:
            print(f"  {sj.escaped(str(f))}")
        if total > len(shown):
            print(f"  ... and {total - len(shown)} more")
    return 0 if report.intact else 1


if __name__ == "__main__":
    sys.exit(main())
