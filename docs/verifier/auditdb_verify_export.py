#!/usr/bin/env python3
"""Independent verifier of AuditDB checkpoints, export bundles and export statements (docs/FORMAT.md, sections 16-17).

Written from FORMAT.md, Python 3 standard library only: Ed25519 verification is the reference
code of RFC 8032 section 6 (pure Python, slow but simple), SHA-256 is hashlib's.

    python3 auditdb_verify_export.py BUNDLE_DIR --public-key checkpoint.pub [--require-statement]
        exit 0: valid (and says whether a signed statement attests completeness);
        1: the bundle does not verify (each reason printed); 2: could not run
    python3 auditdb_verify_export.py --emit-vectors
        regenerates docs/test-vectors/checkpoints.json, docs/test-vectors/bundle/ (format v1)
        and docs/test-vectors/bundle-v2/ (format v2)
    python3 auditdb_verify_export.py --selftest
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import re
import stat
import sys

HERE = pathlib.Path(__file__).resolve().parent
VECTORS_DIR = HERE.parent / "test-vectors"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import strict_json as sj  # noqa: E402  (section 18: the one JSON reading of every file here)
import export_v2  # noqa: E402  (section 17.5: entry arrays and the multiproof)

# ------------------------------------------------------------------------------------------
# Ed25519 (RFC 8032, section 6: the reference implementation, lightly trimmed)
# ------------------------------------------------------------------------------------------

_p = 2**255 - 19
_q = 2**252 + 27742317777372353535851937790883648493


def _inv(x: int) -> int:
    return pow(x, _p - 2, _p)


_d = -121665 * _inv(121666) % _p
_sqrt_m1 = pow(2, (_p - 1) // 4, _p)


def _add(P, Q):
    A = (P[1] - P[0]) * (Q[1] - Q[0]) % _p
    B = (P[1] + P[0]) * (Q[1] + Q[0]) % _p
    C = 2 * P[3] * Q[3] * _d % _p
    D = 2 * P[2] * Q[2] % _p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def _mul(s: int, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _add(Q, P)
        P = _add(P, P)
        s >>= 1
    return Q


def _equal(P, Q) -> bool:
    return (P[0] * Q[2] - Q[0] * P[2]) % _p == 0 and (P[1] * Q[2] - Q[1] * P[2]) % _p == 0


def _recover_x(y: int, sign: int):
    if y >= _p:
        return None
    x2 = (y * y - 1) * _inv(_d * y * y + 1)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_p + 3) // 8, _p)
    if (x * x - x2) % _p != 0:
        x = x * _sqrt_m1 % _p
    if (x * x - x2) % _p != 0:
        return None
    if (x & 1) != sign:
        x = _p - x
    return x


_gy = 4 * _inv(5) % _p
_gx = _recover_x(_gy, 0)
_G = (_gx, _gy, 1, _gx * _gy % _p)


def _compress(P) -> bytes:
    zinv = _inv(P[2])
    x, y = P[0] * zinv % _p, P[1] * zinv % _p
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decompress(s: bytes):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _p)


def _sha512_modq(m: bytes) -> int:
    return int.from_bytes(hashlib.sha512(m).digest(), "little") % _q


def _expand(seed: bytes):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public_key(seed: bytes) -> bytes:
    return _compress(_mul(_expand(seed)[0], _G))


def ed25519_sign(seed: bytes, msg: bytes) -> bytes:
    """Only for generating test vectors (Ed25519 signatures are deterministic)."""
    a, prefix = _expand(seed)
    A = _compress(_mul(a, _G))
    r = _sha512_modq(prefix + msg)
    Rs = _compress(_mul(r, _G))
    s = (r + _sha512_modq(Rs + A + msg) * a) % _q
    return Rs + int.to_bytes(s, 32, "little")


_IDENTITY = (0, 1, 1, 0)


def _small_order(P) -> bool:
    """Whether P's order divides 8 (the identity and the 7 other points of small order)."""
    return _equal(_mul(8, P), _IDENTITY)


def ed25519_verify(public: bytes, msg: bytes, signature: bytes) -> bool:
    """RFC 8032 section 5.1.7, cofactorless ([S]B = R + [k]A), as strict as libsodium's
    crypto_sign_verify_detached, which the reference uses (FORMAT.md section 16.1): A and R must
    decode (canonical y < p; x = 0 only with sign 0), neither may have small order, and S < L."""
    if len(public) != 32 or len(signature) != 64:
        return False
    A = _decompress(public)
    R = _decompress(signature[:32])
    if A is None or R is None or _small_order(A) or _small_order(R):
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _q:
        return False
    h = _sha512_modq(signature[:32] + public + msg)
    return _equal(_mul(s, _G), _add(R, _mul(h, A)))


# ------------------------------------------------------------------------------------------
# Encodings (FORMAT.md sections 3, 7, 8, 16)
# ------------------------------------------------------------------------------------------


def sha256(m: bytes) -> bytes:
    return hashlib.sha256(m).digest()


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def i64(v: int) -> bytes:
    return (v % 2**64).to_bytes(8, "big")


def opt_i64(v):
    return b"\x00" if v is None else b"\x01" + i64(v)


def opt_str(v):
    return b"\xff\xff\xff\xff" if v is None else u32(len(v)) + v


FIELDS = [("actor", 1), ("source", 2), ("details", 3)]


def commitment(nonce: bytes, field: int, value: bytes | None) -> bytes:
    return bytes(32) if value is None else sha256(nonce + bytes([field]) + value)


def enc_row(store_id: bytes, e: dict, commitments: bytes) -> bytes:
    """ENC_ROW (section 8) of an exported entry; text values as UTF-8, commitments given."""
    def t(name):
        return None if e[name] is None else e[name].encode("utf-8")
    return (b"ADB1ROW_" + store_id + i64(e["seq"]) + bytes([e["formatVersion"]]) + u32(e["keyVersion"])
            + i64(e["recordedAt"]) + opt_i64(e["occurredAt"]) + opt_str(t("tenant")) + opt_str(t("action"))
            + opt_str(t("resourceType")) + opt_str(t("resourceId")) + bytes([e["outcome"], e["severity"]])
            + opt_str(t("correlationId")) + bytes([e["origin"]]) + opt_i64(e["originRef"]) + commitments)


