// index_digest.c - proves that each query index holds exactly the entries its table rows imply
// (docs/FORMAT.md, section 11 step 7). Both sides fold their entries into an order-independent
// digest: per index, the count of entries and the 64-bit sum of a keyed SipHash-1-3 of each
// entry. Whoever edits the file never sees a hash (the key is drawn per pass), so a change goes
// unnoticed only if a sum of pseudo-random 64-bit values cancels: probability 2^-64 per index.
// The table side is computed from the rows the verifier reads anyway; the index side from one
// covering scan of each index. The SipHash key (siphash.h) is random per verification pass, so
// someone who edits the file beforehand cannot make a changed, missing or extra entry cancel out.
#include "audit_row.h"
#include "audit_sqlite.h"
#include "siphash.h"

#include <sqlite3.h>
#include <stddef.h>
#include <string.h>

// MARK: Entries
//
// An entry is hashed in one call over a small buffer: u8(index number) then each value as a type
// byte and its bytes (FORMAT.md section 11 step 7). Values too long for the buffer are hashed
// through the streaming path, with the same result.

enum { ENTRY_BUFFER = 256 };
// SipHash-1-3 (as Rust's HashMap uses): the attacker never sees a digest and cannot choose the
// key, so the full 2-4 margin buys nothing here and costs a third of the proof's hashing time.
enum { DIGEST_C = 1, DIGEST_D = 3 };  // sip13_oneshot has these rounds written out

typedef struct {
    uint8_t buf[ENTRY_BUFFER];
    size_t len;
    int overflow;  // the buffer was too small: `stream` holds everything absorbed so far
    sip_state stream;
} entry_builder;

static inline void entry_start(entry_builder *e, const adb_index_digest *d, int index) {
    e->buf[0] = (uint8_t)(index + 1);
    e->len = 1;
    e->overflow = 0;
    (void)d;
}

static void entry_put(entry_builder *e, const adb_index_digest *d, const uint8_t *p, size_t n) {
    if (!e->overflow && e->len + n <= ENTRY_BUFFER) {
        memcpy(e->buf + e->len, p, n);
        e->len += n;
        return;
    }
    if (!e->overflow) {
        sip_init64(&e->stream, d->k0, d->k1, DIGEST_C, DIGEST_D);
        sip_update(&e->stream, e->buf, e->len);
        e->overflow = 1;
    }
    sip_update(&e->stream, p, n);
}

static inline void entry_int(entry_builder *e, const adb_index_digest *d, int64_t value) {
    uint8_t v[9];
    v[0] = 1;
    uint64_t u = (uint64_t)value;
    for (int i = 0; i < 8; i++) v[1 + i] = (uint8_t)(u >> (56 - 8 * i));
    entry_put(e, d, v, 9);
}

static inline void entry_bytes(entry_builder *e, const adb_index_digest *d, uint8_t type, const uint8_t *p, uint32_t n) {
    uint8_t h[5] = {type, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    entry_put(e, d, h, 5);
    if (n) entry_put(e, d, p, n);
}

static inline void entry_null(entry_builder *e, const adb_index_digest *d) {
    uint8_t t = 5;
    entry_put(e, d, &t, 1);
}

static void entry_finish(entry_builder *e, adb_index_digest *d, int index) {
    uint64_t h;
    if (!e->overflow) {
        h = sip13_oneshot(d->k0, d->k1, e->buf, e->len);
    } else {
        h = sip_final64(&e->stream);
    }
    d->count[index] += 1;
    d->sum[index] += h;
}

void adb_index_digest_init(adb_index_digest *d, const uint8_t key[16]) {
    memset(d, 0, sizeof *d);
    for (int i = 0; i < 8; i++) { d->k0 |= (uint64_t)key[i] << (8 * i); d->k1 |= (uint64_t)key[8 + i] << (8 * i); }
}

void adb_index_digest_merge(adb_index_digest *into, const adb_index_digest *from) {
    for (int i = 0; i < ADB_INDEX_COUNT; i++) {
        into->count[i] += from->count[i];
        into->sum[i] += from->sum[i];
        if (from->disordered[i] && !into->disordered[i]) {
            into->disordered[i] = 1;
            into->disorder_at[i] = from->disorder_at[i];
        }
    }
}

int adb_index_digest_equal(const adb_index_digest *a, const adb_index_digest *b, int index) {
    return a->count[index] == b->count[index] && a->sum[index] == b->sum[index];
}

/// Adds one value of a result row or function argument: 1 INTEGER i64, 2 REAL IEEE bits, 3 TEXT
/// and 4 BLOB u32 length + bytes, 5 NULL (FORMAT.md section 11 step 7).
static void entry_value(entry_builder *e, const adb_index_digest *d, sqlite3_value *v) {
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        entry_int(e, d, sqlite3_value_int64(v));
        break;
    case SQLITE_FLOAT: {
        double f = sqlite3_value_double(v);
        uint64_t u;
        memcpy(&u, &f, 8);
        uint8_t b[9];
        b[0] = 2;
        for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
        entry_put(e, d, b, 9);
        break;
    }
    case SQLITE_TEXT: {
        const uint8_t *p = sqlite3_value_text(v);
        entry_bytes(e, d, 3, p, (uint32_t)sqlite3_value_bytes(v));
        break;
    }
    case SQLITE_BLOB: {
        const uint8_t *p = sqlite3_value_blob(v);
        entry_bytes(e, d, 4, p, (uint32_t)sqlite3_value_bytes(v));
        break;
    }
    default:
        entry_null(e, d);
        break;
    }
}

