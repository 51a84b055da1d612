"""retention.py - expired rows (docs/FORMAT.md section 20), for auditdb_verify.py.

Written from FORMAT.md section 20 and docs/retention.md ("Durations", "Legal holds", "The hold
entries") alone, with nothing but the Python standard library:

* ENC_TOMB (20.1) and the match tags TAG(f, x) (20.2);
* the retention period grammar of docs/retention.md, with its messages (`parse_period`);
* the expiry entry's `details` (20.3), read by the strict JSON reader (strict_json.py, section 18);
* the hold entries (docs/retention.md), and which holds are in force at an expiry entry;
* step 9 of verification (20.4): `expiry-tampered` and `retention-violation` findings.

Step 4's walk through the tombstones, step 8's use of their MACs and the tombstone-aware parts of
step 6 live in auditdb_verify.py, next to the steps they amend; they read tombstones with the
queries defined here.
"""

from __future__ import annotations

import hashlib
import hmac
import pathlib
import struct
import sys
import unicodedata

_HERE = pathlib.Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
import strict_json as sj  # noqa: E402  (section 18: the one JSON reading)

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
U32_MAX = 0xFFFFFFFF

MAGIC_TAG = b"ADB1TAG_"
MAC_LEN, LEAF_LEN, TAGS_LEN, TAG_LEN = 32, 32, 80, 16

EXPIRY_ACTION = b"auditdb.retention.expired"
HOLD_PLACED = b"auditdb.hold.placed"
HOLD_RELEASED = b"auditdb.hold.released"
# The actions whose verified rows step 9 needs (step 4 keeps them when they pass with no finding).
STEP9_ACTIONS = frozenset((EXPIRY_ACTION, HOLD_PLACED, HOLD_RELEASED))

