// index_digest.c - proves that each query index holds exactly the entries its table rows imply
// (docs/FORMAT.md, section 11 step 7). Both sides fold their entries into an order-independent
// digest: per index, the count of entries and two 64-bit sums of a keyed 128-bit SipHash-2-4 of
// each entry. The table side is computed from the rows the verifier reads anyway; the index side
// from one covering scan of each index. The SipHash key is random per verification pass, so
// someone who edits the file beforehand cannot make a changed, missing or extra entry cancel out.
#include "audit_core.h"

#include <sqlite3.h>
#include <string.h>

// MARK: SipHash-2-4, 128-bit output (Aumasson & Bernstein, "SipHash: a fast short-input PRF").

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                   \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                      \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                      \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                   \
    } while (0)

typedef struct {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;    // bytes not yet compressed, little-endian
    unsigned ntail;   // how many (0..7)
    uint64_t total;   // bytes absorbed
} sip_state;

static void sip_init(sip_state *s, uint64_t k0, uint64_t k1) {
    s->v0 = 0x736f6d6570736575ULL ^ k0;
    s->v1 = 0x646f72616e646f6dULL ^ k1 ^ 0xee;  // 0xee: the 128-bit output variant
    s->v2 = 0x6c7967656e657261ULL ^ k0;
    s->v3 = 0x7465646279746573ULL ^ k1;
    s->tail = 0;
    s->ntail = 0;
    s->total = 0;
}

static inline void sip_compress(sip_state *s, uint64_t m) {
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    s->v0 = v0; s->v1 = v1; s->v2 = v2; s->v3 = v3;
}

static void sip_update(sip_state *s, const uint8_t *p, size_t n) {
    s->total += n;
    while (n > 0 && s->ntail != 0) {
        s->tail |= (uint64_t)*p++ << (8 * s->ntail);
        n--;
        if (++s->ntail == 8) { sip_compress(s, s->tail); s->tail = 0; s->ntail = 0; }
    }
    while (n >= 8) {
        uint64_t m = 0;
        for (int i = 0; i < 8; i++) m |= (uint64_t)p[i] << (8 * i);
        sip_compress(s, m);
        p += 8;
        n -= 8;
    }
    while (n > 0) { s->tail |= (uint64_t)*p++ << (8 * s->ntail); s->ntail++; n--; }
}

static void sip_final128(sip_state *s, uint64_t out[2]) {
    uint64_t b = (s->total << 56) | s->tail;
    sip_compress(s, b);
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    v2 ^= 0xee;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}

void adb_siphash128(const uint8_t key[16], const uint8_t *msg, size_t len, uint8_t out[16]) {
    uint64_t k0 = 0, k1 = 0;
    for (int i = 0; i < 8; i++) { k0 |= (uint64_t)key[i] << (8 * i); k1 |= (uint64_t)key[8 + i] << (8 * i); }
    sip_state s;
    sip_init(&s, k0, k1);
    sip_update(&s, msg, len);
    uint64_t h[2];
    sip_final128(&s, h);
    for (int i = 0; i < 8; i++) { out[i] = (uint8_t)(h[0] >> (8 * i)); out[8 + i] = (uint8_t)(h[1] >> (8 * i)); }
}

// MARK: Entries

void adb_index_digest_init(adb_index_digest *d, const uint8_t key[16]) {
    memset(d, 0, sizeof *d);
    for (int i = 0; i < 8; i++) { d->k0 |= (uint64_t)key[i] << (8 * i); d->k1 |= (uint64_t)key[8 + i] << (8 * i); }
}

void adb_index_digest_merge(adb_index_digest *into, const adb_index_digest *from) {
    for (int i = 0; i < ADB_INDEX_COUNT; i++) {
        into->count[i] += from->count[i];
        into->sum[i][0] += from->sum[i][0];
        into->sum[i][1] += from->sum[i][1];
    }
}

int adb_index_digest_equal(const adb_index_digest *a, const adb_index_digest *b, int index) {
    return a->count[index] == b->count[index] && a->sum[index][0] == b->sum[index][0] && a->sum[index][1] == b->sum[index][1];
}

/// Absorbs one value as FORMAT.md section 11 step 7 encodes it: a type byte, then
/// 1 INTEGER: i64 big-endian; 2 REAL: the IEEE 754 bits, big-endian; 3 TEXT and 4 BLOB: u32
/// big-endian byte length, then the bytes; 5 NULL: nothing.
static void absorb_value(sip_state *s, sqlite3_stmt *stmt, int column) {
    uint8_t head[9];
    int type = sqlite3_column_type(stmt, column);
    switch (type) {
    case SQLITE_INTEGER:
    case SQLITE_FLOAT: {
        uint64_t v;
        if (type == SQLITE_INTEGER) {
            v = (uint64_t)sqlite3_column_int64(stmt, column);
        } else {
            double f = sqlite3_column_double(stmt, column);
            memcpy(&v, &f, 8);
        }
        head[0] = type == SQLITE_INTEGER ? 1 : 2;
        for (int i = 0; i < 8; i++) head[1 + i] = (uint8_t)(v >> (56 - 8 * i));
        sip_update(s, head, 9);
        break;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        const uint8_t *p = type == SQLITE_TEXT ? sqlite3_column_text(stmt, column) : sqlite3_column_blob(stmt, column);
        uint32_t n = (uint32_t)sqlite3_column_bytes(stmt, column);
        head[0] = type == SQLITE_TEXT ? 3 : 4;
        head[1] = (uint8_t)(n >> 24); head[2] = (uint8_t)(n >> 16); head[3] = (uint8_t)(n >> 8); head[4] = (uint8_t)n;
        sip_update(s, head, 5);
        if (p && n) sip_update(s, p, n);
        break;
    }
    default:
        head[0] = 5;
        sip_update(s, head, 1);
        break;
    }
}