/// Whether bytes are in ['auditdb.', 'auditdb/') as SQLite compares TEXT with the BINARY collation.
static int in_engine_range(const uint8_t *p, size_t n) {
    static const char lo[] = "auditdb.", hi[] = "auditdb/";
    size_t nl = 8;
    int c = memcmp(p, lo, n < nl ? n : nl);
    if (c < 0 || (c == 0 && n < nl)) return 0;
    c = memcmp(p, hi, n < nl ? n : nl);
    return c < 0 || (c == 0 && n < nl);
}

// The table side's fast path: an entry laid out straight into a stack buffer (the same bytes
// the entry_* builder produces) and hashed in one call. Entries whose text is too long for the
// buffer take the builder, which streams; both give the same hash.
static inline uint8_t *fast_int(uint8_t *p, int64_t value) {
    uint64_t u = (uint64_t)value;
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_BIG_ENDIAN__
    u = __builtin_bswap64(u);
#endif
    p[0] = 1;
    memcpy(p + 1, &u, 8);
    return p + 9;
}

static inline uint8_t *fast_text(uint8_t *p, const uint8_t *text, uint32_t n) {
    p[0] = 3;
    p[1] = (uint8_t)(n >> 24); p[2] = (uint8_t)(n >> 16); p[3] = (uint8_t)(n >> 8); p[4] = (uint8_t)n;
    memcpy(p + 5, text, n);
    return p + 5 + n;
}

static inline void fast_add(adb_index_digest *d, int index, const uint8_t *buf, const uint8_t *end) {
    d->count[index] += 1;
    d->sum[index] += sip13_oneshot(d->k0, d->k1, buf, (size_t)(end - buf));
}

/// Longest text the fast path lays out (index byte + two integers + text header + text fit in
/// ENTRY_BUFFER).
enum { FAST_TEXT_MAX = ENTRY_BUFFER - 1 - 9 - 9 - 5 };

