// row_codec.c - the signed row as SQLite holds it: reader, binder and the verifier's fast path.
// See audit_row.h; the column order is ADB_ROW_COLUMNS.
#include "audit_row.h"

#include <sqlite3.h>
#include <string.h>

// A text column's bytes. Text is read as text, a blob as its bytes; a number in a text column
// (a malformed row) reads as NULL. Nothing is converted: SQLite converts a value in place when it
// is read as another type, after which its type reads differently, and a row must read the same
// however often it is read (the verifier's fast path and the row-by-row path read it twice).
static inline adb_bytes value_text(sqlite3_value *v, int type) {
    adb_bytes b;
    const unsigned char *p = NULL;
    if (type == SQLITE_TEXT) p = sqlite3_value_text(v);
    else if (type == SQLITE_BLOB) p = sqlite3_value_blob(v);
    if (p == NULL) {
        b.ptr = type == SQLITE_BLOB ? (const uint8_t *)"" : NULL;
        b.len = type == SQLITE_BLOB ? 0 : -1;
    } else {
        b.ptr = p;
        b.len = sqlite3_value_bytes(v);
    }
    return b;
}

// The row's 19 columns are taken once each as sqlite3_value (one column call per column) and
// read through the sqlite3_value_* accessors, which skip the per-call statement bookkeeping of
// sqlite3_column_*: this loop runs once per row of every full pass. The values are valid until
// the next step, like the column pointers they replace; connections are opened without a mutex
// (GRDB's multi-thread mode), so protected and unprotected values do not differ.
int adb_stmt_read_row(struct sqlite3_stmt *s, uint8_t max_format, adb_row *row, const uint8_t **mac,
                      int *column) {
    static const int integers[] = {ADB_COL_RECORDED_AT, ADB_COL_OUTCOME, ADB_COL_SEVERITY,
                                   ADB_COL_ORIGIN, ADB_COL_FORMAT_VERSION, ADB_COL_KEY_VERSION};
    static const int optional_integers[] = {ADB_COL_OCCURRED_AT, ADB_COL_ORIGIN_REF};
    static const int texts[] = {ADB_COL_TENANT, ADB_COL_ACTOR, ADB_COL_ACTION, ADB_COL_RESOURCE_TYPE,
                                ADB_COL_RESOURCE_ID, ADB_COL_CORRELATION_ID, ADB_COL_SOURCE, ADB_COL_DETAILS};
    sqlite3_value *v[ADB_COL_COUNT];
    int types[ADB_COL_COUNT];
    for (int i = 0; i < ADB_COL_COUNT; i++) {
        v[i] = sqlite3_column_value(s, i);
        types[i] = sqlite3_value_type(v[i]);
    }
    sqlite3_int64 outcome = sqlite3_value_int64(v[ADB_COL_OUTCOME]), severity = sqlite3_value_int64(v[ADB_COL_SEVERITY]);
    sqlite3_int64 origin = sqlite3_value_int64(v[ADB_COL_ORIGIN]), format = sqlite3_value_int64(v[ADB_COL_FORMAT_VERSION]);
    sqlite3_int64 kv = sqlite3_value_int64(v[ADB_COL_KEY_VERSION]);
    row->seq = sqlite3_value_int64(v[ADB_COL_SEQ]);
    row->recorded_at = sqlite3_value_int64(v[ADB_COL_RECORDED_AT]);
    row->has_occurred_at = types[ADB_COL_OCCURRED_AT] != SQLITE_NULL;
    row->occurred_at = row->has_occurred_at ? sqlite3_value_int64(v[ADB_COL_OCCURRED_AT]) : 0;
    row->has_origin_ref = types[ADB_COL_ORIGIN_REF] != SQLITE_NULL;
    row->origin_ref = row->has_origin_ref ? sqlite3_value_int64(v[ADB_COL_ORIGIN_REF]) : 0;
    row->outcome = (uint8_t)outcome;
    row->severity = (uint8_t)severity;
    row->origin = (uint8_t)origin;
    row->format_version = (uint8_t)format;
    row->key_version = (uint32_t)kv;
    const void *mac_bytes = types[ADB_COL_MAC] == SQLITE_BLOB ? sqlite3_value_blob(v[ADB_COL_MAC]) : NULL;
    int mac_ok = mac_bytes != NULL && sqlite3_value_bytes(v[ADB_COL_MAC]) == ADB_MAC_LEN;  // blob before bytes
    *mac = mac_ok ? (const uint8_t *)mac_bytes : NULL;
    row->tenant = value_text(v[ADB_COL_TENANT], types[ADB_COL_TENANT]);
    row->actor = value_text(v[ADB_COL_ACTOR], types[ADB_COL_ACTOR]);
    row->action = value_text(v[ADB_COL_ACTION], types[ADB_COL_ACTION]);
    row->resource_type = value_text(v[ADB_COL_RESOURCE_TYPE], types[ADB_COL_RESOURCE_TYPE]);
    row->resource_id = value_text(v[ADB_COL_RESOURCE_ID], types[ADB_COL_RESOURCE_ID]);
    row->correlation_id = value_text(v[ADB_COL_CORRELATION_ID], types[ADB_COL_CORRELATION_ID]);
    row->source = value_text(v[ADB_COL_SOURCE], types[ADB_COL_SOURCE]);
    row->details = value_text(v[ADB_COL_DETAILS], types[ADB_COL_DETAILS]);
    row->seals = types[ADB_COL_SEALS] == SQLITE_BLOB ? (const uint8_t *)sqlite3_value_blob(v[ADB_COL_SEALS]) : NULL;
    row->seals_len = row->seals ? sqlite3_value_bytes(v[ADB_COL_SEALS]) : 0;  // blob before bytes

    *column = -1;
    for (size_t k = 0; k < sizeof integers / sizeof *integers; k++) {
        if (types[integers[k]] != SQLITE_INTEGER) { *column = integers[k]; return ADB_SHAPE_NOT_INTEGER; }
    }
    for (size_t k = 0; k < sizeof optional_integers / sizeof *optional_integers; k++) {
        int t = types[optional_integers[k]];
        if (t != SQLITE_INTEGER && t != SQLITE_NULL) { *column = optional_integers[k]; return ADB_SHAPE_NOT_INTEGER_OR_NULL; }
    }
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        int t = types[texts[k]];
        if (t != SQLITE_TEXT && t != SQLITE_NULL) { *column = texts[k]; return ADB_SHAPE_NOT_TEXT_OR_NULL; }
    }
    if (types[ADB_COL_ACTION] == SQLITE_NULL) { *column = ADB_COL_ACTION; return ADB_SHAPE_ACTION_NULL; }
    if (!mac_ok) { *column = ADB_COL_MAC; return ADB_SHAPE_BAD_MAC; }
    if (outcome < 0 || outcome > 3 || severity < 0 || severity > 3 || origin < 0 || origin > 1) return ADB_SHAPE_BAD_CODE;
    if (format < 1 || format > max_format) { *column = ADB_COL_FORMAT_VERSION; return ADB_SHAPE_BAD_FORMAT; }
    if (kv < 0 || kv > 0xFFFFFFFFLL) { *column = ADB_COL_KEY_VERSION; return ADB_SHAPE_BAD_KEY_VERSION; }
    if (format == ADB_FORMAT_KEYED_NONCES ? types[ADB_COL_SEALS] != SQLITE_NULL
                                          : !adb_seals_valid(row->seals, row->seals_len, row->actor, row->source, row->details)) {
        *column = ADB_COL_SEALS;
        return ADB_SHAPE_BAD_SEALS;
    }
    return ADB_SHAPE_OK;
}

