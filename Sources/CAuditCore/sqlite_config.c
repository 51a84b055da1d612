// sqlite_config.c - the C parts that call SQLite: sqlite3_db_config (variadic, so Swift cannot call it)
// and the verifier's per-row column reader.
#include "audit_core.h"

#include <sqlite3.h>
#include <string.h>

int adb_sqlite_enable_triggers(void *connection, int enabled) {
    int now = -1;
    if (sqlite3_db_config((sqlite3 *)connection, SQLITE_DBCONFIG_ENABLE_TRIGGER, enabled, &now) != SQLITE_OK) return -1;
    return now;
}

int adb_sqlite_set_defensive(void *connection, int on) {
    int now = -1;
    if (sqlite3_db_config((sqlite3 *)connection, SQLITE_DBCONFIG_DEFENSIVE, on, &now) != SQLITE_OK) return -1;
    return now;
}

static inline adb_bytes value_text(sqlite3_value *v, int type) {
    adb_bytes b;
    const unsigned char *p = type == SQLITE_NULL ? NULL : sqlite3_value_text(v);
    if (p == NULL) {
        b.ptr = NULL;
        b.len = -1;
    } else {
        b.ptr = p;
        b.len = sqlite3_value_bytes(v);
    }
    return b;
}

// The row's 18 columns are taken once each as sqlite3_value (one column call per column) and
// read through the sqlite3_value_* accessors, which skip the per-call statement bookkeeping of
// sqlite3_column_*: this loop runs once per row of every full pass. The values are valid until
// the next step, like the column pointers they replace; connections are opened without a mutex
// (GRDB's multi-thread mode), so protected and unprotected values do not differ.
int adb_stmt_read_row(void *statement, uint8_t expected_format, adb_row *row, const uint8_t **mac, int *column) {
    static const int integers[] = {1, 8, 9, 13, 15, 16};
    static const int optional_integers[] = {2, 14};
    static const int texts[] = {3, 4, 5, 6, 7, 10, 11, 12};
    sqlite3_stmt *s = (sqlite3_stmt *)statement;
    sqlite3_value *v[18];
    int types[18];
    for (int i = 0; i < 18; i++) {
        v[i] = sqlite3_column_value(s, i);
        types[i] = sqlite3_value_type(v[i]);
    }
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
    if (types[5] == SQLITE_NULL) { *column = 5; return ADB_SHAPE_ACTION_NULL; }
    if (types[17] != SQLITE_BLOB) { *column = 17; return ADB_SHAPE_BAD_MAC; }
    const void *mac_bytes = sqlite3_value_blob(v[17]);  // before _bytes, as SQLite requires
    if (sqlite3_value_bytes(v[17]) != ADB_MAC_LEN) { *column = 17; return ADB_SHAPE_BAD_MAC; }
    sqlite3_int64 outcome = sqlite3_value_int64(v[8]), severity = sqlite3_value_int64(v[9]);
    sqlite3_int64 origin = sqlite3_value_int64(v[13]), format = sqlite3_value_int64(v[15]);
    sqlite3_int64 kv = sqlite3_value_int64(v[16]);
    if (outcome < 0 || outcome > 3 || severity < 0 || severity > 3 || origin < 0 || origin > 1) return ADB_SHAPE_BAD_CODE;
    if (format != expected_format) { *column = 15; return ADB_SHAPE_BAD_FORMAT; }
    if (kv < 0 || kv > 0xFFFFFFFFLL) { *column = 16; return ADB_SHAPE_BAD_KEY_VERSION; }
    *mac = (const uint8_t *)mac_bytes;
    row->seq = sqlite3_value_int64(v[0]);
    row->recorded_at = sqlite3_value_int64(v[1]);
    row->has_occurred_at = types[2] != SQLITE_NULL;
    row->occurred_at = row->has_occurred_at ? sqlite3_value_int64(v[2]) : 0;
    row->tenant = value_text(v[3], types[3]);
    row->actor = value_text(v[4], types[4]);
    row->action = value_text(v[5], types[5]);
    row->resource_type = value_text(v[6], types[6]);
    row->resource_id = value_text(v[7], types[7]);
    row->outcome = (uint8_t)outcome;
    row->severity = (uint8_t)severity;
    row->correlation_id = value_text(v[10], types[10]);
    row->source = value_text(v[11], types[11]);
    row->details = value_text(v[12], types[12]);
    row->origin = (uint8_t)origin;
    row->has_origin_ref = types[14] != SQLITE_NULL;
    row->origin_ref = row->has_origin_ref ? sqlite3_value_int64(v[14]) : 0;
    row->format_version = (uint8_t)format;
    row->key_version = (uint32_t)kv;
    return ADB_SHAPE_OK;
}

int adb_verify_run(void *statement, const adb_key_entry *keys, int key_count, const uint8_t store_id[ADB_STORE_ID_LEN],
                   uint8_t expected_format, int64_t *expected_seq, uint8_t prev_mac[ADB_MAC_LEN], int64_t *checked,
                   adb_index_digest *index_digest) {
    sqlite3_stmt *s = (sqlite3_stmt *)statement;
    const adb_key_entry *last = key_count > 0 ? &keys[0] : NULL;
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) return rc;
        if (sqlite3_column_int64(s, 0) != *expected_seq) return SQLITE_ROW;
        adb_row row;
        const uint8_t *mac = NULL;
        int column;
        if (adb_stmt_read_row(s, expected_format, &row, &mac, &column) != ADB_SHAPE_OK) return SQLITE_ROW;
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

#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>

struct adb_digest {
    SHA256_CTX ctx;
};

adb_digest *adb_digest_start(void) {
    adb_digest *state = malloc(sizeof *state);
    if (state) SHA256_Init(&state->ctx);
    return state;
}

void adb_digest_finish(adb_digest *state, uint8_t out[ADB_HASH_LEN]) {
    if (!state) return;
    uint8_t digest[ADB_HASH_LEN];
    SHA256_Final(digest, &state->ctx);
    if (out) memcpy(out, digest, ADB_HASH_LEN);
    free(state);
}

void adb_digest_columns(adb_digest *state, void *statement, int count) {
    sqlite3_stmt *s = (sqlite3_stmt *)statement;
    for (int i = 0; i < count; i++) {
        uint8_t header[5];
        header[0] = (uint8_t)sqlite3_column_type(s, i);
        const void *bytes = sqlite3_column_blob(s, i);  // before _bytes, as SQLite requires
        uint32_t length = (uint32_t)sqlite3_column_bytes(s, i);
        header[1] = (uint8_t)(length >> 24);
        header[2] = (uint8_t)(length >> 16);
        header[3] = (uint8_t)(length >> 8);
        header[4] = (uint8_t)length;
        SHA256_Update(&state->ctx, header, sizeof header);
        if (bytes && length) SHA256_Update(&state->ctx, bytes, length);
    }
}