void adb_index_digest_add_parsed(adb_index_digest *d, const adb_row *row) {
    // Callers check the row's shape first (action is NOT NULL). A NULL action (length -1) is never
    // encoded: its length would be read as 4 GiB. Left out, the row's entries make the proof fail.
    if (row->action.len < 0) return;
    uint8_t buf[ENTRY_BUFFER];
    int64_t seq = row->seq;
    int64_t bucket = seq >> 14;
    int fits = (row->actor.len < 0 || row->actor.len <= FAST_TEXT_MAX)
        && (row->resource_id.len < 0 || row->resource_id.len <= FAST_TEXT_MAX)
        && (row->tenant.len < 0 || row->tenant.len <= FAST_TEXT_MAX)
        && (row->action.len < 0 || row->action.len <= FAST_TEXT_MAX)
        // The entries of audit_entries_tenant_seq, _actor and _resource hold two texts and four
        // or five integers (migrations 0010, 0011)
        && (row->tenant.len < 0 || 1 + 2 * 5 + 4 * 9 + row->tenant.len + row->action.len <= ENTRY_BUFFER)
        && (row->actor.len < 0 || 1 + 2 * 5 + 5 * 9 + row->actor.len + row->action.len <= ENTRY_BUFFER)
        && (row->resource_id.len < 0 || 1 + 2 * 5 + 5 * 9 + row->resource_id.len + row->action.len <= ENTRY_BUFFER);
    if (!fits) {
        adb_index_digest_add_parsed_streaming(d, row);
        return;
    }
    uint8_t *p;
    if (row->actor.len >= 0) {
        buf[0] = ADB_INDEX_ACTOR + 1;
        p = fast_int(buf + 1, bucket);
        p = fast_text(p, row->actor.ptr, (uint32_t)row->actor.len);
        p = fast_int(p, seq);  // the key (seq >> 0)
        p = fast_int(p, row->outcome);
        p = fast_int(p, row->severity);
        p = fast_text(p, row->action.ptr, (uint32_t)row->action.len);
        p = fast_int(p, seq);
        fast_add(d, ADB_INDEX_ACTOR, buf, p);
    }
    if (row->resource_id.len >= 0) {
        buf[0] = ADB_INDEX_RESOURCE + 1;
        p = fast_int(buf + 1, bucket);
        p = fast_text(p, row->resource_id.ptr, (uint32_t)row->resource_id.len);
        p = fast_int(p, seq);  // the key (seq >> 0)
        p = fast_int(p, row->outcome);
        p = fast_int(p, row->severity);
        p = fast_text(p, row->action.ptr, (uint32_t)row->action.len);
        p = fast_int(p, seq);
        fast_add(d, ADB_INDEX_RESOURCE, buf, p);
    }
    if (row->tenant.len >= 0) {
        buf[0] = ADB_INDEX_TENANT_TIME + 1;
        p = fast_text(buf + 1, row->tenant.ptr, (uint32_t)row->tenant.len);
        p = fast_int(p, row->recorded_at);
        p = fast_int(p, seq);
        fast_add(d, ADB_INDEX_TENANT_TIME, buf, p);
        buf[0] = ADB_INDEX_TENANT_SEQ + 1;
        p = fast_text(buf + 1, row->tenant.ptr, (uint32_t)row->tenant.len);
        p = fast_int(p, seq);  // the key (seq >> 0)
        p = fast_int(p, row->outcome);
        p = fast_int(p, row->severity);
        p = fast_text(p, row->action.ptr, (uint32_t)row->action.len);
        p = fast_int(p, seq);
        fast_add(d, ADB_INDEX_TENANT_SEQ, buf, p);
    }
    buf[0] = ADB_INDEX_RECORDED_AT + 1;
    p = fast_int(buf + 1, row->recorded_at);
    p = fast_int(p, seq);
    fast_add(d, ADB_INDEX_RECORDED_AT, buf, p);
    if (row->action.len >= 0 && in_engine_range(row->action.ptr, (size_t)row->action.len)) {
        buf[0] = ADB_INDEX_ENGINE + 1;
        p = fast_text(buf + 1, row->action.ptr, (uint32_t)row->action.len);
        p = fast_int(p, seq);
        fast_add(d, ADB_INDEX_ENGINE, buf, p);
    }
    if (row->has_origin_ref) {
        buf[0] = ADB_INDEX_ORIGIN_REF + 1;
        p = fast_int(buf + 1, row->origin_ref);
        p = fast_int(p, seq);
        fast_add(d, ADB_INDEX_ORIGIN_REF, buf, p);
    }
}

