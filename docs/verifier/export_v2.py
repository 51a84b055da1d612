"""Export bundles of format `auditdb-export v2` (docs/FORMAT.md section 17.5), written from that
section: the entry arrays, the multiproof MP and its checks. auditdb_verify_export.py uses it for
step 4 (one entry) and step 6 (multiproof.bin); standard library only.
"""
from __future__ import annotations

import hashlib

import strict_json as sj

FORMAT_V2 = "auditdb-export v2"
MULTIPROOF_FILE = "multiproof.bin"
MAXIMUM_MULTIPROOF_BYTES = 1 << 31
ELEMENTS = ["seq", "formatVersion", "keyVersion", "recordedAt", "occurredAt", "tenant", "action", "resourceType",
            "resourceId", "outcome", "severity", "correlationId", "origin", "originRef", "actor", "source", "details"]
# Elements 1..13 and what each must be, in the order they are checked.
_BYTE, _U32, _INT, _OPT_INT, _STR, _OPT_STR = ("an integer in 0...255", "an integer in 0...4294967295", "an integer",
                                               "an integer or null", "a string", "a string or null")
_TYPES = [None, _BYTE, _U32, _INT, _OPT_INT, _OPT_STR, _STR, _OPT_STR, _OPT_STR, _BYTE, _BYTE, _OPT_STR, _BYTE, _OPT_INT]
_FIELD_SHAPES = ('null, [value, nonce], {"withheld":commitment} or {"erased":commitment} '
                 '(nonce and commitment 64 lowercase hex digits)')
FIELD_BITS = {"actor": 1, "source": 2, "details": 4}


def _sha256(m: bytes) -> bytes:
    return hashlib.sha256(m).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fits(v, expected: str) -> bool:
    if expected == _BYTE:
        return _is_int(v) and 0 <= v <= 255
    if expected == _U32:
        return _is_int(v) and 0 <= v < 2**32
    if expected == _INT:
        return _is_int(v)
    if expected == _OPT_INT:
        return v is None or _is_int(v)
    if expected == _STR:
        return isinstance(v, str)
    return v is None or isinstance(v, str)


def check_entry(e: list, seq: int, cp: dict, enc_row, leaf_hash):
    """Step 4 of 17.5 for one entry read by sj.read_array: (problem, None) or (None, (leaf,
    withheld mask, erased mask)). `enc_row`/`leaf_hash` are the verifier's section 8 functions."""
    size = cp["seq"]
    if len(e) != len(ELEMENTS):
        return ("bundle-malformed", f"entry seq {seq} has {len(e)} elements; an entry has {len(ELEMENTS)}"), None
    if not 1 <= seq <= size:
        return ("proof-invalid", f"entry seq {seq} is outside the checkpoint (seqs 1...{size})"), None
    for i in range(1, 14):
        if not _fits(e[i], _TYPES[i]):
            return ("bundle-malformed", f"entry seq {seq}: element {i} ({ELEMENTS[i]}) is not {_TYPES[i]}"), None
    commitments, withheld, erased = b"", 0, 0
    for offset, (name, fid) in enumerate((("actor", 1), ("source", 2), ("details", 3))):
        i, f = 14 + offset, e[14 + offset]
        if f is None:
            commitments += bytes(32)
        elif (isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) and sj.is_lower_hex(f[1], 32)):
            commitments += _sha256(bytes.fromhex(f[1]) + bytes([fid]) + f[0].encode("utf-8"))
        elif isinstance(f, dict) and len(f) == 1 and sj.is_lower_hex(f.get("withheld"), 32):
            withheld |= FIELD_BITS[name]
            commitments += bytes.fromhex(f["withheld"])
        elif isinstance(f, dict) and len(f) == 1 and sj.is_lower_hex(f.get("erased"), 32):
            erased |= FIELD_BITS[name]
            commitments += bytes.fromhex(f["erased"])
        else:
            return ("bundle-malformed", f"entry seq {seq}: element {i} ({ELEMENTS[i]}) is not {_FIELD_SHAPES}"), None
    values = dict(zip(ELEMENTS[:14], e[:14]))
    return None, (leaf_hash(enc_row(bytes.fromhex(cp["storeId"]), values, commitments)), withheld, erased)


# ------------------------------------------------------------------------------------------
# The multiproof MP (section 17.5)
# ------------------------------------------------------------------------------------------


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _walk(indices: list[int], size: int, gap, leaf):
    """MP's recursion: gap(lo, hi) for each subtree without an index (in MP's order), leaf(i)."""
    def visit(lo, hi, a, b):
        if a == b:
            gap(lo, hi)
        elif hi - lo == 1:
            leaf(a)
        else:
            mid = lo + _split(hi - lo)
            m = a
            while m < b and indices[m] < mid:
                m += 1
            visit(lo, mid, a, m)
            visit(mid, hi, m, b)
    if indices:
        visit(0, size, 0, len(indices))


def multiproof_count(indices: list[int], size: int) -> int:
    count = [0]
    _walk(indices, size, lambda lo, hi: count.__setitem__(0, count[0] + 1), lambda i: None)
    return count[0]


def multiproof(indices: list[int], leaves: list[bytes], merkle_root) -> bytes:
    """MP(I, D[0..n)) over all `leaves` of the tree, concatenated (for writing vectors)."""
    out = []
    _walk(indices, len(leaves), lambda lo, hi: out.append(merkle_root(leaves[lo:hi])), lambda i: None)
    return b"".join(out)


def multiproof_root(indices: list[int], size: int, leaves: list[bytes], hashes: list[bytes]) -> bytes:
    """The root the leaves of `indices` (in order) and MP's hashes give (len(hashes) is MP's count)."""
    it = iter(hashes)

    def visit(lo, hi, a, b):
        if a == b:
            return next(it)
        if hi - lo == 1:
            return leaves[a]
        mid = lo + _split(hi - lo)
        m = a
        while m < b and indices[m] < mid:
            m += 1
        return _node(visit(lo, mid, a, m), visit(mid, hi, m, b))
    return visit(0, size, 0, len(indices))


def check_multiproof(length: int, read, seqs: list[int], leaves: list[bytes], cp: dict):
    """Step 5 of 17.5 on multiproof.bin of `length` bytes (fstat), whose bytes read() returns only
    once its size is right: None, or (kind, message)."""
    indices = [s - 1 for s in seqs]
    size = cp["seq"]
    expected = multiproof_count(indices, size)
    if length % 32:
        return "proof-invalid", f"{MULTIPROOF_FILE} is {length} bytes, not a whole number of 32-byte hashes"
    if length // 32 != expected:
        return "proof-invalid", (f"{MULTIPROOF_FILE} holds {length // 32} hashes; the {len(seqs)} entries in a tree of "
                                 f"{size} leaves need exactly {expected} (hashes were added or removed)")
    if not seqs:
        return None
    data = read()
    if len(data) != length:
        return "proof-invalid", f"{MULTIPROOF_FILE} changed while it was read"
    hashes = [data[k:k + 32] for k in range(0, len(data), 32)]
    if multiproof_root(indices, size, leaves, hashes) != bytes.fromhex(cp["merkleRoot"]):
        return "proof-invalid", (f"the entries and {MULTIPROOF_FILE} do not lead to the Merkle root of the checkpoint at "
                                 f"seq {size}: an entry's value, the commitment of a withheld or erased field, or a hash "
                                 f"of {MULTIPROOF_FILE} was changed")
    return None
