"""erasure.py - row format 2 and erased fields (docs/FORMAT.md section 21), for auditdb_verify.py.

Written from FORMAT.md section 21 alone, with nothing but the Python standard library:

* the `seals` column and the commitments of format-2 rows (21.1), and their shape (21.2);
* the erasure entry's `details` (21.3), read by the strict JSON reader (strict_json.py, section 18);
* step 10 of verification (21.4): `erasure-tampered` findings.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys

_HERE = pathlib.Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
import strict_json as sj  # noqa: E402  (section 18: the one JSON reading)

FORMAT_SEALED = 2
MAGIC_NONCE_V2 = b"ADB2NONC"
FRESH_LEN, ERASED_LEN = 33, 97
ACTION = b"auditdb.erasure"
FIELDS = ("actor", "source", "details")
ZERO32 = bytes(32)
MAX_SEQS = 2000
SUBJECTS = ("actor", "tenant", "resource", "seqs")
MEMBERS = ("reason", "subject", "fields", "seqs")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------------------------
# 21.1-21.2: seals, nonces, commitments, shape
# --------------------------------------------------------------------------------------------


def erased_mask(seals: bytes | None) -> int:
    """The erased fields of a format-2 row's (valid) seals: bit 0 actor, 1 source, 2 details."""
    return seals[0] & 7 if seals is not None and len(seals) == ERASED_LEN else 0


def nonce_v2(seals: bytes, field: int) -> bytes | None:
    """N_f of a format-2 row; None if the field is erased (its nonce is gone)."""
    if len(seals) == FRESH_LEN:
        return sha256(MAGIC_NONCE_V2 + bytes(seals[1:33]) + bytes([field]))
    if seals[0] & (1 << (field - 1)):
        return None
    return bytes(seals[1 + 32 * (field - 1):33 + 32 * (field - 1)])


def commitment_v2(seals: bytes | None, field: int, value: bytes | None) -> bytes:
    """C_f of a well-formed format-2 row (21.1)."""
    seals = bytes(seals)
    if erased_mask(seals) & (1 << (field - 1)):
        return seals[1 + 32 * (field - 1):33 + 32 * (field - 1)]
    if value is None:
        return ZERO32
    return sha256(nonce_v2(seals, field) + bytes([field]) + bytes(value))


def erase_seals(row: dict, mask: int) -> bytes:
    """The erased seals of a well-formed format-2 row with the fields of `mask` erased too (21.1)."""
    seals = bytes(row["seals"])
    all_ = (mask | erased_mask(seals)) & 7
    out = bytes([all_])
    for f in (1, 2, 3):
        value = row[FIELDS[f - 1]]
        out += commitment_v2(seals, f, value) if all_ & (1 << (f - 1)) else nonce_v2(seals, f)
    return out


def seals_problem(row: dict, types: dict) -> str | None:
    """21.2: why a row's `seals` does not fit its format (checked after key_version), or None."""
    seals_type = types.get("seals", "null")
    if row["format_version"] != FORMAT_SEALED:
        return None if seals_type == "null" else "a format-1 row has a seals value (only format-2 rows have one)"
    seals = row.get("seals")
    ok = seals_type == "blob" and seals is not None and (
        (len(seals) == FRESH_LEN and seals[0] == 0) or (len(seals) == ERASED_LEN and 1 <= seals[0] <= 7))
    if ok and len(seals) == ERASED_LEN:
        ok = all(row[FIELDS[f]] is None for f in range(3) if seals[0] & (1 << f))
    if not ok:
        return ("the seals column is not valid seals (33 bytes 00 || seed, or 97 bytes mask || commitments and "
                "nonces with every erased field NULL)")
    return None


def adapt(conn, sql: str) -> str:
    """A row query for a store without migration 0006: `seals` read as NULL (21.2)."""
    columns = [r[1] for r in conn.execute("PRAGMA table_info(audit_entries)")]
    if b"seals" in columns or "seals" in columns:
        return sql
    return sql.replace("typeof(seals)", "typeof(NULL)").replace(", seals,", ", NULL,")


# --------------------------------------------------------------------------------------------
# 21.3: the erasure entry
# --------------------------------------------------------------------------------------------


class ErasureDetailsError(ValueError):
    pass