void adb_index_digest_add_parsed_streaming(adb_index_digest *d, const adb_row *row) {
    if (row->action.len < 0) return;  // as in adb_index_digest_add_parsed
    entry_builder e;
    int64_t seq = row->seq;
    int64_t bucket = seq >> 14;  // SQLite's >> on a negative value shifts in sign bits too
    if (row->actor.len >= 0) {
        entry_start(&e, d, ADB_INDEX_ACTOR);
        entry_int(&e, d, bucket);
        entry_bytes(&e, d, 3, row->actor.ptr, (uint32_t)row->actor.len);
        entry_int(&e, d, seq);  // the key (seq >> 0)
        entry_int(&e, d, row->outcome);
        entry_int(&e, d, row->severity);
        entry_bytes(&e, d, 3, row->action.ptr, (uint32_t)row->action.len);
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_ACTOR);
    }
    if (row->resource_id.len >= 0) {
        entry_start(&e, d, ADB_INDEX_RESOURCE);
        entry_int(&e, d, bucket);
        entry_bytes(&e, d, 3, row->resource_id.ptr, (uint32_t)row->resource_id.len);
        entry_int(&e, d, seq);  // the key (seq >> 0)
        entry_int(&e, d, row->outcome);
        entry_int(&e, d, row->severity);
        entry_bytes(&e, d, 3, row->action.ptr, (uint32_t)row->action.len);
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_RESOURCE);
    }
    if (row->tenant.len >= 0) {
        entry_start(&e, d, ADB_INDEX_TENANT_TIME);
        entry_bytes(&e, d, 3, row->tenant.ptr, (uint32_t)row->tenant.len);
        entry_int(&e, d, row->recorded_at);
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_TENANT_TIME);
        entry_start(&e, d, ADB_INDEX_TENANT_SEQ);
        entry_bytes(&e, d, 3, row->tenant.ptr, (uint32_t)row->tenant.len);
        entry_int(&e, d, seq);  // the key (seq >> 0)
        entry_int(&e, d, row->outcome);
        entry_int(&e, d, row->severity);
        entry_bytes(&e, d, 3, row->action.ptr, (uint32_t)row->action.len);
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_TENANT_SEQ);
    }
    entry_start(&e, d, ADB_INDEX_RECORDED_AT);
    entry_int(&e, d, row->recorded_at);
    entry_int(&e, d, seq);
    entry_finish(&e, d, ADB_INDEX_RECORDED_AT);
    if (row->action.len >= 0 && in_engine_range(row->action.ptr, (size_t)row->action.len)) {
        entry_start(&e, d, ADB_INDEX_ENGINE);
        entry_bytes(&e, d, 3, row->action.ptr, (uint32_t)row->action.len);
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_ENGINE);
    }
    if (row->has_origin_ref) {
        entry_start(&e, d, ADB_INDEX_ORIGIN_REF);
        entry_int(&e, d, row->origin_ref);
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_ORIGIN_REF);
    }
}

void adb_index_digest_add_row(adb_index_digest *d, struct sqlite3_stmt *stmt) {
    // Any row, whatever its column types (a malformed row is in the indexes as stored too).
    entry_builder e;
    int64_t seq = sqlite3_column_int64(stmt, ADB_COL_SEQ);
    int64_t bucket = seq >> 14;
    if (sqlite3_column_type(stmt, ADB_COL_ACTOR) != SQLITE_NULL) {
        entry_start(&e, d, ADB_INDEX_ACTOR);
        entry_int(&e, d, bucket);
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_ACTOR));
        entry_int(&e, d, seq);  // the key (seq >> 0)
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_OUTCOME));
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_SEVERITY));
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_ACTION));
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_ACTOR);
    }
    if (sqlite3_column_type(stmt, ADB_COL_RESOURCE_ID) != SQLITE_NULL) {
        entry_start(&e, d, ADB_INDEX_RESOURCE);
        entry_int(&e, d, bucket);
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_RESOURCE_ID));
        entry_int(&e, d, seq);  // the key (seq >> 0)
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_OUTCOME));
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_SEVERITY));
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_ACTION));
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_RESOURCE);
    }
    if (sqlite3_column_type(stmt, ADB_COL_TENANT) != SQLITE_NULL) {
        entry_start(&e, d, ADB_INDEX_TENANT_TIME);
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_TENANT));
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_RECORDED_AT));
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_TENANT_TIME);
        entry_start(&e, d, ADB_INDEX_TENANT_SEQ);
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_TENANT));
        entry_int(&e, d, seq);  // the key (seq >> 0)
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_OUTCOME));
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_SEVERITY));
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_ACTION));
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_TENANT_SEQ);
    }
    entry_start(&e, d, ADB_INDEX_RECORDED_AT);
    entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_RECORDED_AT));
    entry_int(&e, d, seq);
    entry_finish(&e, d, ADB_INDEX_RECORDED_AT);
    if (sqlite3_column_type(stmt, ADB_COL_ACTION) == SQLITE_TEXT) {
        const uint8_t *p = sqlite3_column_text(stmt, ADB_COL_ACTION);
        size_t n = (size_t)sqlite3_column_bytes(stmt, ADB_COL_ACTION);
        if (p && in_engine_range(p, n)) {
            entry_start(&e, d, ADB_INDEX_ENGINE);
            entry_bytes(&e, d, 3, p, (uint32_t)n);
            entry_int(&e, d, seq);
            entry_finish(&e, d, ADB_INDEX_ENGINE);
        }
    }
    if (sqlite3_column_type(stmt, ADB_COL_ORIGIN_REF) != SQLITE_NULL) {
        entry_start(&e, d, ADB_INDEX_ORIGIN_REF);
        entry_value(&e, d, sqlite3_column_value(stmt, ADB_COL_ORIGIN_REF));
        entry_int(&e, d, seq);
        entry_finish(&e, d, ADB_INDEX_ORIGIN_REF);
    }
}

