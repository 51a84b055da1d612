// audit_core.h - AuditDB's per-row cryptography: the canonical row encoding (format version 1),
// field commitments, and the row/link tags. docs/FORMAT.md specifies every byte; this file is
// the reference implementation of that text. Only SHA-256 and HMAC-SHA256 are used, through
// OpenSSL's SHA-256 (which uses the CPU's SHA extensions; see docs/performance.md).
#ifndef AUDITDB_AUDIT_CORE_H
#define AUDITDB_AUDIT_CORE_H

#include <stddef.h>
#include <stdint.h>

#define ADB_STORE_ID_LEN 16
#define ADB_MAC_LEN 32
#define ADB_TAG_LEN 16
#define ADB_KEY_LEN 32
#define ADB_HASH_LEN 32

/// Field identifiers of the committed (withholdable) fields.
enum { ADB_FIELD_ACTOR = 1, ADB_FIELD_SOURCE = 2, ADB_FIELD_DETAILS = 3 };

/// Results of adb_row_check.
enum {
    ADB_OK = 0,
    ADB_ROW_TAG_MISMATCH = 1,   ///< the row's values (or seq, store, key version) changed
    ADB_LINK_TAG_MISMATCH = 2,  ///< the row is intact but does not follow the previous row
    ADB_BAD_MAC_LENGTH = 3,     ///< the stored MAC is not 32 bytes
};

/// Prekeyed HMAC-SHA256 states derived from one 32-byte master key. Opaque; allocate
/// adb_keyset_size() bytes (secure memory) and call adb_keyset_init.
typedef struct adb_keyset adb_keyset;

size_t adb_keyset_size(void);
/// Derives K_mac and K_nonce from `master` (FORMAT.md, "Keys") into `ks`.
void adb_keyset_init(adb_keyset *ks, const uint8_t master[ADB_KEY_LEN]);
/// Overwrites `ks` with zeros.
void adb_keyset_wipe(adb_keyset *ks);

/// Bytes of a text field; len < 0 means SQL NULL.
typedef struct {
    const uint8_t *ptr;
    int64_t len;
} adb_bytes;

/// One row as stored. Integers are as in the table; the caller has range-checked them.
typedef struct {
    int64_t seq;
    int64_t recorded_at;
    int64_t occurred_at;
    int32_t has_occurred_at;
    uint32_t key_version;
    uint8_t format_version;
    uint8_t outcome;
    uint8_t severity;
    uint8_t origin;
    int64_t origin_ref;
    int32_t has_origin_ref;
    adb_bytes tenant, actor, action, resource_type, resource_id, correlation_id, source, details;
} adb_row;

/// Computes the 32-byte stored MAC (row tag || link tag) of `row`, chained to `prev_mac`
/// (32 zero bytes for seq 1).
void adb_row_seal(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                  const uint8_t prev_mac[ADB_MAC_LEN], uint8_t mac_out[ADB_MAC_LEN]);

/// Checks a stored MAC in constant time. Returns ADB_OK, ADB_ROW_TAG_MISMATCH,
/// ADB_LINK_TAG_MISMATCH or ADB_BAD_MAC_LENGTH.
int adb_row_check(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                  const uint8_t prev_mac[ADB_MAC_LEN], const uint8_t *stored_mac, size_t stored_len);

/// Checks only the row tag (first 16 bytes): 1 if it matches, 0 if not.
int adb_row_tag_matches(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                        const uint8_t *stored_mac, size_t stored_len);

/// The per-row, per-field commitment nonce (FORMAT.md, "Commitments").
void adb_field_nonce(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], int64_t seq, uint8_t field,
                     uint8_t out[ADB_HASH_LEN]);
/// The commitment to a field value; NULL (value.len < 0) commits to 32 zero bytes.
void adb_commitment(const uint8_t nonce[ADB_HASH_LEN], uint8_t field, adb_bytes value, uint8_t out[ADB_HASH_LEN]);

/// Writes ENC_ROW (the message of the row tag) into `buf`. Returns its length; if that is
/// larger than `cap`, nothing useful was written and the caller must retry with a larger buffer.
size_t adb_row_encode(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                      uint8_t *buf, size_t cap);

/// HMAC-SHA256 under K_mac of `ks` over `msg`.
void adb_hmac_mac_key(const adb_keyset *ks, const uint8_t *msg, size_t len, uint8_t out[ADB_HASH_LEN]);

/// The store header MAC (FORMAT.md, "Store header").
void adb_header_mac(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], int64_t created_at,
                    uint8_t format_version, uint32_t key_version, uint8_t out[ADB_MAC_LEN]);

/// The attestation MAC (FORMAT.md, "Attestations").
void adb_attestation_mac(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], int64_t seq,
                         uint32_t row_key_version, const uint8_t row_mac[ADB_MAC_LEN], int64_t declaration_seq,
                         uint8_t out[ADB_MAC_LEN]);

/// The Merkle leaf hash of a row: SHA256(0x00 || ENC_ROW) (FORMAT.md, section 16).
void adb_leaf_hash(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                   uint8_t out[ADB_HASH_LEN]);
/// A Merkle interior node: SHA256(0x01 || left || right).
void adb_node_hash(const uint8_t left[ADB_HASH_LEN], const uint8_t right[ADB_HASH_LEN], uint8_t out[ADB_HASH_LEN]);

/// Plain SHA-256 and HMAC-SHA256 (any key length), for tests and test vectors.
void adb_sha256(const uint8_t *msg, size_t len, uint8_t out[ADB_HASH_LEN]);
void adb_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len, uint8_t out[ADB_HASH_LEN]);

/// Constant-time equality of two byte strings of length `len`: 1 if equal.
int adb_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);

/// sqlite3_db_config(SQLITE_DBCONFIG_ENABLE_TRIGGER) on a `sqlite3 *`: returns the new
/// setting (0/1), or -1 on error.
int adb_sqlite_enable_triggers(void *connection, int enabled);
/// sqlite3_db_config(SQLITE_DBCONFIG_DEFENSIVE): returns the new setting, or -1 on error.
int adb_sqlite_set_defensive(void *connection, int on);

#endif