static int bind_text(struct sqlite3_stmt *s, int index, adb_bytes b) {
    if (b.len < 0) return sqlite3_bind_null(s, index);
    if (b.len > 0x7FFFFFFF) return SQLITE_TOOBIG;
    return sqlite3_bind_text(s, index, b.len ? (const char *)b.ptr : "", (int)b.len, SQLITE_STATIC);
}

static int bind_optional(struct sqlite3_stmt *s, int index, int32_t present, int64_t v) {
    return present ? sqlite3_bind_int64(s, index, v) : sqlite3_bind_null(s, index);
}

int adb_stmt_bind_row(struct sqlite3_stmt *s, const adb_row *row, const uint8_t mac[ADB_MAC_LEN]) {
    int rc;
#define BIND(call) do { if ((rc = (call)) != SQLITE_OK) return rc; } while (0)
    BIND(sqlite3_bind_int64(s, ADB_COL_SEQ + 1, row->seq));
    BIND(sqlite3_bind_int64(s, ADB_COL_RECORDED_AT + 1, row->recorded_at));
    BIND(bind_optional(s, ADB_COL_OCCURRED_AT + 1, row->has_occurred_at, row->occurred_at));
    BIND(bind_text(s, ADB_COL_TENANT + 1, row->tenant));
    BIND(bind_text(s, ADB_COL_ACTOR + 1, row->actor));
    BIND(bind_text(s, ADB_COL_ACTION + 1, row->action));
    BIND(bind_text(s, ADB_COL_RESOURCE_TYPE + 1, row->resource_type));
    BIND(bind_text(s, ADB_COL_RESOURCE_ID + 1, row->resource_id));
    BIND(sqlite3_bind_int64(s, ADB_COL_OUTCOME + 1, row->outcome));
    BIND(sqlite3_bind_int64(s, ADB_COL_SEVERITY + 1, row->severity));
    BIND(bind_text(s, ADB_COL_CORRELATION_ID + 1, row->correlation_id));
    BIND(bind_text(s, ADB_COL_SOURCE + 1, row->source));
    BIND(bind_text(s, ADB_COL_DETAILS + 1, row->details));
    BIND(sqlite3_bind_int64(s, ADB_COL_ORIGIN + 1, row->origin));
    BIND(bind_optional(s, ADB_COL_ORIGIN_REF + 1, row->has_origin_ref, row->origin_ref));
    BIND(sqlite3_bind_int64(s, ADB_COL_FORMAT_VERSION + 1, row->format_version));
    BIND(sqlite3_bind_int64(s, ADB_COL_KEY_VERSION + 1, row->key_version));
    BIND(sqlite3_bind_blob(s, ADB_COL_MAC + 1, mac, ADB_MAC_LEN, SQLITE_STATIC));
    if (sqlite3_bind_parameter_count(s) <= ADB_COL_SEALS) {
        // An insert without `seals` (a store without migration 0006): only format-1 rows fit.
        if (row->format_version != ADB_FORMAT_KEYED_NONCES) return SQLITE_MISMATCH;
    } else if (row->format_version == ADB_FORMAT_SEALED && row->seals) {
        BIND(sqlite3_bind_blob(s, ADB_COL_SEALS + 1, row->seals, (int)row->seals_len, SQLITE_STATIC));
    } else {
        BIND(sqlite3_bind_null(s, ADB_COL_SEALS + 1));
    }
#undef BIND
    return SQLITE_OK;
}