// MARK: The index side, inside SQLite: auditdb_index_digest(key, index, v1, ..., rowid)
//
// An aggregate over a covering index scan. Running inside the VDBE, it avoids a round trip
// through sqlite3_step and the connection mutex of sqlite3_column_* for every entry. Its result is
// an ADB_INDEX_DIGEST_RESULT-byte BLOB: u64 count, u64 sum, u8 disordered, i64 the first disordered
// entry's rowid (little-endian), read by adb_index_digest_absorb. It also checks the entries' order.

// MARK: Key order
//
// A covering scan without ORDER BY visits the b-tree's entries in its key order, so each entry must
// sort strictly after the one before it: the values in turn (all of AuditDB's index columns are
// ascending, BINARY collation), then the rowid. SQLite compares values as sqlite3MemCompare does:
// NULL < INTEGER and REAL (by numeric value) < TEXT (bytes, a prefix first) < BLOB (the same).
// The previous entry is kept as a copy of its values; text and blobs go to a small inline buffer,
// or to a heap buffer that grows (freed in digest_final).

enum { KEY_VALUES_MAX = 8, KEY_INLINE = 512 };

typedef struct {
    int type;
    int64_t i;
    double r;
    size_t off;
    int n;
} key_value;

static int class_rank(int type) {
    switch (type) {
    case SQLITE_NULL: return 0;
    case SQLITE_INTEGER:
    case SQLITE_FLOAT: return 1;
    case SQLITE_TEXT: return 2;
    default: return 3;
    }
}

/// SQLite's comparison of an integer with a real (sqlite3IntFloatCompare without long double).
static int compare_int_real(int64_t i, double r) {
    if (r != r) return 1;  // NaN is never stored (SQLite makes it NULL); order it as SQLite would
    if (r < -9223372036854775808.0) return 1;
    if (r >= 9223372036854775808.0) return -1;
    int64_t y = (int64_t)r;
    if (i < y) return -1;
    if (i > y) return 1;
    double s = (double)i;
    return s < r ? -1 : (s > r ? 1 : 0);
}

static int compare_bytes(const uint8_t *a, int na, const uint8_t *b, int nb) {
    int n = na < nb ? na : nb;
    int c = n > 0 ? memcmp(a, b, (size_t)n) : 0;
    return c != 0 ? (c < 0 ? -1 : 1) : (na < nb ? -1 : (na > nb ? 1 : 0));
}

