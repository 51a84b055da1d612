// sqlite_config.c - connection set-up that Swift cannot do itself (sqlite3_db_config is variadic)
// and the legacy-source digest of an adoption. See audit_sqlite.h.
#include "audit_sqlite.h"

#include <sqlite3.h>
#include <string.h>

int adb_sqlite_enable_triggers(struct sqlite3 *connection, int enabled) {
    int now = -1;
    if (sqlite3_db_config(connection, SQLITE_DBCONFIG_ENABLE_TRIGGER, enabled, &now) != SQLITE_OK) return -1;
    return now;
}

int adb_sqlite_set_defensive(struct sqlite3 *connection, int on) {
    int now = -1;
    if (sqlite3_db_config(connection, SQLITE_DBCONFIG_DEFENSIVE, on, &now) != SQLITE_OK) return -1;
    return now;
}

int adb_sqlite_read_main_header(struct sqlite3 *connection, uint8_t *out, int count) {
    sqlite3_file *file = NULL;
    int rc = sqlite3_file_control(connection, "main", SQLITE_FCNTL_FILE_POINTER, &file);
    if (rc != SQLITE_OK) return rc;
    if (file == NULL || file->pMethods == NULL) return SQLITE_NOTFOUND;
    return file->pMethods->xRead(file, out, count, 0);
}

#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>

// Bytes are gathered in `pending` and hashed 16 KB at a time: the legacy-source digest adds two
// short pieces per column (a 5-byte header, then the value), and one SHA256_Update per piece cost
// more than the hashing itself. The digest is that of the same byte stream either way. The buffer
// is allocated by the first adb_digest_columns only (other digests, e.g. one per expiry entry
// during a verification, stay a bare SHA-256 context); without it, pieces are hashed directly.
#define ADB_DIGEST_PENDING 16384

struct adb_digest {
    SHA256_CTX ctx;
    size_t used;
    uint8_t *pending;
};

static void digest_flush(adb_digest *state) {
    if (state->used) SHA256_Update(&state->ctx, state->pending, state->used);
    state->used = 0;
}

static void digest_add(adb_digest *state, const uint8_t *bytes, size_t len) {
    if (!state->pending) {
        SHA256_Update(&state->ctx, bytes, len);
        return;
    }
    if (len > ADB_DIGEST_PENDING - state->used) {
        digest_flush(state);
        if (len >= ADB_DIGEST_PENDING) {
            SHA256_Update(&state->ctx, bytes, len);
            return;
        }
    }
    memcpy(state->pending + state->used, bytes, len);
    state->used += len;
}

adb_digest *adb_digest_start(void) {
    adb_digest *state = malloc(sizeof *state);
    if (state) {
        SHA256_Init(&state->ctx);
        state->used = 0;
        state->pending = NULL;
    }
    return state;
}

void adb_digest_finish(adb_digest *state, uint8_t out[ADB_HASH_LEN]) {
    if (!state) return;
    uint8_t digest[ADB_HASH_LEN];
    if (state->pending) {
        digest_flush(state);
        OPENSSL_cleanse(state->pending, ADB_DIGEST_PENDING);
        free(state->pending);
    }
    SHA256_Final(digest, &state->ctx);
    if (out) memcpy(out, digest, ADB_HASH_LEN);
    OPENSSL_cleanse(state, sizeof *state);
    free(state);
}

void adb_digest_update(adb_digest *state, const uint8_t *bytes, size_t len) {
    if (state && len) digest_add(state, bytes, len);
}

static void digest_piece(adb_digest *state, uint8_t type, const void *bytes, uint32_t length) {
    if (!state->pending) state->pending = malloc(ADB_DIGEST_PENDING);  // NULL: hashed piece by piece
    uint8_t header[5] = {type, (uint8_t)(length >> 24), (uint8_t)(length >> 16), (uint8_t)(length >> 8), (uint8_t)length};
    digest_add(state, header, sizeof header);
    if (bytes && length) digest_add(state, bytes, length);
}

void adb_digest_columns(adb_digest *state, adb_digest *legacy, struct sqlite3_stmt *s, int count) {
    for (int i = 0; i < count; i++) {
        int type = sqlite3_column_type(s, i);  // before any conversion, which makes it undefined
        if (type == SQLITE_FLOAT) {
            // The exact value: the IEEE 754 bits, big-endian (digest 2). SQLite's own text for a
            // REAL keeps 15 significant digits only, which digest 1 (legacy) hashed.
            double d = sqlite3_column_double(s, i);
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            uint8_t be[8];
            for (int b = 0; b < 8; b++) be[b] = (uint8_t)(bits >> (56 - 8 * b));
            digest_piece(state, (uint8_t)type, be, sizeof be);
        }
        const void *bytes = sqlite3_column_blob(s, i);  // before _bytes, as SQLite requires
        uint32_t length = (uint32_t)sqlite3_column_bytes(s, i);
        if (type != SQLITE_FLOAT) digest_piece(state, (uint8_t)type, bytes, length);
        if (legacy) digest_piece(legacy, (uint8_t)type, bytes, length);
    }
}