def leaf_hash(enc: bytes) -> bytes:
    return sha256(b"\x00" + enc)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH (non-empty)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n]), from the leaf upwards."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return inclusion_proof(m, leaves[:k]) + [merkle_root(leaves[k:])]
    return inclusion_proof(m - k, leaves[k:]) + [merkle_root(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def proof_length(index: int, size: int) -> int:
    count, i, n = 0, index, size
    while n > 1:
        if (i ^ 1) < n:
            count += 1
        i >>= 1
        n = (n + 1) >> 1
    return count


def statement(cp: dict) -> bytes:
    """The 140 signed bytes of a checkpoint (section 16.1)."""
    return (b"ADB1CKPT" + bytes.fromhex(cp["storeId"]) + i64(cp["seq"]) + bytes.fromhex(cp["chainHead"])
            + bytes.fromhex(cp["merkleRoot"]) + i64(cp["time"]) + u32(cp["keyVersion"]) + bytes.fromhex(cp["publicKey"]))


_VERSION = re.compile(rb"[1-9][0-9]*")
_PUBLIC_KEY_HEX = re.compile(rb"[0-9a-fA-F]{64}")
_FIELD_SEPARATORS = re.compile(rb"[ \t\r]+")
PUBLIC_KEY_FILE = "public checkpoint key file"
MAXIMUM_PUBLIC_KEY_FILE_BYTES = 1 << 20


def parse_public_keys(data: bytes | str, origin: str = PUBLIC_KEY_FILE) -> dict[int, bytes]:
    """Section 16.4's public key file, from its bytes (a str is taken as its UTF-8): at most 1 MiB,
    UTF-8; lines end at LF (bytes after the last LF are a last line), fields split at runs of
    space, tab or CR, lines with no field or a first field starting with `#` ignored;
    `auditdb-checkpoint-pubkey v1`, then `key VERSION HEX` lines (VERSION 1..4294967295 without
    sign or leading zero, each once; HEX 64 hex digits, either case); at least one. Anything else
    raises ValueError (naming `origin`, as the reference's messages do): the file is unusable."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAXIMUM_PUBLIC_KEY_FILE_BYTES:
        raise ValueError(f"{origin} is larger than 1 MiB")
    try:
        data.decode("utf-8")  # strict: RFC 3629, comments included
    except UnicodeDecodeError as e:
        raise ValueError(f"{origin} is not UTF-8 text (byte {e.start})")
    keys: list[tuple[int, bytes]] = []
    header = False
    for number, line in enumerate(data.split(b"\n"), start=1):
        fields = [f for f in _FIELD_SEPARATORS.split(line) if f]
        if not fields or fields[0].startswith(b"#"):
            continue
        if not header:
            if fields != [b"auditdb-checkpoint-pubkey", b"v1"]:
                raise ValueError(f"{origin} line {number}: expected the header `auditdb-checkpoint-pubkey v1`")
            header = True
            continue
        if (len(fields) != 3 or fields[0] != b"key" or not _VERSION.fullmatch(fields[1]) or int(fields[1]) > 0xFFFFFFFF
                or not _PUBLIC_KEY_HEX.fullmatch(fields[2])):
            raise ValueError(f"{origin} line {number}: expected `key VERSION PUBKEY_HEX` (64 hex digits)")
        keys.append((int(fields[1]), bytes.fromhex(fields[2].decode("ascii"))))
    if not header:
        raise ValueError(f"{origin}: no `auditdb-checkpoint-pubkey v1` header; is this a key file?")
    if not keys:
        raise ValueError(f"{origin} holds no key")
    if len({v for v, _ in keys}) != len(keys):
        raise ValueError(f"{origin}: a version appears twice")
    return dict(keys)


def read_public_key_file(path) -> dict[int, bytes]:
    """Reads and parses a public key file (section 16.4; any mode, it holds nothing secret): opened
    without waiting, only a regular file (a FIFO or device is refused at once, never waited on), at
    most 1 MiB read (one byte more to tell). Raises ValueError naming the file (exit 2). Not
    read_input_file: its messages are the bundle's (`X is missing`), these the reference's for a
    key file (`cannot open public checkpoint key file X: <reason>`)."""
    what = f"{PUBLIC_KEY_FILE} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ValueError(f"cannot open {what}: {e.strerror}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{what} is not a regular file (a FIFO, device or directory is refused)")
        limit = MAXIMUM_PUBLIC_KEY_FILE_BYTES
        if info.st_size > limit:
            raise ValueError(f"{what} is larger than {limit} bytes")
        data = bytearray()
        while len(data) <= limit:
            try:
                chunk = os.read(fd, limit + 1 - len(data))
            except OSError as e:
                raise ValueError(f"could not read {what}: {e.strerror}")
            if not chunk:
                break
            data += chunk
        if len(data) > limit:  # it grew while being read
            raise ValueError(f"{what} is larger than {limit} bytes")
    finally:
        os.close(fd)
    return parse_public_keys(bytes(data), what)


class Fields:
    """The typed fields of a signed document (the reference's StrictJSONObject): each accessor
    raises ValueError naming the document and the field."""

    def __init__(self, data: bytes, what: str, article: str, fmt, known, unknown_note: str):
        """`fmt`: the format, or a list of the formats accepted (newest first); `known`: the keys,
        or a function of the format read giving them."""
        try:
            self.obj = sj.read_object(data, sj.SIGNED_DOCUMENT)
        except sj.JSONError as e:
            raise ValueError(f"not {article} {what}: {e}")
        self.what = what
        formats = fmt if isinstance(fmt, list) else [fmt]
        if not isinstance(self.obj.get("format"), str) or self.obj.get("format") not in formats:
            raise ValueError(f"not {article} {what}: its format is not " + " or ".join(f"`{x}`" for x in formats))
        known = known(self.obj["format"]) if callable(known) else known
        unknown = sorted(set(self.obj) - known)
        if unknown:
            raise ValueError(f"{what} has an unknown field {sj.json_quoted(unknown[0])}; {unknown_note}")

    def hex(self, name: str, size: int) -> str:
        v = self.obj.get(name)
        if not sj.is_lower_hex(v, size):
            raise ValueError(f"{self.what} field {name} must be {size * 2} lowercase hex digits")
        return v

    def integer(self, name: str) -> int:
        v = self.obj.get(name)
        if not sj.is_integer(v):
            raise ValueError(f"{self.what} field {name} must be an integer")
        return v

    def key_version(self) -> int:
        v = self.integer("keyVersion")
        if not 0 <= v < 2**32:
            raise ValueError(f"{self.what} field keyVersion is out of range")
        return v


CHECKPOINT_KEYS = {"format", "storeId", "seq", "chainHead", "merkleRoot", "time", "timeText", "keyVersion", "publicKey",
                   "signature"}


def read_checkpoint(data: bytes) -> dict:
    """Parses a checkpoint's JSON form (sections 16.5 and 18); raises ValueError(why). The fields
    are checked in the reference's order, so the first problem named is the same."""
    f = Fields(data, "checkpoint", "a", "auditdb-checkpoint v1", CHECKPOINT_KEYS,
               "a checkpoint holds only its signed fields and timeText")
    cp = {"format": "auditdb-checkpoint v1", "storeId": f.hex("storeId", 16), "keyVersion": f.key_version(),
          "time": f.integer("time")}
    if "timeText" in f.obj and f.obj["timeText"] != _iso(cp["time"]):
        raise ValueError(f"checkpoint field timeText is not the signed time ({_iso(cp['time'])}); the checkpoint was edited")
    cp.update(seq=f.integer("seq"), chainHead=f.hex("chainHead", 32), merkleRoot=f.hex("merkleRoot", 32),
              publicKey=f.hex("publicKey", 32), signature=f.hex("signature", 64))
    return cp


def checkpoint_invalidity(cp: dict, keys: dict[int, bytes]) -> str | None:
    """Why a checkpoint (read by read_checkpoint, or built from a stored row) is not valid under
    `keys` (section 16.1), or None."""
    if cp["keyVersion"] not in keys:
        return f"it is signed with checkpoint key version {cp['keyVersion']}, which the public key file lacks"
    if bytes.fromhex(cp["publicKey"]) != keys[cp["keyVersion"]]:
        return (f"it names a different public key for version {cp['keyVersion']} than the public key file "
                "(signed by another key)")
    if cp["seq"] < 1:
        return f"its seq {cp['seq']} is below 1"
    if not ed25519_verify(keys[cp["keyVersion"]], statement(cp), bytes.fromhex(cp["signature"])):
        return "its Ed25519 signature does not verify (the checkpoint was changed or forged)"
    return None


# ------------------------------------------------------------------------------------------
# Export statements (section 17.3)
# ------------------------------------------------------------------------------------------

FILTER_KEYS = ["tenant", "actor", "action", "resourceType", "resourceId", "outcome", "severity", "correlationId",
               "fromSeq", "toSeq", "recordedFrom", "recordedBefore", "occurredFrom", "occurredBefore"]
INTEGER_FILTER_KEYS = {"fromSeq", "toSeq", "recordedFrom", "recordedBefore", "occurredFrom", "occurredBefore"}
OUTCOMES = {"success": 0, "failure": 1, "denied": 2, "error": 3}
SEVERITIES = {"info": 0, "notice": 1, "warning": 2, "critical": 3}
FIELD_BITS = {"actor": 1, "source": 2, "details": 4}


def read_manifest_filter(f) -> dict:
    """The manifest's filter, checked as section 17.3 says; raises ValueError(why)."""
    if not isinstance(f, dict):
        raise ValueError("it is not a JSON object")
    for key in sorted(f):
        if key not in FILTER_KEYS:
            raise ValueError(f"it has a key `{key}` that no export filter has")
    for key in FILTER_KEYS:
        if key not in f:
            raise ValueError(f"it lacks the key `{key}` (null when that filter is not used)")
    for key in FILTER_KEYS:
        v = f[key]
        if v is not None and not (_is_int(v) if key in INTEGER_FILTER_KEYS else isinstance(v, str)):
            raise ValueError(f"its `{key}` has the wrong type")
    if f["outcome"] is not None and f["outcome"] not in OUTCOMES:
        raise ValueError(f"its outcome `{f['outcome']}` is not success, failure, denied or error")
    if f["severity"] is not None and f["severity"] not in SEVERITIES:
        raise ValueError(f"its severity `{f['severity']}` is not info, notice, warning or critical")
    low, high = f["fromSeq"], f["toSeq"]
    if not ((low is None and high is None) or (low is not None and high is not None and low <= high)):
        raise ValueError("fromSeq and toSeq must both be null, or integers with fromSeq ≤ toSeq")
    return f


def filter_encoding(f: dict, redacted_mask: int) -> bytes:
    """FILTER_ENC of section 17.3, from a filter read by read_manifest_filter."""
    def s(key):
        return opt_str(None if f[key] is None else f[key].encode("utf-8"))

    def code(table, key):
        return b"\x00" if f[key] is None else b"\x01" + bytes([table[f[key]]])
    seqs = b"\x00" if f["fromSeq"] is None else b"\x01" + i64(f["fromSeq"]) + i64(f["toSeq"])
    return (s("tenant") + s("actor") + s("action") + s("resourceType") + s("resourceId")
            + code(OUTCOMES, "outcome") + code(SEVERITIES, "severity") + s("correlationId") + seqs
            + opt_i64(f["recordedFrom"]) + opt_i64(f["recordedBefore"]) + opt_i64(f["occurredFrom"])
            + opt_i64(f["occurredBefore"]) + bytes([redacted_mask]))


def seqs_hash(seqs: list[int]) -> bytes:
    return sha256(b"".join(i64(x) for x in seqs))


def export_statement_message(st: dict) -> bytes:
    """EXPT_MSG, the signed bytes of an export statement (section 17.3): 180 in v1, 212 in v2."""
    v2 = st.get("erasedHash") is not None
    return ((b"ADB2EXPT" if v2 else b"ADB1EXPT") + bytes.fromhex(st["storeId"]) + i64(st["checkpointSeq"])
            + bytes.fromhex(st["checkpointHash"]) + bytes.fromhex(st["filterHash"]) + st["entryCount"].to_bytes(8, "big")
            + bytes.fromhex(st["seqsHash"]) + i64(st["createdAt"]) + u32(st["keyVersion"]) + bytes.fromhex(st["publicKey"])
            + (bytes.fromhex(st["erasedHash"]) if v2 else b""))


def erased_hash(erased: list[tuple[int, int]]) -> bytes:
    """SHA256(ERASED_ENC) (section 17.3): i64(seq) || u8(mask) of each entry with a mask, by seq."""
    return sha256(b"".join(i64(seq) + bytes([mask]) for seq, mask in sorted(erased) if mask))


STATEMENT_KEYS = {"format", "storeId", "checkpointSeq", "checkpointHash", "filterHash", "entryCount", "seqsHash",
                  "createdAt", "keyVersion", "publicKey", "signature"}
STATEMENT_V1, STATEMENT_V2 = "auditdb-export-statement v1", "auditdb-export-statement v2"


def read_statement(data: bytes) -> dict:
    """Parses statement.json (sections 17.3 and 18); raises ValueError(why), checking the fields
    in the reference's order."""
    f = Fields(data, "export statement", "an", [STATEMENT_V2, STATEMENT_V1],
               lambda fmt: STATEMENT_KEYS | ({"erasedHash"} if fmt == STATEMENT_V2 else set()),
               "it holds only its signed fields")
    v2 = f.obj.get("format") == STATEMENT_V2
    st = {"format": STATEMENT_V2 if v2 else STATEMENT_V1, "storeId": f.hex("storeId", 16), "keyVersion": f.key_version(),
          "entryCount": f.integer("entryCount")}
    if st["entryCount"] < 0:
        raise ValueError("export statement field entryCount must not be negative")
    st.update(checkpointSeq=f.integer("checkpointSeq"), checkpointHash=f.hex("checkpointHash", 32),
              filterHash=f.hex("filterHash", 32), seqsHash=f.hex("seqsHash", 32), createdAt=f.integer("createdAt"),
              publicKey=f.hex("publicKey", 32), signature=f.hex("signature", 64),
              erasedHash=f.hex("erasedHash", 32) if v2 else None)
    return st


def statement_invalidity(st: dict, keys: dict[int, bytes]) -> str | None:
    v = st["keyVersion"]
    if v not in keys:
        return f"it is signed with checkpoint key version {v}, which the public key file lacks"
    if bytes.fromhex(st["publicKey"]) != keys[v]:
        return f"it names a different public key for version {v} than the public key file (signed by another key)"
    if not ed25519_verify(keys[v], export_statement_message(st), bytes.fromhex(st["signature"])):
        return "its Ed25519 signature does not verify (the statement was changed or forged)"
    return None


def field_names(mask: int) -> str:
    names = [n for n, bit in FIELD_BITS.items() if mask & bit]
    return ", ".join(names) if names else "none"


def filter_mismatch(f: dict, values: dict, actor: tuple) -> str | None:
    """Section 17.2 step 4, last check: the first condition of the signed filter, in the order of
    17.1's table, that the entry's shown values fail, in words; None if none does. `actor` is
    ("value", text or None) when shown, ("hidden", None) when withheld or erased: not judged."""
    def quoted(text):
        return "null" if text is None else sj.json_quoted(text)

    def text(name, shown):
        wanted = f[name]
        if wanted is None or (shown is not None and shown.encode("utf-8", "surrogatepass") == wanted.encode("utf-8", "surrogatepass")):
            return None
        return f"its {name} is {quoted(shown)}, not {quoted(wanted)}"

    def time_range(name, value, low, high):
        if low is None and high is None:
            return None
        if value is not None and (low is None or value >= low) and (high is None or value < high):
            return None
        return (f"its {name} is {'null' if value is None else value}, not from {'any time' if low is None else low}"
                f" up to before {'any time' if high is None else high}")

    why = text("tenant", values["tenant"])
    if not why and actor[0] == "value":
        why = text("actor", actor[1])
    why = why or text("action", values["action"]) or text("resourceType", values["resourceType"]) \
        or text("resourceId", values["resourceId"])
    if why:
        return why
    for name, codes in (("outcome", OUTCOMES), ("severity", SEVERITIES)):
        if f[name] is not None and codes[f[name]] != values[name]:
            return f"its {name} is code {values[name]}, not {f[name]} (code {codes[f[name]]})"
    why = text("correlationId", values["correlationId"])
    if why:
        return why
    if f["fromSeq"] is not None and not f["fromSeq"] <= values["seq"] <= f["toSeq"]:
        return f"its seq is outside {f['fromSeq']}...{f['toSeq']}"
    return (time_range("recordedAt", values["recordedAt"], f["recordedFrom"], f["recordedBefore"])
            or time_range("occurredAt", values["occurredAt"], f["occurredFrom"], f["occurredBefore"]))


def compare_statement(st: dict, cp: dict, manifest: dict, count: int, seqs: list[int], redacted_mask: int | None):
    """What in the bundle differs from what the statement signs, and the signed redaction mask."""
    out, signed_mask = [], None
    if bytes.fromhex(st["storeId"]) != bytes.fromhex(cp["storeId"]):
        out.append(f"store: the statement is about store {st['storeId'].lower()}, checkpoint.json about store {cp['storeId'].lower()}")
    if st["checkpointSeq"] != cp["seq"] or bytes.fromhex(st["checkpointHash"]) != sha256(statement(cp)):
        out.append(f"checkpoint: the statement binds another checkpoint (seq {st['checkpointSeq']}) than checkpoint.json "
                   f"(seq {cp['seq']}): it belongs to another export, or the checkpoint was replaced")
    try:
        f = read_manifest_filter(manifest.get("filter"))
    except ValueError as e:
        out.append(f"filter: the manifest's filter cannot be read: {e}")
    else:
        # Every redaction set, in the order actor, source, details are added (the reference's order).
        masks = [0]
        for bit in FIELD_BITS.values():
            masks += [m | bit for m in masks]
        signed_mask = next((m for m in masks if sha256(filter_encoding(f, m)) == bytes.fromhex(st["filterHash"])), None)
        if signed_mask is not None and signed_mask == redacted_mask:
            pass
        elif signed_mask is not None:
            shown = "an unreadable set" if redacted_mask is None else field_names(redacted_mask)
            out.append(f"redaction set: the manifest names {shown} as withheld, the statement signs {field_names(signed_mask)}")
        else:
            out.append("filter: the manifest's filter differs from the one the statement signs (the selection was changed)")
    if st["entryCount"] != count or count < 0:
        out.append(f"entryCount: the statement signs {st['entryCount']} entries, the manifest states {count}")
    created = manifest.get("createdAt")
    if not _is_int(created) or created != st["createdAt"]:
        stated = "nothing" if "createdAt" not in manifest else str(created) if _is_int(created) else "a value that is not an integer"
        out.append(f"createdAt: the statement signs {st['createdAt']}, the manifest states {stated}")
    if seqs_hash(seqs) != bytes.fromhex(st["seqsHash"]):
        out.append("seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)")
    return out, signed_mask


# ------------------------------------------------------------------------------------------
# Bundles (section 17)
# ------------------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


ENTRY_KEYS = {"seq", "recordedAt", "occurredAt", "originRef", "tenant", "action", "resourceType", "resourceId",
              "correlationId", "outcome", "severity", "origin", "formatVersion", "keyVersion", "actor", "source",
              "details", "leafHash", "proof"}
MANIFEST_KEYS = {"format", "storeId", "checkpointSeq", "entryCount", "seqs", "redacted", "filter", "createdAt"}

# The bounds of section 17.4.
MAXIMUM_ENTRIES = 1_000_000
MAXIMUM_ENTRY_LINE_BYTES = 1 << 20
MAXIMUM_ENTRIES_FILE_BYTES = 16 << 30
MAXIMUM_MANIFEST_BYTES = 24 << 20
MAXIMUM_SIGNED_FILE_BYTES = 65_536
FINDING_LIMIT = 1_000


MASK_METHODS = {"partial", "hash"}


def is_mask_rule_of(text, field: str) -> bool:
    """Whether text is a masking rule PATH=METHOD of field (docs/masking.md): field, or
    details.KEY[.KEY...] (non-empty keys, at most 31, no character output escapes, section 18.6)."""
    if not isinstance(text, str) or "=" not in text:
        return False
    path, method = text.rsplit("=", 1)
    parts = path.split(".")
    if method not in MASK_METHODS or parts[0] != field or any(sj.needs_escape(ord(ch)) for ch in path):
        return False
    members = parts[1:]
    return (not members or field == "details") and all(members) and len(members) <= 31


def masked_problem(m, name: str) -> str | None:
    """Section 17.6: a withheld field's masked rendering, unproven; only its shape is checked."""
    if (not isinstance(m, dict) or set(m) != {"rules", "shown", "proven"} or m["proven"] is not False
            or not isinstance(m["shown"], str) or not isinstance(m["rules"], list) or not 1 <= len(m["rules"]) <= 256):
        return f"field {name} has a masked display that is not {{\"rules\":[…],\"shown\":…,\"proven\":false}}"
    if not all(is_mask_rule_of(r, name) for r in m["rules"]):
        return f"field {name} has a masked display whose rules are not rules of {name}"
    return None


def check_entry(e: dict, seq: int, cp: dict) -> tuple[str, str] | None:
    """Step 4 of section 17.2 for one entry read strictly; None if it verifies."""
    size, root, store_id = cp["seq"], bytes.fromhex(cp["merkleRoot"]), bytes.fromhex(cp["storeId"])

    def malformed(what):
        return "bundle-malformed", f"entry seq {seq}: {what}"
    unknown = sorted(set(e) - ENTRY_KEYS)
    if unknown:
        return malformed(f"unknown field {sj.json_quoted(unknown[0])}; an entry holds only its proven fields")
    for name, _ in FIELDS:
        f = e.get(name)
        if isinstance(f, dict):
            allowed = ({"withheld", "commitment", "masked"} if f.get("withheld") is True  # masked: section 17.6
                       else {"erased", "commitment"} if f.get("erased") is True  # section 21.5
                       else {"value", "commitment"} if "value" in f and f["value"] is None  # a NULL has no nonce
                       else {"value", "nonce", "commitment"})
            extra = sorted(set(f) - allowed)
            if extra:
                return malformed(f"field {name} has an unexpected key {sj.json_quoted(extra[0])}")
            if "masked" in f:
                problem = masked_problem(f["masked"], name)
                if problem:
                    return malformed(problem)
    if not 1 <= seq <= size:
        return "proof-invalid", f"entry seq {seq} is outside the checkpoint (seqs 1...{size})"
    ints = ["recordedAt", "outcome", "severity", "origin", "formatVersion", "keyVersion"]
    if (not all(_is_int(e.get(n)) for n in ints)
            or not all(n in e and (e[n] is None or _is_int(e[n])) for n in ["occurredAt", "originRef"])
            or not isinstance(e.get("action"), str)
            or not all(n in e and (e[n] is None or isinstance(e[n], str)) for n in ["tenant", "resourceType", "resourceId", "correlationId"])
            or not all(0 <= e[n] <= 255 for n in ["outcome", "severity", "origin", "formatVersion"])
            or not 0 <= e["keyVersion"] < 2**32):
        return malformed("a value is missing or of the wrong type")
    commitments = b""
    withheld = []
    for name, fid in FIELDS:
        f = e.get(name)
        if not isinstance(f, dict) or not sj.is_lower_hex(f.get("commitment"), 32):
            return malformed(f"{name} has no 32-byte commitment")
        c = bytes.fromhex(f["commitment"])
        if f.get("withheld") is True or f.get("erased") is True:  # erased in the store: section 21.5
            if f.get("withheld") is True:
                withheld.append(name)
            commitments += c
            continue
        if "value" in f and f["value"] is None:
            expected = bytes(32)
        elif isinstance(f.get("value"), str) and sj.is_lower_hex(f.get("nonce"), 32):
            expected = commitment(bytes.fromhex(f["nonce"]), fid, f["value"].encode("utf-8"))
        else:
            return malformed(f"{name} needs a value and a 32-byte nonce, or withheld: true, or erased: true")
        if expected != c:
            return "commitment-mismatch", f"entry seq {seq}: the shown {name} does not match its commitment (the value or its nonce was changed)"
        commitments += c
    leaf = leaf_hash(enc_row(store_id, e, commitments))
    if not sj.is_lower_hex(e.get("leafHash"), 32) or bytes.fromhex(e["leafHash"]) != leaf:
        return "entry-changed", (f"entry seq {seq}: its values do not hash to its leaf hash: a value"
                                 + (f" or the commitment of a withheld field ({', '.join(withheld)})" if withheld else "")
                                 + " was changed")
    proof_texts = e.get("proof")
    if not isinstance(proof_texts, list) or not all(isinstance(p, str) for p in proof_texts):
        return malformed("no proof")
    if not all(sj.is_lower_hex(p, 32) for p in proof_texts):
        return "proof-invalid", f"entry seq {seq}: its inclusion proof holds a value that is not a 32-byte hash (64 lowercase hex digits)"
    proof = [bytes.fromhex(p) for p in proof_texts]
    need = proof_length(seq - 1, size)
    if len(proof) != need:
        return "proof-invalid", f"entry seq {seq}: its inclusion proof has {len(proof)} hashes; leaf {seq - 1} of a tree of {size} needs {need}"
    if not verify_inclusion(leaf, seq - 1, size, proof, root):
        return "proof-invalid", f"entry seq {seq}: its inclusion proof does not lead to the Merkle root of the checkpoint at seq {size} (the proof was changed)"
    return None


class FileProblem(Exception):
    """A bundle file that cannot be used; str() is the finding's message (section 17.4)."""


def _open_input(path: pathlib.Path, name: str, limit: int) -> int:
    """Opens without waiting (a FIFO or device is refused at once) a regular file of at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileProblem(f"{name} is missing")
    except OSError:
        raise FileProblem(f"{name} could not be read")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileProblem(f"{name} is not a regular file (a FIFO, device or directory is refused)")
    if info.st_size > limit:
        os.close(fd)
        raise FileProblem(f"{name} is larger than {limit} bytes")
    return fd


def read_bundle_file(bundle: pathlib.Path, name: str, limit: int) -> bytes:
    return read_input_file(bundle / name, name, limit)


def read_input_file(path, name: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, opened without waiting; raises
    FileProblem naming it `name` (a FIFO, device or directory is refused at once)."""
    fd = _open_input(path, name, limit)
    try:
        out = bytearray()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                raise FileProblem(f"{name} could not be read")
            if not chunk:
                return bytes(out)
            out += chunk
            if len(out) > limit:
                raise FileProblem(f"{name} is larger than {limit} bytes")
    finally:
        os.close(fd)


def entry_lines(bundle: pathlib.Path):
    """The lines of entries.jsonl (bytes before each LF; bytes after the last LF are a last line),
    within the bounds of section 17.4, checked while reading. Yields (number, line); raises
    FileProblem when a bound is passed."""
    name = "entries.jsonl"
    fd = _open_input(bundle / name, name, MAXIMUM_ENTRIES_FILE_BYTES)
    try:
        buffer, number, total, ended = b"", 0, 0, False
        while True:
            newline = buffer.find(b"\n")
            if newline >= 0 or (ended and buffer):
                end = newline if newline >= 0 else len(buffer)
                if end > MAXIMUM_ENTRY_LINE_BYTES:
                    raise FileProblem(f"{name} line {number + 1} is longer than {MAXIMUM_ENTRY_LINE_BYTES} bytes")
                if number >= MAXIMUM_ENTRIES:
                    raise FileProblem(f"{name} has more than {MAXIMUM_ENTRIES} lines")
                number += 1
                yield number, buffer[:end]
                buffer = buffer[end + 1:]
                continue
            if len(buffer) > MAXIMUM_ENTRY_LINE_BYTES:
                raise FileProblem(f"{name} line {number + 1} is longer than {MAXIMUM_ENTRY_LINE_BYTES} bytes")
            if ended:
                return
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                raise FileProblem(f"{name} could not be read")
            total += len(chunk)
            if total > MAXIMUM_ENTRIES_FILE_BYTES:
                raise FileProblem(f"{name} is larger than {MAXIMUM_ENTRIES_FILE_BYTES} bytes")
            if chunk:
                buffer += chunk
            else:
                ended = True
    finally:
        os.close(fd)


def read_manifest(data: bytes, cp: dict):
    """Step 2 of section 17.2: (manifest, seqs, count, redacted mask or None, findings); raises
    FileProblem with the message of the bundle-malformed finding that stops verification."""
    name = "manifest.json"
    try:
        manifest = sj.read_object(data, sj.MANIFEST)
    except sj.JSONError as e:
        raise FileProblem(f"{name}: {e}")
    shape = f"{name} is not an `auditdb-export v1` or `auditdb-export v2` manifest with seqs and entryCount"
    listed, count = manifest.get("seqs"), manifest.get("entryCount")
    if manifest.get("format") not in ("auditdb-export v1", export_v2.FORMAT_V2) or not isinstance(listed, list) or not _is_int(count):
        raise FileProblem(shape)
    if not all(_is_int(x) for x in listed):
        raise FileProblem(shape)
    if len(listed) > MAXIMUM_ENTRIES:
        raise FileProblem(f"{name} lists {len(listed)} seqs; a bundle holds at most {MAXIMUM_ENTRIES}")
    for previous, seq in zip(listed, listed[1:]):
        if seq <= previous:
            raise FileProblem(f"{name}: seqs must be strictly increasing, but {seq} follows {previous}")
    findings = []
    if manifest.get("storeId") != cp["storeId"] or not _is_int(manifest.get("checkpointSeq")) or manifest["checkpointSeq"] != cp["seq"]:
        findings.append(("manifest-mismatch", "the manifest names another store or checkpoint than checkpoint.json "
                         f"(store {cp['storeId']}, seq {cp['seq']})"))
    if count != len(listed):
        findings.append(("manifest-mismatch", f"the manifest states {count} entries but lists {len(listed)} seqs"))
    unknown = sorted(set(manifest) - MANIFEST_KEYS)
    if unknown:
        findings.append(("bundle-malformed", f"{name} has an unknown field {sj.json_quoted(unknown[0])}"))
    redacted_mask = 0
    names = manifest.get("redacted")
    if not isinstance(names, list):
        redacted_mask = None
    else:
        for n in names:
            if not isinstance(n, str) or n not in FIELD_BITS or redacted_mask & FIELD_BITS[n]:
                redacted_mask = None
                break
            redacted_mask |= FIELD_BITS[n]
    if redacted_mask is None:
        findings.append(("bundle-malformed", f"{name}: redacted must list distinct field names among actor, source, details"))
    return manifest, listed, count, redacted_mask, findings


def verify_bundle(path: pathlib.Path, keys: dict[int, bytes], require_statement: bool = False, result: dict | None = None
                  ) -> tuple[list[tuple[str, int | None, str]], int]:
    """Section 17.2. Returns (findings, entries verified); a finding is (kind, seq or None, message).
    Stops at FINDING_LIMIT findings. If `result` is given, it receives "statement" (the statement
    whose signature verifies, or None) and "redacted" (the manifest's redaction set as a mask, or None)."""
    findings: list[tuple[str, int | None, str]] = []
    result = {} if result is None else result
    result.update(statement=None, redacted=None, erased_seqs=[])  # erased_seqs: unproven erased labels

    def add(kind, seq, message):
        if len(findings) < FINDING_LIMIT:
            findings.append((kind, seq, message))
    # 1. The checkpoint.
    try:
        cp = read_checkpoint(read_bundle_file(path, "checkpoint.json", MAXIMUM_SIGNED_FILE_BYTES))
    except FileProblem as e:
        return [("checkpoint-invalid", None, str(e))], 0
    except ValueError as e:
        return [("checkpoint-invalid", None, f"checkpoint.json: {e}")], 0
    why = checkpoint_invalidity(cp, keys)
    if why:
        return [("checkpoint-invalid", None, f"the checkpoint at seq {cp['seq']} is invalid: {why}")], 0
    # 2. The manifest.
    try:
        manifest, listed, count, redacted_mask, manifest_findings = read_manifest(
            read_bundle_file(path, "manifest.json", MAXIMUM_MANIFEST_BYTES), cp)
    except FileProblem as e:
        return [("bundle-malformed", None, str(e))], 0
    for kind, message in manifest_findings:
        add(kind, None, message)
    result["redacted"] = redacted_mask
    # 3. The export statement (section 17.3).
    attested_mask, signed_filter = None, None
    erased_shown: list[tuple[int, int]] = []
    try:
        data = read_bundle_file(path, "statement.json", MAXIMUM_SIGNED_FILE_BYTES)
    except FileProblem as e:
        if str(e) != "statement.json is missing":
            add("statement-invalid", None, str(e))
        elif require_statement:
            add("statement-missing", None, "the bundle has no statement.json, and a signed statement was required: "
                "nothing attests that the export is complete. Export it again with the checkpoint signing key "
                "(`auditdb export --signing-key FILE`)")
    else:
        try:
            st = read_statement(data)
        except ValueError as e:
            add("statement-invalid", None, f"statement.json: {e}")
        else:
            why = statement_invalidity(st, keys)
            if why:
                add("statement-invalid", None, f"the export statement is invalid: {why}")
            else:
                result["statement"] = st
                mismatches, attested_mask = compare_statement(st, cp, manifest, count, listed, redacted_mask)
                if attested_mask is not None:  # the manifest's filter is the signed one: its seq range
                    signed_filter = f = read_manifest_filter(manifest.get("filter"))
                    result["attested_seqs"] = None if f["fromSeq"] is None else (f["fromSeq"], f["toSeq"])
                for m in mismatches:
                    add("statement-mismatch", None, m)
    # 4. The entries.
    listed_set, seen, previous, verified = set(listed), set(), 0, 0
    leaves, reordered = [], False  # v2: the leaf of each listed entry whose own checks passed
    try:
        for number, line in entry_lines(path):
            if len(findings) >= FINDING_LIMIT:
                break
            if not line:
                continue
            v2 = manifest["format"] == export_v2.FORMAT_V2
            try:
                e = sj.read_array(line, sj.BUNDLE_ENTRY) if v2 else sj.read_object(line, sj.BUNDLE_ENTRY)
            except sj.JSONError as err:
                add("bundle-malformed", None, f"entries.jsonl line {number}: {err}")
                continue
            seq = (e[0] if e else None) if v2 else e.get("seq")
            if not _is_int(seq):
                add("bundle-malformed", None, f"entries.jsonl line {number} is not an entry: it has no integer seq")
                continue
            if seq in seen:
                add("entry-duplicate", seq, f"seq {seq} appears more than once (line {number})")
                continue
            seen.add(seq)
            if seq < previous:
                add("entry-out-of-order", seq, f"entry seq {seq} (line {number}) comes after seq {previous}: the entries were reordered")
                reordered = True
            previous = max(previous, seq)
            if seq not in listed_set:
                add("entry-added", seq, f"entry seq {seq} (line {number}) is not listed in the manifest: it was added")
                continue
            if v2:
                problem, checked = export_v2.check_entry(e, seq, cp, enc_row, leaf_hash)
                if checked:
                    leaves.append(checked[0])
                    withheld, erased = checked[1], checked[2]
                    values = dict(zip(export_v2.ELEMENTS[:14], e[:14]))
                    a = e[14]
                    actor = (("value", None) if a is None else ("value", a[0]) if isinstance(a, list) else ("hidden", None))
            else:
                problem = check_entry(e, seq, cp)
                withheld = sum(bit for name, bit in FIELD_BITS.items() if isinstance(e.get(name), dict) and e[name].get("withheld") is True)
                # An erased field (section 21.5) is compatible with every redaction set.
                erased = sum(bit for name, bit in FIELD_BITS.items() if isinstance(e.get(name), dict) and e[name].get("erased") is True)
                values = e
                a = e.get("actor") if isinstance(e.get("actor"), dict) else {}
                actor = ("hidden", None) if a.get("withheld") is True or a.get("erased") is True else ("value", a.get("value"))
            if not problem and erased:
                erased_shown.append((seq, erased))  # section 17.2 step 5
            if problem:
                add(problem[0], seq, problem[1])
            elif attested_mask is not None and withheld != attested_mask & ~erased:
                add("statement-mismatch", seq, f"entry seq {seq} withholds {field_names(withheld)}, "
                    f"but the statement attests that {field_names(attested_mask)} was withheld")
            elif attested_mask is None and redacted_mask is not None and withheld != redacted_mask & ~erased:
                add("manifest-mismatch", seq, f"entry seq {seq} withholds {field_names(withheld)}, "
                    f"but the manifest says {field_names(redacted_mask)} was withheld")
            elif signed_filter is not None and (why := filter_mismatch(signed_filter, values, actor)):
                add("statement-mismatch", seq, f"filter: entry seq {seq} does not match the filter the statement signs: {why}")
            else:
                verified += 1
    except FileProblem as e:
        # The file itself breaks a bound (or is missing): stop, without entry-missing findings.
        add("bundle-malformed", None, str(e))
        return findings, verified
    for seq in listed:
        if seq not in seen:
            add("entry-missing", seq, f"the manifest lists seq {seq} but the bundle has no entry for it: it was removed")
    # 5. A v2 statement attests the erased fields (section 17.2 step 5).
    st = result["statement"]
    if st is not None and st.get("erasedHash") is not None:
        if erased_hash(erased_shown) != bytes.fromhex(st["erasedHash"]):
            add("statement-mismatch", None, "erased: the fields the entries show as erased differ from the ones the statement "
                "signs (a shown or withheld field was relabelled erased, or an erased one relabelled)")
    else:
        result["erased_seqs"] = sorted(seq for seq, _ in erased_shown)  # not attested: unproven
    if manifest["format"] == export_v2.FORMAT_V2:
        # 6. The multiproof (section 17.5): checked only when every listed entry gave its leaf, in
        # the manifest's order; only then is any entry proven.
        proven = False
        if len(findings) < FINDING_LIMIT and not reordered and len(leaves) == len(listed):
            problem = multiproof_problem(path, listed, leaves, cp)
            if problem:
                add(problem[0], None, problem[1])
            else:
                proven = True
        if not proven:
            verified = 0
    return findings, verified


def multiproof_problem(path: pathlib.Path, listed: list[int], leaves: list[bytes], cp: dict):
    """Step 5 of section 17.5: multiproof.bin's size, then the root; None or (kind, message)."""
    name = export_v2.MULTIPROOF_FILE
    try:
        fd = _open_input(path / name, name, export_v2.MAXIMUM_MULTIPROOF_BYTES)
    except FileProblem as e:
        return "bundle-malformed", str(e)
    try:
        length = os.fstat(fd).st_size

        def read():
            out = bytearray()
            while len(out) <= length:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
            return bytes(out)
        return export_v2.check_multiproof(length, read, listed, leaves, cp)
    except OSError:
        return "bundle-malformed", f"{name} could not be read"
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------
# Test vectors (PUBLIC TEST-ONLY KEYS)
# ------------------------------------------------------------------------------------------

TEST_SEED = bytes(range(0x40, 0x60))  # checkpoint signing key version 1 of the vectors: never use it
TEST_TIME = 1795439710000000          # 2026-11-23T13:15:10Z
BUNDLE_SEQS = [2, 4]
BUNDLE_REDACT = ["details"]
# Selects exactly BUNDLE_SEQS from the four vector rows (tenant acme-eu, seqs 2...4, recorded from row 2 on).
BUNDLE_FILTER = {"tenant": "acme-eu", "actor": None, "action": None, "resourceType": None, "resourceId": None,
                 "outcome": None, "severity": None, "correlationId": None, "fromSeq": 2, "toSeq": 4,
                 "recordedFrom": 1795439703000000, "recordedBefore": None, "occurredFrom": None, "occurredBefore": None}


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian calendar, astronomical years (year 0 is 1 BC),
    for a count of days since 1970-01-01 (H. Hinnant's civil_from_days, floor division)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097                                   # 0 ... 146096
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365  # 0 ... 399
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)          # 0 ... 365
    mp = (5 * doy + 2) // 153                                # 0 ... 11, from March
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _iso(us: int) -> str:
    """A time in µs since the Unix epoch (any signed 64-bit value) as the reference renders it
    (checkpoint timeText, section 16.5): floor seconds and a 0...999999 fraction; the proleptic
    Gregorian date with astronomical years, written `-` when negative and then at least 4 digits
    (0001, 0000, -0001, 10000); YYYY-MM-DDTHH:MM:SS.ffffffZ. No datetime: it stops at year 1 and 9999."""
    seconds, fraction = divmod(us, 1_000_000)
    days, second_of_day = divmod(seconds, 86_400)
    year, month, day = civil_from_days(days)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    return (f"{'-' if year < 0 else ''}{abs(year):04d}-{month:02d}-{day:02d}"
            f"T{hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}Z")


def checkpoint_json(cp: dict) -> str:
    keys = ["format", "storeId", "seq", "chainHead", "merkleRoot", "time", "timeText", "keyVersion", "publicKey", "signature"]
    return json.dumps({k: cp[k] for k in keys}, separators=(",", ":"))


def build_vectors() -> tuple[dict, dict[str, str]]:
    base = json.loads((VECTORS_DIR / "vectors.json").read_text(encoding="utf-8"))
    rows = base["rows"]
    leaves = [leaf_hash(bytes.fromhex(r["enc_row"])) for r in rows]
    public = ed25519_public_key(TEST_SEED)
    cp = {"format": "auditdb-checkpoint v1", "storeId": base["store_id"], "seq": len(rows), "chainHead": rows[-1]["mac"],
          "merkleRoot": merkle_root(leaves).hex(), "time": TEST_TIME, "timeText": _iso(TEST_TIME), "keyVersion": 1,
          "publicKey": public.hex()}
    msg = statement(cp)
    cp["signature"] = ed25519_sign(TEST_SEED, msg).hex()
    vectors = {
        "vectors_format": "auditdb-checkpoint-vectors", "vectors_version": 1,
        "WARNING": "PUBLIC TEST-ONLY KEYS. The checkpoint signing seed below is published: anyone can forge checkpoints with it. Never use it.",
        "generator": "docs/verifier/auditdb_verify_export.py --emit-vectors",
        "rows_from": "vectors.json (rows[i].enc_row)",
        "checkpoint_key": {"version": 1, "seed": TEST_SEED.hex(), "public_key": public.hex()},
        "leaves": [lf.hex() for lf in leaves],
        "roots": {str(n): merkle_root(leaves[:n]).hex() for n in range(1, len(leaves) + 1)},
        "inclusion_proofs": [{"index": m, "size": n, "proof": [h.hex() for h in inclusion_proof(m, leaves[:n])]}
                             for n in range(1, len(leaves) + 1) for m in range(n)],
        "checkpoint": cp, "statement": msg.hex(), "checkpoint_json": checkpoint_json(cp),
        "public_key_file_text": "# PUBLIC TEST-ONLY KEY - never use it for a real store.\nauditdb-checkpoint-pubkey v1\n"
                                f"key 1 {public.hex()}\n",
    }
    # The bundle: rows BUNDLE_SEQS, BUNDLE_REDACT withheld.
    lines = []
    for seq in BUNDLE_SEQS:
        r = rows[seq - 1]
        c = r["columns"]
        e = {"seq": seq, "recordedAt": c["recorded_at"], "occurredAt": c["occurred_at"], "tenant": c["tenant"],
             "action": c["action"], "resourceType": c["resource_type"], "resourceId": c["resource_id"],
             "outcome": c["outcome"], "severity": c["severity"], "correlationId": c["correlation_id"],
             "origin": c["origin"], "originRef": c["origin_ref"], "formatVersion": c["format_version"],
             "keyVersion": c["key_version"]}
        for name, _ in FIELDS:
            com = r["commitments"][name]
            if name in BUNDLE_REDACT:
                e[name] = {"withheld": True, "commitment": com}
            elif c[name] is None:
                e[name] = {"value": None, "commitment": com}
            else:
                e[name] = {"value": c[name], "nonce": r["nonces"][name], "commitment": com}
        e["leafHash"] = leaves[seq - 1].hex()
        e["proof"] = [h.hex() for h in inclusion_proof(seq - 1, leaves)]
        lines.append(json.dumps(e, separators=(",", ":"), ensure_ascii=False))
    manifest = {"format": "auditdb-export v1", "storeId": base["store_id"], "checkpointSeq": len(rows),
                "entryCount": len(BUNDLE_SEQS), "seqs": BUNDLE_SEQS, "redacted": BUNDLE_REDACT,
                "filter": BUNDLE_FILTER, "createdAt": TEST_TIME}
    # The export statement (section 17.3): the filter does select exactly BUNDLE_SEQS from the rows.
    mask = sum(FIELD_BITS[n] for n in BUNDLE_REDACT)
    fenc = filter_encoding(read_manifest_filter(BUNDLE_FILTER), mask)
    senc = b"".join(i64(x) for x in BUNDLE_SEQS)
    st = {"format": "auditdb-export-statement v1", "storeId": base["store_id"], "checkpointSeq": cp["seq"],
          "checkpointHash": sha256(msg).hex(), "filterHash": sha256(fenc).hex(), "entryCount": len(BUNDLE_SEQS),
          "seqsHash": sha256(senc).hex(), "createdAt": TEST_TIME, "keyVersion": 1, "publicKey": public.hex()}
    smsg = export_statement_message(st)
    st["signature"] = ed25519_sign(TEST_SEED, smsg).hex()
    st_json = json.dumps(st, separators=(",", ":"))
    vectors["export_statement"] = {
        "filter": BUNDLE_FILTER, "redacted": BUNDLE_REDACT, "filter_encoding": fenc.hex(), "filter_hash": st["filterHash"],
        "seqs": BUNDLE_SEQS, "seqs_encoding": senc.hex(), "seqs_hash": st["seqsHash"], "checkpoint_hash": st["checkpointHash"],
        "message": smsg.hex(), "statement": st, "statement_json": st_json,
    }
    # Statement v2 (section 17.3): the same fields and the erased fields' hash, here as if row 2
    # had its details erased and row 4 its actor and source (masks 4 and 3).
    erased = [(2, 4), (4, 3)]
    eenc = b"".join(i64(seq) + bytes([m]) for seq, m in erased)
    st2 = {k: st[k] for k in ("format", "storeId", "checkpointSeq", "checkpointHash", "filterHash", "entryCount", "seqsHash")}
    st2.update(format=STATEMENT_V2, erasedHash=sha256(eenc).hex(), createdAt=st["createdAt"], keyVersion=st["keyVersion"],
               publicKey=st["publicKey"])
    smsg2 = export_statement_message(st2)
    st2["signature"] = ed25519_sign(TEST_SEED, smsg2).hex()
    vectors["export_statement_v2"] = {
        "erased": [list(x) for x in erased], "erased_encoding": eenc.hex(), "erased_hash": st2["erasedHash"],
        "message": smsg2.hex(), "statement_json": json.dumps(st2, separators=(",", ":")),
    }
    bundle = {"manifest.json": json.dumps(manifest, separators=(",", ":")) + "\n",
              "checkpoint.json": checkpoint_json(cp) + "\n",
              "entries.jsonl": "".join(line + "\n" for line in lines),
              "statement.json": st_json + "\n"}
    return vectors, bundle


def build_bundle_v2(bundle: dict) -> dict[str, bytes]:
    """The same export in format v2 (section 17.5): the same rows, manifest fields and statement
    (which binds no format), entry arrays and one multiproof. Files as bytes."""
    base = json.loads((VECTORS_DIR / "vectors.json").read_text(encoding="utf-8"))
    rows = base["rows"]
    leaves = [leaf_hash(bytes.fromhex(r["enc_row"])) for r in rows]
    lines = []
    for seq in BUNDLE_SEQS:
        r = rows[seq - 1]
        c = r["columns"]
        e = [seq, c["format_version"], c["key_version"], c["recorded_at"], c["occurred_at"], c["tenant"], c["action"],
             c["resource_type"], c["resource_id"], c["outcome"], c["severity"], c["correlation_id"], c["origin"],
             c["origin_ref"]]
        for name, _ in FIELDS:
            if name in BUNDLE_REDACT:
                e.append({"withheld": r["commitments"][name]})
            elif c[name] is None:
                e.append(None)
            else:
                e.append([c[name], r["nonces"][name]])
        lines.append(json.dumps(e, separators=(",", ":"), ensure_ascii=False))
    manifest = json.loads(bundle["manifest.json"])
    manifest["format"] = export_v2.FORMAT_V2
    return {"manifest.json": (json.dumps(manifest, separators=(",", ":")) + "\n").encode(),
            "checkpoint.json": bundle["checkpoint.json"].encode(),
            "entries.jsonl": "".join(line + "\n" for line in lines).encode("utf-8"),
            "multiproof.bin": export_v2.multiproof([x - 1 for x in BUNDLE_SEQS], leaves, merkle_root),
            "statement.json": bundle["statement.json"].encode()}


MASKED_RULE = "details.reason=partial"


def build_bundle_masked(bundle: dict[str, str]) -> dict[str, str]:
    """bundle-masked/: bundle/ with the masked rendering of section 17.6 next to each withheld
    `details` that is not NULL (rule details.reason=partial, docs/masking.md): unproven, so every
    hash, the manifest and the statement stay those of bundle/."""
    base = json.loads((VECTORS_DIR / "vectors.json").read_text(encoding="utf-8"))
    stored = {r["columns"]["seq"]: r["columns"]["details"] for r in base["rows"]}
    import masking
    lines = []
    for line in bundle["entries.jsonl"].splitlines():
        seq = json.loads(line)["seq"]
        details = stored.get(seq)
        if details is not None:
            obj = json.loads(details)
            value = obj["reason"]
            # The member's value replaced, in the stored text, by {"masked":METHOD,"value":SHOWN}.
            start = details.index('"reason":') + len('"reason":')
            end = start + len(sj.canonical_quoted(value))
            assert json.loads(details[start:end]) == value
            shown = details[:start] + '{"masked":"partial","value":' + sj.canonical_quoted(masking.partial(value)) + "}" + details[end:]
            rendering = ',"masked":{"rules":[' + sj.canonical_quoted(MASKED_RULE) + '],"shown":' + sj.canonical_quoted(shown) + ',"proven":false}'
            marker = '"details":{"withheld":true,"commitment":"'
            at = line.index(marker) + len(marker) + 64 + 1  # after the commitment's closing quote
            line = line[:at] + rendering + line[at:]
        lines.append(line)
    return dict(bundle, **{"entries.jsonl": "\n".join(lines) + "\n"})


def emit_vectors() -> None:
    vectors, bundle = build_vectors()
    (VECTORS_DIR / "checkpoints.json").write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (VECTORS_DIR / "bundle").mkdir(exist_ok=True)
    for name, text in bundle.items():
        (VECTORS_DIR / "bundle" / name).write_text(text, encoding="utf-8")
    (VECTORS_DIR / "checkpoint.pub").write_text(vectors["public_key_file_text"], encoding="utf-8")
    (VECTORS_DIR / "bundle-v2").mkdir(exist_ok=True)
    for name, data in build_bundle_v2(bundle).items():
        (VECTORS_DIR / "bundle-v2" / name).write_bytes(data)
    (VECTORS_DIR / "bundle-masked").mkdir(exist_ok=True)
    for name, text in build_bundle_masked(bundle).items():
        (VECTORS_DIR / "bundle-masked" / name).write_text(text, encoding="utf-8")


def selftest() -> list[str]:
    """Checks Ed25519 against RFC 8032, the vectors are current, and tampering is found."""
    failures = []

    def check(ok, what):
        print(("  ok   " if ok else "  FAIL ") + what)
        if not ok:
            failures.append(what)

    # RFC 8032 section 7.1, TEST 1.
    sk = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    pk = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    check(ed25519_public_key(sk) == pk and ed25519_sign(sk, b"") == sig, "Ed25519: RFC 8032 test 1 (key and signature)")
    check(ed25519_verify(pk, b"", sig) and not ed25519_verify(pk, b"x", sig), "Ed25519: verify accepts test 1, rejects a changed message")
    # The identity as public key and as R, S = 0: [0]B = R + [k]A holds for every message, so plain
    # RFC 8032 code accepts it; libsodium (the reference) refuses small-order points, and so must we.
    identity = bytes([1]) + bytes(31)
    check(not ed25519_verify(identity, b"any message", identity + bytes(32)), "Ed25519: a small-order key and R are refused")
    high_s = sig[:32] + (int.from_bytes(sig[32:], "little") + _q).to_bytes(32, "little")
    check(not ed25519_verify(pk, b"", high_s), "Ed25519: S >= L is refused (no malleability)")
    # timeText (section 16.5): every signed 64-bit time, astronomical years of at least 4 digits.
    for us, text in [(-62135596800000000, "0001-01-01T00:00:00.000000Z"), (253402300800000000, "10000-01-01T00:00:00.000000Z"),
                     (-62167219200000001, "-0001-12-31T23:59:59.999999Z"), (-62167219200000000, "0000-01-01T00:00:00.000000Z"),
                     (-1, "1969-12-31T23:59:59.999999Z"), (TEST_TIME, "2026-11-23T13:15:10.000000Z"),
                     (-(1 << 63), "-290308-12-21T19:59:05.224192Z"), ((1 << 63) - 1, "294247-01-10T04:00:54.775807Z")]:
        check(_iso(us) == text, f"timeText of {us} is {text} ({_iso(us)})")
    public = {1: ed25519_public_key(TEST_SEED)}
    for us in (-(1 << 63), -62167219200000001, 253402300800000000, (1 << 63) - 1):
        cp = {"format": "auditdb-checkpoint v1", "storeId": "a0" * 16, "seq": 1, "chainHead": "00" * 32, "merkleRoot": "11" * 32,
              "time": us, "timeText": _iso(us), "keyVersion": 1, "publicKey": public[1].hex()}
        cp["signature"] = ed25519_sign(TEST_SEED, statement(cp)).hex()
        try:
            why = checkpoint_invalidity(read_checkpoint(checkpoint_json(cp).encode()), public)
        except ValueError as e:
            why = str(e)
        check(why is None, f"a checkpoint at time {us} with timeText {cp['timeText']} is valid ({why})")
        try:
            other = cp["timeText"][1:] if us < 0 else "-" + cp["timeText"]
            read_checkpoint(checkpoint_json(dict(cp, timeText=other)).encode())
            why = None
        except ValueError as e:
            why = str(e)
        check(why == f"checkpoint field timeText is not the signed time ({cp['timeText']}); the checkpoint was edited",
              f"... and with the year's sign changed it is refused ({why})")
    vectors, bundle = build_vectors()
    stored = json.loads((VECTORS_DIR / "checkpoints.json").read_text(encoding="utf-8"))
    check(stored == json.loads(json.dumps(vectors, ensure_ascii=False)), "checkpoints.json is current (--emit-vectors)")
    check(all((VECTORS_DIR / "bundle" / n).read_text(encoding="utf-8") == t for n, t in bundle.items()), "bundle/ is current")
    check(all((VECTORS_DIR / "bundle-v2" / n).read_bytes() == b for n, b in build_bundle_v2(bundle).items()),
          "bundle-v2/ is current")
    check(all((VECTORS_DIR / "bundle-masked" / n).read_text(encoding="utf-8") == t for n, t in build_bundle_masked(bundle).items()),
          "bundle-masked/ is current")
    keys = read_public_key_file(VECTORS_DIR / "checkpoint.pub")
    for m in range(9):
        for n in range(m + 1, 9):
            leaves = [sha256(bytes([i])) for i in range(n)]
            if not verify_inclusion(leaves[m], m, n, inclusion_proof(m, leaves), merkle_root(leaves)):
                check(False, f"inclusion proof {m} of {n}")
    result: dict = {}
    findings, verified = verify_bundle(VECTORS_DIR / "bundle", keys, require_statement=True, result=result)
    check(not findings and verified == len(BUNDLE_SEQS), f"the vector bundle verifies ({findings})")
    findings, verified = verify_bundle(VECTORS_DIR / "bundle-masked", keys, require_statement=True)
    check(not findings and verified == len(BUNDLE_SEQS), f"the masked vector bundle (17.6) verifies ({findings})")
    masked_line = (VECTORS_DIR / "bundle-masked" / "entries.jsonl").read_text(encoding="utf-8").splitlines()[0]
    check('"masked":{"rules":["details.reason=partial"],"shown":"{\\"attempt\\":2,\\"reason\\":{\\"masked\\":\\"partial\\",\\"value\\":\\"r***🔒\\"}}","proven":false}'
          in masked_line, "the masked vector bundle shows row 2's details.reason as r***🔒, unproven")
    findings, verified = verify_bundle(VECTORS_DIR / "bundle-v2", keys, require_statement=True)
    check(not findings and verified == len(BUNDLE_SEQS), f"the v2 vector bundle verifies, with the same statement ({findings})")
    check(result["statement"] is not None, "the vector bundle's statement attests completeness")
    import shutil
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        def tampered(edit):
            b = pathlib.Path(d) / "b"
            if b.exists():
                shutil.rmtree(b)
            shutil.copytree(VECTORS_DIR / "bundle", b)
            edit(b)
            return [(k, s) for k, s, _ in verify_bundle(b, keys, require_statement=True)[0]]

        def messages(edit):
            tampered(edit)
            return [m for _, _, m in verify_bundle(pathlib.Path(d) / "b", keys, require_statement=True)[0]]

        def edit_lines(f):
            def run(b):
                lines = (b / "entries.jsonl").read_text(encoding="utf-8").splitlines()
                (b / "entries.jsonl").write_text("".join(x + "\n" for x in f(lines)), encoding="utf-8")
            return run
        check(tampered(edit_lines(lambda l: [l[0].replace('"outcome":2', '"outcome":1'), l[1]])) == [("entry-changed", 2)],
              "a changed entry -> entry-changed")
        check(tampered(edit_lines(lambda l: [l[1]])) == [("entry-missing", 2)], "a removed entry -> entry-missing")
        check(tampered(edit_lines(lambda l: [l[1], l[0]])) == [("entry-out-of-order", 2)], "reordered -> entry-out-of-order")
        check(tampered(edit_lines(lambda l: [l[0], l[0], l[1]])) == [("entry-duplicate", 2)], "repeated -> entry-duplicate")

        def flip_proof(l):
            e = json.loads(l[1])
            e["proof"][0] = ("0" if e["proof"][0][0] != "0" else "1") + e["proof"][0][1:]
            return [l[0], json.dumps(e, ensure_ascii=False)]
        check(tampered(edit_lines(flip_proof)) == [("proof-invalid", 4)], "a changed proof -> proof-invalid")

        def flip_withheld(l):
            e = json.loads(l[0])
            c = e["details"]["commitment"]
            e["details"]["commitment"] = ("0" if c[0] != "0" else "1") + c[1:]
            return [json.dumps(e, ensure_ascii=False), l[1]]
        check(tampered(edit_lines(flip_withheld)) == [("entry-changed", 2)], "an altered withheld commitment -> entry-changed")

        # Section 17.6: a masked rendering rides along with a withheld field, unproven.
        def masked(display, field="details"):
            def run(l):
                e = json.loads(l[0])
                e[field]["masked"] = display
                return [json.dumps(e, ensure_ascii=False), l[1]]
            return run
        good = {"rules": ["details.email=hash"], "shown": '{"email":{"masked":"hash","value":"hmac:00"}}', "proven": False}
        check(tampered(edit_lines(masked(good))) == [], "a withheld field with a masked rendering verifies (17.6)")
        check(tampered(edit_lines(masked(dict(good, shown="anything at all")))) == [],
              "... and its rendering is not proven: any text verifies")
        check(tampered(edit_lines(lambda l: flip_withheld(masked(good)(l)))) == [("entry-changed", 2)],
              "a masked field's commitment altered -> entry-changed")
        check(tampered(edit_lines(masked(dict(good, proven=True)))) == [("bundle-malformed", 2)],
              "a masked rendering that claims to be proven -> bundle-malformed")
        check(tampered(edit_lines(masked(dict(good, rules=["actor=partial"])))) == [("bundle-malformed", 2)],
              "a masked rendering with another field's rules -> bundle-malformed")
        check(tampered(edit_lines(masked(dict(good, extra=1)))) == [("bundle-malformed", 2)],
              "a masked rendering with an unknown key -> bundle-malformed")
        check(tampered(edit_lines(masked({"rules": ["actor=partial"], "shown": "a***e", "proven": False}, "actor"))) == [("bundle-malformed", 2)],
              "a masked rendering next to a shown value -> bundle-malformed")

        def edit_checkpoint(b):
            cp = json.loads((b / "checkpoint.json").read_text())
            cp["time"] += 1
            (b / "checkpoint.json").write_text(json.dumps(cp))
        check(tampered(edit_checkpoint) == [("checkpoint-invalid", None)], "a changed checkpoint -> checkpoint-invalid")

        def edit_file(name, f):
            def run(b):
                (b / name).write_text(f((b / name).read_text(encoding="utf-8")), encoding="utf-8")
            return run

        def remove_entry_and_seq(b):
            edit_file("manifest.json", lambda t: t.replace('"entryCount":2,"seqs":[2,4]', '"entryCount":1,"seqs":[2]'))(b)
            edit_lines(lambda l: [l[0]])(b)
        check(messages(remove_entry_and_seq) == [
            "entryCount: the statement signs 2 entries, the manifest states 1",
            "seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)"],
            "an entry removed with its seq -> statement-mismatch (entryCount, seqs)")
        check(tampered(remove_entry_and_seq) == [("statement-mismatch", None)] * 2, "... both of kind statement-mismatch")
        check(messages(edit_file("manifest.json", lambda t: t.replace('"toSeq":4', '"toSeq":3'))) == [
            "filter: the manifest's filter differs from the one the statement signs (the selection was changed)"],
            "a changed filter -> statement-mismatch (filter)")
        # Section 18.6: text from an input reaches the output escaped, never raw (ESC, U+2028, bidi, `\`).
        hostile = edit_file("manifest.json", lambda t: t.replace('"outcome":null', '"outcome":"\\u001b[31mred\\u001b[0m\\u2028\\u202e\\\\"'))
        check(tampered(hostile) == [("statement-mismatch", None)], "a filter outcome with control characters -> statement-mismatch")
        import subprocess
        run = subprocess.run([sys.executable, __file__, str(pathlib.Path(d) / "b"), "--public-key", str(VECTORS_DIR / "checkpoint.pub")],
                             capture_output=True, text=True, encoding="utf-8")
        check(run.returncode == 1 and run.stdout.splitlines()[1:] == [
            "  statement-mismatch: filter: the manifest's filter cannot be read: its outcome `\\u001b[31mred\\u001b[0m\\u2028\\u202e\\\\` "
            "is not success, failure, denied or error"], f"... printed escaped as 18.6 says ({run.returncode} {run.stdout!r})")
        check(messages(edit_file("manifest.json", lambda t: t.replace('"redacted":["details"]', '"redacted":[]'))) == [
            "redaction set: the manifest names none as withheld, the statement signs details"],
            "a changed redaction set -> statement-mismatch (redaction set)")

        def flip_signature(t):
            i = t.index('"signature":"') + len('"signature":"')
            return t[:i] + ("0" if t[i] != "0" else "1") + t[i + 1:]
        check(tampered(edit_file("statement.json", flip_signature)) == [("statement-invalid", None)],
              "a bit flip in the statement's signature -> statement-invalid")
        check(tampered(lambda b: (b / "statement.json").unlink()) == [("statement-missing", None)],
              "no statement.json, required -> statement-missing")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Verify an AuditDB export bundle with only the public checkpoint key.")
    parser.add_argument("bundle", nargs="?")
    parser.add_argument("--public-key")
    parser.add_argument("--require-statement", action="store_true", help="fail unless a signed statement attests completeness")
    parser.add_argument("--emit-vectors", action="store_true")
    parser.add_argument("--selftest", action="store_true")
    args = parser.parse_args(argv)
    if args.emit_vectors:
        emit_vectors()
        return 0
    if args.selftest:
        return 1 if selftest() else 0
    if not args.bundle or not args.public_key:
        parser.error("BUNDLE and --public-key are required")
    try:
        keys = read_public_key_file(args.public_key)
    except ValueError as e:
        print(f"auditdb_verify_export: error: {sj.escaped(str(e))}", file=sys.stderr)
        return 2
    bundle = pathlib.Path(args.bundle)
    if not bundle.is_dir():
        print(f"auditdb_verify_export: error: no export bundle (directory) at {sj.escaped(str(bundle))}", file=sys.stderr)
        return 2
    result: dict = {}
    findings, verified = verify_bundle(bundle, keys, require_statement=args.require_statement, result=result)
    if findings:
        print(f"EXPORT INVALID: {len(findings)} finding(s)")
        for kind, seq, message in findings:
            print(f"  {kind}{'' if seq is None else f' at seq {seq}'}: {sj.escaped(message)}")
        return 1
    print(f"valid: {verified} entries")
    st = result["statement"]
    if st is None:
        print("completeness NOT attested: the bundle has no signed statement.json")
    else:
        seqs = result.get("attested_seqs")
        last = None if seqs is None else min(seqs[1], st['checkpointSeq'])
        rows = (f"up to seq {st['checkpointSeq']}" if seqs is None
                else f"from seq {seqs[0]} on (none: the checkpoint is at seq {st['checkpointSeq']})"
                if seqs[0] > last else f"from seq {seqs[0]} to seq {last}")
        print(f"completeness attested: signed statement (key version {st['keyVersion']}): all rows {rows} "
              f"that match the filter (withheld: {field_names(result['redacted'] or 0)})")
    erased = result["erased_seqs"] if verified else []
    if erased:
        # Section 21.5: nothing in a bundle proves a field erased rather than shown or withheld.
        print(f"erased fields NOT proven: {len(erased)} entr{'y shows' if len(erased) == 1 else 'ies show'} fields as erased "
              f"(first: seq {erased[0]}); check these seqs against the store's erasure entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