/// Compares the stored previous value `p` (bytes at `base`) with `v`: <0, 0, >0 as p <, =, > v.
static int compare_value(const key_value *p, const uint8_t *base, sqlite3_value *v) {
    int tv = sqlite3_value_type(v);
    int rp = class_rank(p->type), rv = class_rank(tv);
    if (rp != rv) return rp < rv ? -1 : 1;
    switch (rp) {
    case 0:
        return 0;
    case 1:
        if (p->type == SQLITE_INTEGER && tv == SQLITE_INTEGER) {
            int64_t b = sqlite3_value_int64(v);
            return p->i < b ? -1 : (p->i > b ? 1 : 0);
        }
        if (p->type == SQLITE_INTEGER) return compare_int_real(p->i, sqlite3_value_double(v));
        if (tv == SQLITE_INTEGER) return -compare_int_real(sqlite3_value_int64(v), p->r);
        {
            double b = sqlite3_value_double(v);
            return p->r < b ? -1 : (p->r > b ? 1 : 0);
        }
    case 2: {
        const uint8_t *t = sqlite3_value_text(v);
        return compare_bytes(base + p->off, p->n, t, sqlite3_value_bytes(v));
    }
    default: {
        const uint8_t *t = sqlite3_value_blob(v);
        return compare_bytes(base + p->off, p->n, t, sqlite3_value_bytes(v));
    }
    }
}

typedef struct {
    adb_index_digest digest;
    int index;
    int ready;
    int have_previous;
    key_value previous[KEY_VALUES_MAX];
    uint8_t inline_bytes[KEY_INLINE];
    uint8_t *heap;
    size_t heap_size;
} digest_context;

/// Whether the entry `argv[2..argc-1]` sorts strictly after the previous one (or is the first);
/// then keeps a copy of it. 0 when out of order or on an allocation failure (`*nomem` set).
static int follows_previous(digest_context *c, int argc, sqlite3_value **argv, int *nomem) {
    int count = argc - 2;
    int after = 1;
    if (c->have_previous) {
        const uint8_t *base = c->heap ? c->heap : c->inline_bytes;
        int cmp = 0;
        for (int k = 0; k < count && cmp == 0; k++) cmp = compare_value(&c->previous[k], base, argv[2 + k]);
        after = cmp < 0;
    }
    size_t need = 0;
    for (int k = 0; k < count; k++) {
        int t = sqlite3_value_type(argv[2 + k]);
        if (t == SQLITE_TEXT || t == SQLITE_BLOB) {
            if (t == SQLITE_TEXT) (void)sqlite3_value_text(argv[2 + k]);  // as UTF-8, before its length
            need += (size_t)sqlite3_value_bytes(argv[2 + k]);
        }
    }
    uint8_t *base = c->inline_bytes;
    if (need > KEY_INLINE) {
        if (need > c->heap_size) {
            uint8_t *grown = sqlite3_realloc64(c->heap, need);
            if (grown == NULL) { *nomem = 1; return 0; }
            c->heap = grown;
            c->heap_size = need;
        }
        base = c->heap;
    } else if (c->heap) {
        sqlite3_free(c->heap);
        c->heap = NULL;
        c->heap_size = 0;
    }
    size_t off = 0;
    for (int k = 0; k < count; k++) {
        sqlite3_value *v = argv[2 + k];
        key_value *p = &c->previous[k];
        p->type = sqlite3_value_type(v);
        p->off = off;
        p->n = 0;
        if (p->type == SQLITE_INTEGER) p->i = sqlite3_value_int64(v);
        else if (p->type == SQLITE_FLOAT) p->r = sqlite3_value_double(v);
        else if (p->type == SQLITE_TEXT || p->type == SQLITE_BLOB) {
            const void *bytes = p->type == SQLITE_TEXT ? (const void *)sqlite3_value_text(v) : sqlite3_value_blob(v);
            p->n = sqlite3_value_bytes(v);
            if (p->n > 0 && bytes != NULL) memcpy(base + off, bytes, (size_t)p->n);
            off += (size_t)p->n;
        }
    }
    c->have_previous = 1;
    return after;
}