int adb_verify_run(struct sqlite3_stmt *s, const adb_key_entry *keys, int key_count,
                   const uint8_t store_id[ADB_STORE_ID_LEN], uint8_t max_format, int64_t *expected_seq,
                   uint8_t prev_mac[ADB_MAC_LEN], int64_t *checked, adb_index_digest *index_digest,
                   int64_t max_rows) {
    const adb_key_entry *last = key_count > 0 ? &keys[0] : NULL;
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) return rc;
        if (*checked >= max_rows) return SQLITE_ROW;
        // The last possible seq goes to the caller too: there is no seq after it to expect.
        if (sqlite3_column_int64(s, ADB_COL_SEQ) != *expected_seq || *expected_seq == INT64_MAX) return SQLITE_ROW;
        adb_row row;
        const uint8_t *mac = NULL;
        int column;
        if (adb_stmt_read_row(s, max_format, &row, &mac, &column) != ADB_SHAPE_OK) return SQLITE_ROW;
        // A row with erased fields goes to the caller, which lists it for the erasure check
        // (FORMAT.md 21.4 rule 2) so that a full pass need not read every row's seals again.
        if (row.seals_len == ADB_SEALS_ERASED_LEN) return SQLITE_ROW;
        if (last == NULL || last->version != row.key_version) {
            last = NULL;
            for (int k = 0; k < key_count; k++) {
                if (keys[k].version == row.key_version) { last = &keys[k]; break; }
            }
            if (last == NULL) return SQLITE_ROW;
        }
        if (!last->trusted) return SQLITE_ROW;
        if (adb_row_check(last->keyset, store_id, &row, prev_mac, mac, ADB_MAC_LEN) != ADB_OK) return SQLITE_ROW;
        memcpy(prev_mac, mac, ADB_MAC_LEN);
        if (index_digest) adb_index_digest_add_parsed(index_digest, &row);
        *expected_seq += 1;
        *checked += 1;
    }
}

int adb_walk_tombstones(struct sqlite3_stmt *s, const adb_key_entry *keys, int key_count,
                        const uint8_t store_id[ADB_STORE_ID_LEN], int64_t *expected_seq, uint8_t prev_mac[ADB_MAC_LEN],
                        int64_t *walked) {
    const adb_key_entry *last = key_count > 0 ? &keys[0] : NULL;
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) return rc;
        if (sqlite3_column_int64(s, 0) != *expected_seq || *expected_seq == INT64_MAX) return SQLITE_ROW;
        if (sqlite3_column_type(s, 1) != SQLITE_INTEGER || sqlite3_column_type(s, 2) != SQLITE_BLOB) return SQLITE_ROW;
        sqlite3_int64 kv = sqlite3_column_int64(s, 1);
        const uint8_t *mac = (const uint8_t *)sqlite3_column_blob(s, 2);  // before _bytes, as SQLite requires
        if (mac == NULL || sqlite3_column_bytes(s, 2) != ADB_MAC_LEN || kv < 0 || kv > 0xFFFFFFFFLL) return SQLITE_ROW;
        if (last == NULL || last->version != (uint32_t)kv) {
            last = NULL;
            for (int k = 0; k < key_count; k++) {
                if (keys[k].version == (uint32_t)kv) { last = &keys[k]; break; }
            }
            if (last == NULL) return SQLITE_ROW;
        }
        if (!adb_link_check(last->keyset, store_id, *expected_seq, mac, prev_mac)) return SQLITE_ROW;
        memcpy(prev_mac, mac, ADB_MAC_LEN);
        *expected_seq += 1;
        *walked += 1;
    }
}