def parse_erasure_details(details: bytes | None, entry_seq: int) -> tuple[int, list[int]]:
    """(mask of its fields, its seqs) of the erasure entry at `entry_seq`; raises ErasureDetailsError."""
    if details is None:
        raise ErasureDetailsError("its details are NULL")
    try:
        obj = sj.read_object(details, sj.DETAILS)
    except sj.JSONError as e:
        raise ErasureDetailsError(str(e))
    unknown = sorted(k for k in obj if k not in MEMBERS)
    if unknown:
        raise ErasureDetailsError(f"the member {sj.json_quoted(unknown[0])} is not one of an erasure entry's")
    for name in MEMBERS:
        if name not in obj:
            raise ErasureDetailsError(f"the member {sj.json_quoted(name)} is missing")
    if not isinstance(obj["reason"], str) or not obj["reason"]:
        raise ErasureDetailsError("reason is not a non-empty string")
    if obj["subject"] not in SUBJECTS:
        raise ErasureDetailsError("subject is not one of actor, tenant, resource, seqs")
    fields = obj["fields"]
    if (not isinstance(fields, list) or not fields or len(set(map(str, fields))) != len(fields)
            or not all(isinstance(f, str) and f in FIELDS for f in fields)):
        raise ErasureDetailsError("fields is not a non-empty array of distinct names among actor, source, details")
    seqs = obj["seqs"]
    if (not isinstance(seqs, list) or not 1 <= len(seqs) <= MAX_SEQS or not all(sj.is_integer(s) for s in seqs)
            or seqs[0] < 1 or seqs[-1] >= entry_seq or any(a >= b for a, b in zip(seqs, seqs[1:]))):
        raise ErasureDetailsError(f"seqs is not 1 to {MAX_SEQS} increasing seqs from 1, all before the entry's own seq {entry_seq}")
    mask = 0
    for f in fields:
        mask |= 1 << FIELDS.index(f)
    return mask, seqs


# --------------------------------------------------------------------------------------------
# 21.4: step 10
# --------------------------------------------------------------------------------------------


def _names(mask: int) -> str:
    return ", ".join(FIELDS[f] for f in range(3) if mask & (1 << f))


def check_erasure(conn, report, engine_rows: dict[int, dict]) -> None:
    """Step 10. `engine_rows`: seq -> columns of each row step 4 passed with no finding whose
    origin is 0 (those whose action is auditdb.erasure are the erasure entries)."""
    columns = [r[1] for r in conn.execute("PRAGMA table_info(audit_entries)")]
    if b"seals" not in columns and "seals" not in columns:
        return
    claimed: dict[int, list[int]] = {}  # seq -> [mask, first entry]
    for seq in sorted(engine_rows):
        row = engine_rows[seq]
        if row["action"] != ACTION:
            continue
        try:
            mask, seqs = parse_erasure_details(row["details"], seq)
        except ErasureDetailsError as e:
            report.add("erasure-tampered", seq, seq, f"erasure entry {seq} is signed but cannot be read: {e}")
            continue
        for s in seqs:
            before = claimed.get(s)
            claimed[s] = [(before[0] if before else 0) | mask, before[1] if before else seq]
    erased: dict[int, int] = {}
    for seq, seals in conn.execute(
            "SELECT seq, seals FROM audit_entries WHERE typeof(seals) = 'blob' AND length(seals) = 97 ORDER BY seq"):
        mask = bytes(seals)[0] & 7
        erased[seq] = mask
        unclaimed = mask & ~claimed.get(seq, [0, 0])[0]
        if unclaimed:
            report.add("erasure-tampered", seq, seq,
                       f"row {seq} has {_names(unclaimed)} erased, but no erasure entry that verifies erased it "
                       "(erased without AuditDB, or its erasure entry was removed or changed)")
    for seq in sorted(claimed):
        mask, entry = claimed[seq]
        restored = mask & ~erased.get(seq, 0)
        if not restored or conn.execute("SELECT 1 FROM audit_entries WHERE seq = ?", (seq,)).fetchone() is None:
            continue
        report.add("erasure-tampered", seq, seq,
                   f"erasure entry {entry} erased {_names(restored)} of row {seq}, but the row holds it again "
                   "(restored from a copy made before the erasure?)")