# Match tag numbers (20.2), and which tag a hold's matcher compares (20.3).
TAG_TENANT, TAG_ACTOR, TAG_RESOURCE_ID, TAG_RESOURCE, TAG_CORRELATION = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------------------------
# Primitives (FORMAT.md section 3), and 20.1-20.2
# --------------------------------------------------------------------------------------------


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def opt_str(v: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if v is None else u32(len(v)) + v


def enc_tomb(seq: int, key_version: int, mac: bytes, leaf: bytes, recorded_at: int, tags: bytes) -> bytes:
    """ENC_TOMB = u64(seq) || u32(key_version) || mac || leaf || i64(recorded_at) || tags (164 bytes)."""
    return u64(seq) + u32(key_version) + mac + leaf + i64(recorded_at) + tags


def match_tag(k_mac_hmac, store_id: bytes, field: int, x: bytes) -> bytes:
    """TAG(f, x) = HMAC(K_mac of V, "ADB1TAG_" || store_id || u8(f) || x)[0..16). `k_mac_hmac` is
    a function msg -> HMAC(K_mac, msg) (auditdb_verify.KeySet.mac)."""
    return k_mac_hmac(MAGIC_TAG + store_id + bytes([field]) + x)[:TAG_LEN]


def match_tags(k_mac_hmac, store_id: bytes, tenant: bytes | None, actor: bytes | None, resource_type: bytes | None,
               resource_id: bytes | None, correlation_id: bytes | None) -> bytes:
    """The 80-byte `tags` of a row (20.2)."""
    return b"".join((
        match_tag(k_mac_hmac, store_id, TAG_TENANT, opt_str(tenant)),
        match_tag(k_mac_hmac, store_id, TAG_ACTOR, opt_str(actor)),
        match_tag(k_mac_hmac, store_id, TAG_RESOURCE_ID, opt_str(resource_id)),
        match_tag(k_mac_hmac, store_id, TAG_RESOURCE, opt_str(resource_type) + opt_str(resource_id)),
        match_tag(k_mac_hmac, store_id, TAG_CORRELATION, opt_str(correlation_id)),
    ))


def tag_slot(tags: bytes, field: int) -> bytes:
    return tags[TAG_LEN * (field - 1):TAG_LEN * field]


# --------------------------------------------------------------------------------------------
# docs/retention.md "Durations": the retention period grammar and its messages
# --------------------------------------------------------------------------------------------

UNIT_MICROS = {"h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}
UNIT_MAXIMUM = {u: INT64_MAX // us for u, us in UNIT_MICROS.items()}  # 2562047788h, 106751991d, 15250284w

# Unicode's White_Space property (PropList.txt), which str.isspace() does not match exactly.
_WHITE_SPACE = frozenset([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                          0x202F, 0x205F, 0x3000])
_FOREVER_HINT = "to keep rows for ever, use `forever` (or no maximum age)"


class PeriodError(ValueError):
    """A retention period that does not follow the grammar; the message is docs/retention.md's."""


def parse_period(text: str, field: str) -> int:
    """A period of docs/retention.md ("90d") -> its length in microseconds. Raises PeriodError
    `FIELD: the retention period "TEXT" PROBLEM. Write ...`, naming the first problem in the
    documented order: empty; whitespace; a sign; the character after the digits (none, a
    non-ASCII digit, no digits before it, a decimal point, an unknown unit); text after the unit;
    a leading zero; too long; zero."""
    def fail(problem: str) -> PeriodError:
        return PeriodError(f"{field}: the retention period {sj.json_quoted(text)} {problem}. Write a positive whole "
                           "number followed by h (hours), d (days) or w (weeks), e.g. 90d")
    if text == "":
        raise fail("is empty")
    for i, ch in enumerate(text):
        if ord(ch) in _WHITE_SPACE:
            raise fail(f"contains whitespace at character {i + 1}; remove it")
    if text[0] == "-":
        raise fail("is negative")
    if text[0] == "+":
        raise fail("has a sign; write the number alone")
    n = 0
    while n < len(text) and "0" <= text[n] <= "9":
        n += 1
    digits, rest = text[:n], text[n:]
    if not rest:
        raise fail("has no unit (h, d or w)")
    unit = rest[0]
    if unicodedata.numeric(unit, None) is not None:
        raise fail(f"contains a digit that is not ASCII 0-9 (U+{ord(unit):X})")
    if not digits:
        raise fail("does not start with a number")
    if unit in ".,":
        raise fail("is not a whole number; use a smaller unit (36h, not 1.5d)")
    if unit not in UNIT_MICROS:
        q = sj.json_quoted(unit)
        if unit in "HDW":
            raise fail(f"has the unit {q}; units are lowercase ({unit.lower()})")
        if unit in "mM":
            raise fail(f"has the unit {q}, which could mean minutes or months; write hours or days (720h, 30d)")
        if unit in "yY":
            raise fail(f"has the unit {q}; years differ in length, so write days (365d or 366d)")
        if unit in "sS":
            raise fail(f"has the unit {q}; retention is counted in hours, days or weeks (1h is the shortest)")
        raise fail(f"has the unknown unit {q}")
    if len(rest) > 1:
        raise fail("has text after the unit; write one number and one unit (2172h, not 90d12h)")
    if len(digits) > 1 and digits[0] == "0":
        trimmed = digits.lstrip("0")
        raise fail(f"has a leading zero; write {trimmed + unit if trimmed else 'a positive number'}")
    too_long = f"is too long: at most {UNIT_MAXIMUM[unit]}{unit} (the period in microseconds must fit a 64-bit integer); {_FOREVER_HINT}"
    if len(digits) > 20:  # beyond any 64-bit count (and Python's int-from-text limit)
        raise fail(too_long)
    count = int(digits)
    if count > INT64_MAX:
        raise fail(too_long)
    if count < 1:
        raise fail(f"is zero: a maximum age of zero would let every row expire at once; {_FOREVER_HINT}")
    if count > UNIT_MAXIMUM[unit]:
        raise fail(too_long)
    return count * UNIT_MICROS[unit]


# --------------------------------------------------------------------------------------------
# FORMAT.md 20.3: the expiry entry's details
# --------------------------------------------------------------------------------------------

EXPIRY_MEMBERS = ("policy", "now", "first", "last", "count", "tombstones")
EXPIRY_OPTIONAL = ("archive",)
POLICY_MEMBERS = ("default", "tenants")


class ExpiryDetailsError(ValueError):
    """Why an expiry entry's details are not those of 20.3."""


class Limit:
    """One limit of a policy: `text` the period as written ("90d"), or None for null (keep for
    ever); `micros` its length, None for null."""

    def __init__(self, text: str | None, micros: int | None):
        self.text, self.micros = text, micros

    def shown(self) -> str:
        return "forever" if self.text is None else self.text


class ExpiryDetails:
    def __init__(self, default: Limit, tenants: dict[str, Limit], now: int, first: int, last: int, count: int,
                 digest: bytes):
        self.default, self.tenants, self.now = default, tenants, now
        self.first, self.last, self.count, self.digest = first, last, count, digest


def _limit(value, field: str) -> Limit:
    if value is None:
        return Limit(None, None)
    if not isinstance(value, str):
        raise ExpiryDetailsError(f"{field} is neither a retention period (a string such as \"90d\") nor null")
    try:
        return Limit(value, parse_period(value, field))
    except PeriodError as e:
        raise ExpiryDetailsError(str(e))


def _first_unknown(obj: dict, known: tuple[str, ...]) -> str | None:
    unknown = sorted(k for k in obj if k not in known)  # code point order (section 18.3)
    return unknown[0] if unknown else None


def parse_expiry_details(details: bytes | None, entry_seq: int) -> ExpiryDetails:
    """The details of the expiry entry at `entry_seq`, read as 20.3 says; raises ExpiryDetailsError.
    Checked in this order: the JSON (section 18, the limits of `details`); a member that is not
    one of 20.3's (the first in code point order); a member missing (in 20.3's order); then each
    member in 20.3's order: `policy` (an object with exactly `default` and `tenants`; `default`,
    then each tenant in code point order), `now`, `first`, `last`, `count`, `tombstones`."""
    if details is None:
        raise ExpiryDetailsError("its details are NULL")
    try:
        obj = sj.read_object(details, sj.DETAILS)
    except sj.JSONError as e:
        raise ExpiryDetailsError(str(e))
    unknown = _first_unknown(obj, EXPIRY_MEMBERS + EXPIRY_OPTIONAL)
    if unknown is not None:
        raise ExpiryDetailsError(f"the member {sj.json_quoted(unknown)} is not one of an expiry entry's")
    for name in EXPIRY_MEMBERS:
        if name not in obj:
            raise ExpiryDetailsError(f"the member {sj.json_quoted(name)} is missing")
    policy = obj["policy"]
    if not isinstance(policy, dict):
        raise ExpiryDetailsError("policy is not an object")
    unknown = _first_unknown(policy, POLICY_MEMBERS)
    if unknown is not None:
        raise ExpiryDetailsError(f"policy has the member {sj.json_quoted(unknown)}; it holds only default and tenants")
    for name in POLICY_MEMBERS:
        if name not in policy:
            raise ExpiryDetailsError(f"policy lacks the member {sj.json_quoted(name)}")
    default = _limit(policy["default"], "default")
    if not isinstance(policy["tenants"], dict):
        raise ExpiryDetailsError("policy.tenants is not an object")
    tenants = {name: _limit(value, f"tenants[{sj.json_quoted(name)}]")
               for name, value in sorted(policy["tenants"].items())}
    for name in ("now", "first", "last", "count"):
        if not sj.is_integer(obj[name]):
            raise ExpiryDetailsError(f"{name} is not an integer")
    first, last, count = obj["first"], obj["last"], obj["count"]
    if count < 1:
        raise ExpiryDetailsError(f"count is {count}; an expiry entry expires at least one row")
    if not 1 <= first <= last < entry_seq:
        raise ExpiryDetailsError(f"first {first} and last {last} are not seqs before the entry "
                                 f"(1 <= first <= last < {entry_seq})")
    if count > last - first + 1:
        raise ExpiryDetailsError(f"count {count} is more than the {last - first + 1} seq(s) from first {first} to last {last}")
    if not sj.is_lower_hex(obj["tombstones"], 32):
        raise ExpiryDetailsError("tombstones is not 64 lowercase hex digits")
    if "archive" in obj:
        archive = obj["archive"]
        if (not isinstance(archive, dict) or sorted(archive) != ["bundle", "manifest"]
                or not isinstance(archive["bundle"], str) or not sj.is_lower_hex(archive["manifest"], 32)):
            raise ExpiryDetailsError("archive is not an object of exactly bundle (a string) and manifest (64 lowercase hex digits)")
    return ExpiryDetails(default, tenants, obj["now"], first, last, count, bytes.fromhex(obj["tombstones"]))


# --------------------------------------------------------------------------------------------
# docs/retention.md "The hold entries": the holds in force at an expiry entry
# --------------------------------------------------------------------------------------------

HOLD_FIELDS = ("tenant", "actor", "resource", "correlationId")


class Hold:
    """A hold placed by the verified entry at `hold_id`: `field` and `value` (str), and the
    resource type narrowing a resource hold (str or None)."""

    def __init__(self, hold_id: int, field: str, value: str, resource_type: str | None):
        self.hold_id, self.field, self.value, self.resource_type = hold_id, field, value, resource_type

    def tag(self, k_mac_hmac, store_id: bytes) -> tuple[int, bytes]:
        """(which match tag, its value) that a tombstone the hold matches carries (20.3)."""
        v = self.value.encode("utf-8")
        if self.field == "tenant":
            return TAG_TENANT, match_tag(k_mac_hmac, store_id, TAG_TENANT, opt_str(v))
        if self.field == "actor":
            return TAG_ACTOR, match_tag(k_mac_hmac, store_id, TAG_ACTOR, opt_str(v))
        if self.field == "correlationId":
            return TAG_CORRELATION, match_tag(k_mac_hmac, store_id, TAG_CORRELATION, opt_str(v))
        if self.resource_type is None:
            return TAG_RESOURCE_ID, match_tag(k_mac_hmac, store_id, TAG_RESOURCE_ID, opt_str(v))
        return TAG_RESOURCE, match_tag(k_mac_hmac, store_id, TAG_RESOURCE,
                                       opt_str(self.resource_type.encode("utf-8")) + opt_str(v))

    def describe(self) -> str:
        if self.field == "resource" and self.resource_type is not None:
            return f"resource {sj.json_quoted(self.resource_type)} {sj.json_quoted(self.value)}"
        return f"{self.field} = {sj.json_quoted(self.value)}"


class HoldEntryError(ValueError):
    """Why a verified hold entry cannot be read as one (docs/retention.md)."""


def read_hold_entry(row: dict):
    """("placed", Hold) or ("released", hold id) for a verified hold entry (`row`: the columns,
    text as bytes); raises HoldEntryError for an unreadable one: details that are not strict JSON,
    a key outside those of its action, a missing or mistyped field, a resourceType on a hold that
    is not by resource, a release whose resource_id is not its holdId, a previousHoldEntry that does
    not lie before the entry."""
    if row["details"] is None:
        raise HoldEntryError("it has no details")
    try:
        obj = sj.read_object(row["details"], sj.DETAILS)
    except sj.JSONError as e:
        raise HoldEntryError(f"its details are not valid JSON ({e})")

    def text(name: str) -> str:
        if not isinstance(obj.get(name), str):
            raise HoldEntryError(f"its details lack the string {name}")
        return obj[name]

    def integer(name: str) -> int:
        if not sj.is_integer(obj.get(name)):
            raise HoldEntryError(f"its details lack the integer {name}")
        return obj[name]

    if row["action"] == HOLD_PLACED:
        known = ("field", "value", "reason", "previousHoldEntry", "resourceType")
        value, field = text("value"), text("field")
        if field not in HOLD_FIELDS:
            raise HoldEntryError(f"its field {sj.json_quoted(field)} is not tenant, actor, resource or correlationId")
        resource_type = None
        if "resourceType" in obj:
            if field != "resource":
                raise HoldEntryError(f"it has a resourceType but holds by {field}")
            resource_type = text("resourceType")
        text("reason")
        result = ("placed", Hold(row["seq"], field, value, resource_type))
    elif row["action"] == HOLD_RELEASED:
        known = ("holdId", "reason", "previousHoldEntry")
        hold_id = integer("holdId")
        if row["resource_id"] != str(hold_id).encode():
            raise HoldEntryError(f"its resourceId does not name the hold it releases ({hold_id})")
        text("reason")
        result = ("released", hold_id)
    else:
        raise HoldEntryError("its action is not a hold action")
    previous = integer("previousHoldEntry")
    unknown = _first_unknown(obj, known)
    if unknown is not None:
        raise HoldEntryError(f"its details have the unknown key {sj.json_quoted(unknown)}")
    if not 0 <= previous < row["seq"]:
        raise HoldEntryError(f"its previousHoldEntry {previous} does not lie before it")
    return result


def read_holds(engine_rows: dict[int, dict]) -> tuple[list[Hold], dict[int, list[int]]]:
    """The holds the verified hold entries place (ascending id), and the seqs of the verified
    entries that release each (hold id -> [release seqs]). Unreadable entries place and release
    nothing. A release counts only after the placement it names."""
    holds: list[Hold] = []
    releases: dict[int, list[int]] = {}
    placed: set[int] = set()
    for seq in sorted(engine_rows):
        row = engine_rows[seq]
        if row["action"] not in (HOLD_PLACED, HOLD_RELEASED):
            continue
        try:
            what, value = read_hold_entry(row)
        except HoldEntryError:
            continue
        if what == "placed":
            holds.append(value)
            placed.add(seq)
        elif value in placed:  # a release of a hold placed before it
            releases.setdefault(value, []).append(seq)
    return holds, releases


def holds_in_force(holds: list[Hold], releases: dict[int, list[int]], expiry_seq: int) -> list[Hold]:
    """20.3: placed by an entry with a lower seq than the expiry entry and not released by an entry
    with a lower seq."""
    return [h for h in holds
            if h.hold_id < expiry_seq and not any(r < expiry_seq for r in releases.get(h.hold_id, ()))]


# --------------------------------------------------------------------------------------------
# FORMAT.md 20.4, step 9
# --------------------------------------------------------------------------------------------

TOMBSTONE_COLUMNS = ("seq", "key_version", "mac", "leaf", "recorded_at", "tags", "expiry_seq")
# Every tombstone, ascending seq, each value with its storage class, and whether audit_entries
# also holds a row at its seq (rule 1).
_ALL_TOMBSTONES = (
    "SELECT " + ", ".join(f"t.{c}, typeof(t.{c})" for c in TOMBSTONE_COLUMNS)
    + ", EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = t.seq) FROM audit_expired t ORDER BY t.seq")
# The tombstones of one expiry entry that are in the log (seq 1...last, no row there).
_TOMBSTONES_OF = ("SELECT seq, recorded_at, tags FROM audit_expired x WHERE expiry_seq = ? AND seq >= 1 AND seq <= ? "
                  "AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq) ORDER BY seq")

# Step 4's walk (auditdb_verify.py): the tombstones of expired seqs (>= 1, no row in audit_entries).
WALK_TOMBSTONES = (
    "SELECT t.seq, t.key_version, typeof(t.key_version), t.mac, typeof(t.mac) FROM audit_expired t"
    " WHERE t.seq >= 1 AND t.seq <= (SELECT coalesce(max(seq), 0) FROM audit_entries NOT INDEXED)"
    " AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = t.seq) ORDER BY t.seq")


def tombstone_is_well_formed(values: dict, types: dict) -> bool:
    """Rule 2's types: key_version and recorded_at INTEGERs (key_version a u32, as ENC_TOMB
    encodes it), mac, leaf and tags BLOBs of 32, 32 and 80 bytes."""
    return (types["key_version"] == "integer" and 0 <= values["key_version"] <= U32_MAX
            and types["recorded_at"] == "integer"
            and types["mac"] == "blob" and len(values["mac"]) == MAC_LEN
            and types["leaf"] == "blob" and len(values["leaf"]) == LEAF_LEN
            and types["tags"] == "blob" and len(values["tags"]) == TAGS_LEN)


class _Group:
    """The tombstones naming one expiry_seq, folded in ascending seq."""

    def __init__(self):
        self.count, self.first, self.last = 0, None, None
        self.hash = hashlib.sha256()
        self.malformed: int | None = None  # the first seq whose ENC_TOMB cannot be formed

    def add(self, seq: int, enc: bytes | None):
        self.count += 1
        self.first = seq if self.first is None else self.first
        self.last = seq
        if enc is None:
            if self.malformed is None:
                self.malformed = seq
        else:
            self.hash.update(enc)


def _s(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)


def _show(value, typ: str) -> str:
    if typ == "null":
        return "NULL"
    if typ == "text":
        return sj.json_quoted(_s(value))
    if typ == "blob":
        return f"x'{bytes(value)[:16].hex()}{'...' if len(value) > 16 else ''}'"
    return str(value)


def _mismatch(d: ExpiryDetails, g: _Group | None) -> str | None:
    """Why the tombstones naming an expiry entry do not give its count, first, last and digest."""
    stated = f"it states count {d.count}, first {d.first}, last {d.last}"
    if g is None or g.count == 0:
        return f"{stated}, but no tombstone names it (its tombstones were deleted)"
    if (g.count, g.first, g.last) != (d.count, d.first, d.last):
        return (f"{stated}, but {g.count} tombstone(s) name it, seqs {g.first}...{g.last} (tombstones deleted "
                "or added)")
    if g.malformed is not None:
        return f"the tombstone at seq {g.malformed} has impossible types or lengths, so it is not the one it digested"
    if not hmac.compare_digest(g.hash.digest(), d.digest):
        return ("the digest of its tombstones differs from the one it states (a tombstone's key_version, mac, leaf, "
                "recorded_at or tags was changed, or one was replaced)")
    return None


# The stored MAC at seq ?1 and its type: the row's if audit_entries has one there, else the tombstone's.
_PREVIOUS_MAC = ("SELECT m, typeof(m) FROM (SELECT CASE WHEN EXISTS (SELECT 1 FROM audit_entries WHERE seq = ?1) "
                 "THEN (SELECT mac FROM audit_entries WHERE seq = ?1) ELSE (SELECT mac FROM audit_expired WHERE seq = ?1) END AS m)")


def _links_to_previous(conn, keys: dict, store_id: bytes, values: dict, types: dict) -> bool:
    """Whether a tombstone's link tag follows the stored MAC at seq - 1 (32 zero bytes before
    seq 1) under its key version (20.4): above the last row, what only a cut tail leaves."""
    import auditdb_verify as av  # the verifier that imports this module, loaded already
    seq, version = values["seq"], values["key_version"]
    if types["key_version"] != "integer" or version not in keys or types["mac"] != "blob" or len(values["mac"]) != 32:
        return False
    if seq == 1:
        prev = bytes(32)
    else:
        m, t = conn.execute(_PREVIOUS_MAC, (seq - 1,)).fetchone()
        if _s(t) != "blob" or len(m) != 32:
            return False
        prev = bytes(m)
    mac = bytes(values["mac"])
    return hmac.compare_digest(av.link_tag(keys[version].keyset, store_id, seq, mac[:av.TAG_LEN], prev), mac[av.TAG_LEN:])


def check_expiry(conn, report, keys: dict, store_id: bytes, engine_rows: dict[int, dict], has_tombstones: bool) -> None:
    """Step 9 (with a store id). `engine_rows`: seq -> the columns (text as bytes) of every row
    whose action is in STEP9_ACTIONS, whose origin is 0 and which step 4 passed with no finding.
    `keys`: the key ring (version -> auditdb_verify.Key). Findings, in the order they are found:
    rules 1-2 per tombstone (ascending seq, at most one each), rule 3 per expiry entry (ascending),
    then retention-violation per tombstone of each expiry entry that passed rule 3 (ascending
    entry, then seq; at most one each: the policy first, then the lowest hold id in force)."""
    expiries = {seq: row for seq, row in engine_rows.items() if row["action"] == EXPIRY_ACTION}
    # An entry whose details do not parse counts as no entry for rule 2 (section 20.3): each
    # tombstone naming it is expiry-tampered too.
    parsed: dict[int, ExpiryDetails] = {}
    unparsed: dict[int, ExpiryDetailsError] = {}
    for seq in sorted(expiries):
        try:
            parsed[seq] = parse_expiry_details(expiries[seq]["details"], seq)
        except ExpiryDetailsError as e:
            unparsed[seq] = e
    groups: dict[int, _Group] = {}
    # A tombstone stands for a row the log no longer has: at a seq from 1 to the last row's, where
    # audit_entries has no row. Any other audit_expired row takes no part in the log: foreign-row.
    last = conn.execute("SELECT max(seq) FROM audit_entries NOT INDEXED WHERE seq >= 1").fetchone()[0] or 0
    cut_tail = None  # the highest tombstone above the last row that links to the one before it
    if has_tombstones:
        n = len(TOMBSTONE_COLUMNS)
        for record in conn.execute(_ALL_TOMBSTONES):
            values = {c: record[2 * i] for i, c in enumerate(TOMBSTONE_COLUMNS)}
            types = {c: _s(record[2 * i + 1]) for i, c in enumerate(TOMBSTONE_COLUMNS)}
            in_entries = bool(record[2 * n])
            seq, expiry_seq = values["seq"], values["expiry_seq"]
            well_formed = tombstone_is_well_formed(values, types)
            if seq > last and _links_to_previous(conn, keys, store_id, values, types):
                cut_tail = seq  # signed, and chained to what stands before it: a cut tail left it
                continue
            outside = ("the log has a row at that seq" if in_entries else "the log starts at seq 1" if seq < 1
                       else f"the log ends at seq {last}" if seq > last else None)
            if outside is not None:
                report.add("foreign-row", seq, seq,
                           f"audit_expired row at seq {seq} is not a tombstone of the log: {outside}. AuditDB ignores "
                           "it; another SQLite client inserted it (or an expired row was put back, or rows were cut "
                           "from the tail: see the other findings, and verify against anchors)")
                continue
            why = None
            if types["expiry_seq"] != "integer" or expiry_seq not in parsed:
                why = (f"the tombstone names expiry entry {_show(expiry_seq, types['expiry_seq'])}, which is not an "
                       "expiry entry that verified (it was deleted or changed, or never written)")
            elif not well_formed:
                why = ("the tombstone has impossible types or lengths (key_version and recorded_at must be integers, "
                       "mac, leaf and tags blobs of 32, 32 and 80 bytes)")
            if why is not None:
                report.add("expiry-tampered", seq, seq, why)
            if types["expiry_seq"] == "integer":
                enc = (enc_tomb(seq, values["key_version"], bytes(values["mac"]), bytes(values["leaf"]),
                                values["recorded_at"], bytes(values["tags"]))
                       if well_formed else None)
                groups.setdefault(expiry_seq, _Group()).add(seq, enc)

    if cut_tail is not None:
        report.add("truncated", last + 1, cut_tail,
                   f"the log ends at seq {last}, but signed tombstones above it chain on from the rows before them up to "
                   f"seq {cut_tail}: rows {last + 1}...{cut_tail} at least (and the expiry entry that expired them) were "
                   "cut from the tail")
    passed: list[tuple[int, dict, ExpiryDetails]] = []
    for seq in sorted(expiries):
        row = expiries[seq]
        if seq in unparsed:
            report.add("expiry-tampered", seq, seq, f"the expiry entry's details do not parse as an expiry entry: {unparsed[seq]}")
            continue
        d = parsed[seq]
        why = _mismatch(d, groups.get(seq))
        if why is not None:
            report.add("expiry-tampered", seq, seq, f"the expiry entry's tombstones do not match it: {why}")
            continue
        passed.append((seq, row, d))

    if not passed:
        return
    holds, releases = read_holds(engine_rows)
    for seq, row, d in passed:
        mac_of = keys[row["key_version"]].keyset.mac  # the entry verified: its version is in the ring
        by_tenant = {match_tag(mac_of, store_id, TAG_TENANT, opt_str(name.encode("utf-8"))): limit
                     for name, limit in d.tenants.items()}
        in_force = []
        for h in holds_in_force(holds, releases, seq):
            in_force.append((h, *h.tag(mac_of, store_id)))
            if h.field == "actor":  # an actor hold also keeps rows whose actor was withheld (NULL): 20.3
                in_force.append((h, TAG_ACTOR, match_tag(mac_of, store_id, TAG_ACTOR, opt_str(None))))
        for t_seq, recorded_at, tags in conn.execute(_TOMBSTONES_OF, (seq, last)).fetchall():
            tags = bytes(tags)
            limit = by_tenant.get(tag_slot(tags, TAG_TENANT), d.default)
            cutoff = None if limit.micros is None else max(d.now - limit.micros, INT64_MIN)
            if cutoff is None or not recorded_at < cutoff:
                report.add("retention-violation", t_seq, t_seq, f"expired under policy {limit.shown()} before its time")
                continue
            for hold, field, tag in in_force:
                if hmac.compare_digest(tag_slot(tags, field), tag):
                    report.add("retention-violation", t_seq, t_seq,
                               f"expired while legal hold {hold.hold_id} was in force")
                    break