static void digest_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    digest_context *c = sqlite3_aggregate_context(ctx, (int)sizeof(digest_context));
    if (c == NULL) { sqlite3_result_error_nomem(ctx); return; }
    if (!c->ready) {
        if (argc < 3 || sqlite3_value_bytes(argv[0]) != 16 || sqlite3_value_type(argv[1]) != SQLITE_INTEGER) {
            sqlite3_result_error(ctx, "auditdb_index_digest(key16, index, values..., rowid)", -1);
            return;
        }
        adb_index_digest_init(&c->digest, sqlite3_value_blob(argv[0]));
        c->index = (int)sqlite3_value_int64(argv[1]);
        if (c->index < 0 || c->index >= ADB_INDEX_COUNT) { sqlite3_result_error(ctx, "bad index number", -1); return; }
        if (argc - 2 > KEY_VALUES_MAX) { sqlite3_result_error(ctx, "too many key values", -1); return; }
        c->ready = 1;
    }
    int nomem = 0;
    if (!follows_previous(c, argc, argv, &nomem)) {
        if (nomem) { sqlite3_result_error_nomem(ctx); return; }
        if (!c->digest.disordered[c->index]) {
            c->digest.disordered[c->index] = 1;
            c->digest.disorder_at[c->index] = sqlite3_value_int64(argv[argc - 1]);
        }
    }
    // Fast path: integers and short text laid out in a stack buffer, hashed in one call.
    uint8_t buf[ENTRY_BUFFER];
    uint8_t *p = buf;
    const uint8_t *end = buf + ENTRY_BUFFER - 9;  // room for the rowid
    *p++ = (uint8_t)(c->index + 1);
    for (int i = 2; i < argc - 1; i++) {
        sqlite3_value *v = argv[i];
        int type = sqlite3_value_type(v);
        if (type == SQLITE_INTEGER && end - p >= 9) {
            p = fast_int(p, sqlite3_value_int64(v));
            continue;
        }
        if (type == SQLITE_TEXT) {
            const uint8_t *text = sqlite3_value_text(v);
            int n = sqlite3_value_bytes(v);
            if (text != NULL && n >= 0 && end - p >= 5 + (ptrdiff_t)n) {
                p = fast_text(p, text, (uint32_t)n);
                continue;
            }
        }
        // Anything else (NULL, REAL, BLOB, long text): the general builder.
        entry_builder e;
        entry_start(&e, &c->digest, c->index);
        for (int k = 2; k < argc - 1; k++) entry_value(&e, &c->digest, argv[k]);
        entry_int(&e, &c->digest, sqlite3_value_int64(argv[argc - 1]));
        entry_finish(&e, &c->digest, c->index);
        return;
    }
    p = fast_int(p, sqlite3_value_int64(argv[argc - 1]));
    fast_add(&c->digest, c->index, buf, p);
}

static void digest_final(sqlite3_context *ctx) {
    digest_context *c = sqlite3_aggregate_context(ctx, 0);
    uint8_t out[ADB_INDEX_DIGEST_RESULT] = {0};
    if (c != NULL && c->ready) {
        uint64_t v[3] = {c->digest.count[c->index], c->digest.sum[c->index], (uint64_t)c->digest.disorder_at[c->index]};
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 8; i++) out[8 * k + i] = (uint8_t)(v[k] >> (8 * i));
        out[16] = c->digest.disordered[c->index];
        for (int i = 0; i < 8; i++) out[17 + i] = (uint8_t)(v[2] >> (8 * i));
    }
    if (c != NULL && c->heap) {
        sqlite3_free(c->heap);
        c->heap = NULL;
    }
    sqlite3_result_blob(ctx, out, ADB_INDEX_DIGEST_RESULT, SQLITE_TRANSIENT);
}

int adb_register_index_digest(struct sqlite3 *connection) {
    return sqlite3_create_function_v2(connection, "auditdb_index_digest", -1, SQLITE_UTF8 | SQLITE_DIRECTONLY,
                                      NULL, NULL, digest_step, digest_final, NULL);
}

void adb_index_digest_absorb(adb_index_digest *d, int index, const uint8_t result[ADB_INDEX_DIGEST_RESULT]) {
    uint64_t v[3] = {0, 0, 0};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 8; i++) v[k] |= (uint64_t)result[8 * k + i] << (8 * i);
    for (int i = 0; i < 8; i++) v[2] |= (uint64_t)result[17 + i] << (8 * i);
    d->count[index] += v[0];
    d->sum[index] += v[1];
    if (result[16] && !d->disordered[index]) {
        d->disordered[index] = 1;
        d->disorder_at[index] = (int64_t)v[2];
    }
}
