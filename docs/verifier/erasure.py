"""erasure.py - row format 2 and erased fields (docs/FORMAT.md section 21), for auditdb_verify.py.

Written from FORMAT.md section 21 alone, with nothing but the Python standard library:

* the `seals` column and the commitments of format-2 rows (21.1), and their shape (21.2);
* the erasure entry's `details` (21.3), read by the strict JSON reader (strict_json.py, section 18);
* step 10 of verification (21.4): `erasure-tampered` findings;
* paths erased inside `details` (21.7): seals bit 3, the erased-details text, its residual hash.
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
MAX_SEQS_WITH_PATHS = 500
MAX_PATHS_PER_ERASURE, MAX_PATHS, MAX_PATH_BYTES = 16, 256, 256
PARTIAL = 0x0C  # seals bits 2 and 3: details partially erased (its nonce destroyed too)
MAGIC_RESIDUAL = b"ADB2RESD"
ERASED_DETAILS = sj.Limits(65_536 + 8_192, 33)  # 21.7: the erased-details text
SUBJECTS = ("actor", "tenant", "resource", "seqs")
MEMBERS = ("reason", "subject", "fields", "seqs")
OPTIONAL_MEMBERS = ("paths", "residuals")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------------------------
# 21.1-21.2: seals, nonces, commitments, shape
# --------------------------------------------------------------------------------------------


def erased_mask(seals: bytes | None) -> int:
    """The erased fields of a format-2 row's (valid) seals: bit 0 actor, 1 source, 2 details,
    3 details partially (21.7)."""
    return seals[0] & 15 if seals is not None and len(seals) == ERASED_LEN else 0


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
    if mask & 8:
        mask |= 4
    all_ = (mask | erased_mask(seals)) & 15
    if mask & 4 and not mask & 8:
        all_ &= ~8  # erasing details whole supersedes a partial erasure
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
        (len(seals) == FRESH_LEN and seals[0] == 0) or (len(seals) == ERASED_LEN and 1 <= seals[0] <= 15))
    if ok and len(seals) == ERASED_LEN:
        m = seals[0]
        ok = (all(row[FIELDS[f]] is None for f in range(2) if m & (1 << f)) and not (m & 8 and not m & 4)
              and ((row["details"] is not None) if m & 8 else (row["details"] is None or not m & 4)))
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


def is_details_path(text) -> bool:
    """details.KEY[.KEY...]: 1 to 31 non-empty keys, no character output escapes (section 18.6),
    at most 256 bytes (21.7)."""
    if not isinstance(text, str) or len(text.encode()) > MAX_PATH_BYTES or any(sj.needs_escape(ord(ch)) for ch in text):
        return False
    parts = text.split(".")
    return parts[0] == "details" and 1 <= len(parts) - 1 <= 31 and all(parts[1:])


def covers(a: str, b: str) -> bool:
    """Whether path b lies inside path a (or is it)."""
    pa, pb = a.split("."), b.split(".")
    return pb[:len(pa)] == pa


def paths_ok(paths, limit: int) -> bool:
    """1 to `limit` distinct details paths, in code point order, none inside another."""
    # Every pair, not only neighbours: "details.a-x" sorts between "details.a" and "details.a.b".
    return (isinstance(paths, list) and 1 <= len(paths) <= limit and all(is_details_path(p) for p in paths)
            and all(a < b for a, b in zip(paths, paths[1:]))
            and not any(covers(a, b) for i, a in enumerate(paths) for b in paths[i + 1:]))


def parse_erasure_details(details: bytes | None, entry_seq: int) -> tuple[int, list[int], list[str], list]:
    """(mask of its whole fields, its seqs, its paths, its residual hashes per seq or []) of the
    erasure entry at `entry_seq` (21.3, 21.7); raises ErasureDetailsError."""
    if details is None:
        raise ErasureDetailsError("its details are NULL")
    try:
        obj = sj.read_object(details, sj.DETAILS)
    except sj.JSONError as e:
        raise ErasureDetailsError(str(e))
    unknown = sorted(k for k in obj if k not in MEMBERS + OPTIONAL_MEMBERS)
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
    if (not isinstance(fields, list) or len(set(map(str, fields))) != len(fields)
            or not all(isinstance(f, str) and f in FIELDS for f in fields)):
        raise ErasureDetailsError("fields is not an array of distinct names among actor, source, details")
    paths, residuals = obj.get("paths"), obj.get("residuals")
    if (paths is None) != (residuals is None):
        raise ErasureDetailsError("paths and residuals go together")
    if paths is not None and not paths_ok(paths, MAX_PATHS_PER_ERASURE):
        raise ErasureDetailsError("paths is not 1 to 16 distinct details paths in order, none inside another")
    if not fields and paths is None:
        raise ErasureDetailsError("it erases no field and no path")
    if "details" in fields and paths is not None:
        raise ErasureDetailsError("it erases details both whole and by paths")
    limit = MAX_SEQS if paths is None else MAX_SEQS_WITH_PATHS
    seqs = obj["seqs"]
    if (not isinstance(seqs, list) or not 1 <= len(seqs) <= limit or not all(sj.is_integer(s) for s in seqs)
            or seqs[0] < 1 or seqs[-1] >= entry_seq or any(a >= b for a, b in zip(seqs, seqs[1:]))):
        raise ErasureDetailsError(f"seqs is not 1 to {limit} increasing seqs from 1, all before the entry's own seq {entry_seq}")
    hashes = []
    if residuals is not None:
        if (not isinstance(residuals, list) or len(residuals) != len(seqs)
                or not all(r is None or (isinstance(r, str) and len(r) == 64 and all(c in "0123456789abcdef" for c in r))
                           for r in residuals)):
            raise ErasureDetailsError("residuals is not one 64-hex hash or null per seq")
        if not fields and None in residuals:
            raise ErasureDetailsError("it erases only paths, yet records a row where it erased none")
        hashes = [None if r is None else bytes.fromhex(r) for r in residuals]
    mask = 0
    for f in fields:
        mask |= 1 << FIELDS.index(f)
    return mask, seqs, paths or [], hashes


def residual_hash(seq: int, text: bytes) -> bytes:
    """RESIDUAL_HASH = SHA256("ADB2RESD" || i64(seq) || the erased-details text) (21.7)."""
    return sha256(MAGIC_RESIDUAL + seq.to_bytes(8, "big", signed=True) + bytes(text))


def restored_paths(text: bytes, paths) -> list[str]:
    """The paths an erased-details text's residual holds again; [] if it is not one (21.7)."""
    try:
        obj = sj.read_object(bytes(text), ERASED_DETAILS)
    except sj.JSONError:
        return []
    residual = obj.get("residual")
    if set(obj) != {"erased", "residual"} or not isinstance(residual, dict):
        return []
    back = []
    for path in sorted(paths):
        node = residual
        for key in path.split(".")[1:]:
            node = node.get(key, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            back.append(path)
    return back


_ABSENT = object()


# --------------------------------------------------------------------------------------------
# 21.4: step 10
# --------------------------------------------------------------------------------------------


def _names(mask: int, paths: str = "paths inside details") -> str:
    whole = mask & 3 if mask & 8 else mask
    return ", ".join([FIELDS[f] for f in range(3) if whole & (1 << f)] + ([paths] if mask & 8 else []))


class _Claim:
    """What the verified erasure entries erased in one row (21.4, 21.7)."""

    def __init__(self, entry: int):
        self.mask, self.entry, self.paths, self.residual, self.residual_entry = 0, entry, set(), None, 0

    def add(self, mask: int, paths: list[str], hashes: list, index: int, entry: int):
        if mask & 4:  # details erased whole: supersedes a partial erasure
            self.mask = (self.mask | 4) & ~8
            self.residual = None
        elif hashes and hashes[index] is not None and self.mask & PARTIAL != 4:
            self.mask |= PARTIAL
            self.paths |= set(paths)
            self.residual, self.residual_entry = hashes[index], entry
        self.mask |= mask

    def path_list(self) -> str:
        return ", ".join(sorted(self.paths))


def check_erasure(conn, report, engine_rows: dict[int, dict]) -> None:
    """Step 10. `engine_rows`: seq -> columns of each row step 4 passed with no finding whose
    origin is 0 (those whose action is auditdb.erasure are the erasure entries)."""
    columns = [r[1] for r in conn.execute("PRAGMA table_info(audit_entries)")]
    if b"seals" not in columns and "seals" not in columns:
        return
    claimed: dict[int, _Claim] = {}
    for seq in sorted(engine_rows):
        row = engine_rows[seq]
        if row["action"] != ACTION:
            continue
        try:
            mask, seqs, paths, hashes = parse_erasure_details(row["details"], seq)
        except ErasureDetailsError as e:
            report.add("erasure-tampered", seq, seq, f"erasure entry {seq} is signed but cannot be read: {e}")
            continue
        for index, s in enumerate(seqs):
            claimed.setdefault(s, _Claim(seq)).add(mask, paths, hashes, index, seq)
    erased: dict[int, int] = {}
    for seq, seals in conn.execute(
            "SELECT seq, seals FROM audit_entries NOT INDEXED WHERE typeof(seals) = 'blob' AND length(seals) = 97 ORDER BY seq"):
        mask = bytes(seals)[0] & 15
        erased[seq] = mask
        unclaimed = mask & ~(claimed[seq].mask if seq in claimed else 0)
        if unclaimed:
            report.add("erasure-tampered", seq, seq,
                       f"row {seq} has {_names(unclaimed)} erased, but no erasure entry that verifies erased it "
                       "(erased without AuditDB, or its erasure entry was removed or changed)")
    for seq in sorted(claimed):
        claim = claimed[seq]
        row = conn.execute("SELECT details FROM audit_entries WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            continue
        stored = erased.get(seq, 0)
        restored = claim.mask & ~stored
        if restored == 8 and stored & 4:
            report.add("erasure-tampered", seq, seq,
                       f"row {seq} has details erased whole, but erasure entry {claim.residual_entry} erased only "
                       f"{claim.path_list()} inside it (the rest of details was removed without an erasure entry)")
        elif restored:
            entry = claim.residual_entry if restored & 8 and not restored & 3 else claim.entry
            report.add("erasure-tampered", seq, seq,
                       f"erasure entry {entry} erased {_names(restored, claim.path_list())} of row {seq}, but the row "
                       "holds it again (restored from a copy made before the erasure?)")
        elif claim.mask & 8 and claim.residual is not None:
            text = row[0]
            if text is None:
                continue
            text = text.encode() if isinstance(text, str) else bytes(text)
            if residual_hash(seq, text) == claim.residual:
                continue
            back = restored_paths(text, claim.paths)
            report.add("erasure-tampered", seq, seq,
                       f"the rest of row {seq}'s details is not what erasure entry {claim.residual_entry} recorded "
                       "(changed after the erasure)" if not back else
                       f"erasure entry {claim.residual_entry} erased {', '.join(back)} of row {seq}, but its details hold it again")