static void absorb_int(sip_state *s, int64_t value) {
    uint8_t head[9];
    head[0] = 1;
    for (int i = 0; i < 8; i++) head[1 + i] = (uint8_t)((uint64_t)value >> (56 - 8 * i));
    sip_update(s, head, 9);
}

static void add_entry(adb_index_digest *d, int index, sip_state *s) {
    uint64_t h[2];
    sip_final128(s, h);
    d->count[index] += 1;
    d->sum[index][0] += h[0];
    d->sum[index][1] += h[1];
}

static void start_entry(const adb_index_digest *d, sip_state *s, int index) {
    sip_init(s, d->k0, d->k1);
    uint8_t id = (uint8_t)(index + 1);
    sip_update(s, &id, 1);
}

/// Whether a value is in [lo, hi) as SQLite compares TEXT with the BINARY collation (memcmp,
/// then the shorter first); values of other types never are (INTEGER and REAL sort below TEXT,
/// BLOB above it, NULL is not compared).
static int text_in_range(sqlite3_stmt *stmt, int column, const char *lo, const char *hi) {
    if (sqlite3_column_type(stmt, column) != SQLITE_TEXT) return 0;
    const unsigned char *p = sqlite3_column_text(stmt, column);
    size_t n = (size_t)sqlite3_column_bytes(stmt, column);
    size_t nlo = strlen(lo), nhi = strlen(hi);
    int c = memcmp(p, lo, n < nlo ? n : nlo);
    if (c < 0 || (c == 0 && n < nlo)) return 0;
    c = memcmp(p, hi, n < nhi ? n : nhi);
    return c < 0 || (c == 0 && n < nhi);
}

// Columns of the verifier's row statement (adb_stmt_read_row).
enum { C_SEQ = 0, C_RECORDED_AT = 1, C_TENANT = 3, C_ACTOR = 4, C_ACTION = 5, C_RESOURCE_ID = 7, C_ORIGIN_REF = 14 };

void adb_index_digest_add_row(adb_index_digest *d, void *statement) {
    sqlite3_stmt *stmt = (sqlite3_stmt *)statement;
    sip_state s;
    int64_t seq = sqlite3_column_int64(stmt, C_SEQ);
    int64_t bucket = seq >> 14;  // SQLite's >> on a negative value shifts in sign bits too
    if (sqlite3_column_type(stmt, C_ACTOR) != SQLITE_NULL) {
        start_entry(d, &s, ADB_INDEX_ACTOR);
        absorb_int(&s, bucket);
        absorb_value(&s, stmt, C_ACTOR);
        absorb_int(&s, seq);
        add_entry(d, ADB_INDEX_ACTOR, &s);
    }
    if (sqlite3_column_type(stmt, C_RESOURCE_ID) != SQLITE_NULL) {
        start_entry(d, &s, ADB_INDEX_RESOURCE);
        absorb_int(&s, bucket);
        absorb_value(&s, stmt, C_RESOURCE_ID);
        absorb_int(&s, seq);
        add_entry(d, ADB_INDEX_RESOURCE, &s);
    }
    if (sqlite3_column_type(stmt, C_TENANT) != SQLITE_NULL) {
        start_entry(d, &s, ADB_INDEX_TENANT_TIME);
        absorb_value(&s, stmt, C_TENANT);
        absorb_value(&s, stmt, C_RECORDED_AT);
        absorb_int(&s, seq);
        add_entry(d, ADB_INDEX_TENANT_TIME, &s);
    }
    start_entry(d, &s, ADB_INDEX_RECORDED_AT);
    absorb_value(&s, stmt, C_RECORDED_AT);
    absorb_int(&s, seq);
    add_entry(d, ADB_INDEX_RECORDED_AT, &s);
    if (text_in_range(stmt, C_ACTION, "auditdb.", "auditdb/")) {
        start_entry(d, &s, ADB_INDEX_ENGINE);
        absorb_value(&s, stmt, C_ACTION);
        absorb_int(&s, seq);
        add_entry(d, ADB_INDEX_ENGINE, &s);
    }
    if (sqlite3_column_type(stmt, C_ORIGIN_REF) != SQLITE_NULL) {
        start_entry(d, &s, ADB_INDEX_ORIGIN_REF);
        absorb_value(&s, stmt, C_ORIGIN_REF);
        absorb_int(&s, seq);
        add_entry(d, ADB_INDEX_ORIGIN_REF, &s);
    }
}

int adb_index_digest_scan(adb_index_digest *d, int index, void *statement, int columns) {
    sqlite3_stmt *stmt = (sqlite3_stmt *)statement;
    for (;;) {
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) return rc;
        sip_state s;
        start_entry(d, &s, index);
        // The key columns as stored in the index, then its rowid (the last column, an INTEGER).
        for (int c = 0; c < columns - 1; c++) absorb_value(&s, stmt, c);
        absorb_int(&s, sqlite3_column_int64(stmt, columns - 1));
        add_entry(d, index, &s);
    }
}
