// audit_core.h - AuditDB's per-row cryptography: the canonical row encoding (format version 1),
// field commitments, the row/link tags and the Merkle hashes. No SQLite here: audit_row.h reads
// and binds rows of statements, audit_sqlite.h sets connections up. docs/FORMAT.md specifies every byte; this file is
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
    /// Format 2 only (FORMAT.md section 21): the `seals` column, ADB_SEALS_FRESH_LEN bytes
    /// (00 || seed) or ADB_SEALS_ERASED_LEN bytes (mask || three 32-byte slots). The caller has
    /// checked its shape (adb_seals_valid). Ignored for format 1.
    const uint8_t *seals;
    int64_t seals_len;
} adb_row;

/// Row format versions: 1 derives the field nonces from K_nonce (a key holder can recompute them);
/// 2 draws a random seed per row and keeps it in the `seals` column, so that erasing a field
/// (replacing its value and nonce by the commitment) leaves nothing to test a guess against.
enum { ADB_FORMAT_KEYED_NONCES = 1, ADB_FORMAT_SEALED = 2 };
#define ADB_SEALS_FRESH_LEN 33
#define ADB_SEALS_ERASED_LEN 97

/// 1 if `seals` (of `len` bytes) is a valid seals value of a format-2 row whose committed values
/// are `actor`, `source` and `details`: 00 || 32-byte seed, or mask (1..15) || 96 bytes with every
/// erased field's value NULL — except that bit 3 (details partially erased, only with bit 2) requires
/// `details` to hold the residual text (FORMAT.md section 21.7). Else 0.
int adb_seals_valid(const uint8_t *seals, int64_t len, adb_bytes actor, adb_bytes source, adb_bytes details);
/// The erased fields of a row (bit 0 actor, bit 1 source, bit 2 details, bit 3 details partially:
/// only paths inside it); 0 for format 1.
uint8_t adb_row_erased_mask(const adb_row *row);
/// The nonce of field `field` of `row`: NONCE(seq, f) from K_nonce for format 1, from the seals for
/// format 2. Returns 0 (and zeros) if the field is erased: its nonce is gone.
int adb_row_field_nonce(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                        uint8_t field, uint8_t out[ADB_HASH_LEN]);
/// The commitment C of field `field` of `row` as ENC_ROW holds it (the stored one if erased).
void adb_row_field_commitment(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                              uint8_t field, uint8_t out[ADB_HASH_LEN]);
/// Fills 32 bytes of a fresh seals value (00 || seed) with `seed` (the caller draws it from a CSPRNG).
void adb_seals_fresh(const uint8_t seed[32], uint8_t out[ADB_SEALS_FRESH_LEN]);
/// The seals of `row` (format 2, well-formed) with the fields in `mask` erased as well: each such
/// field's slot holds its commitment, every other field's slot its nonce. Returns 0 for a format-1
/// row or an empty mask (nothing written), else 1. Bit 3 in `mask` (a partial erasure of details)
/// implies bit 2; bit 2 without bit 3 (details erased whole) clears a partial erasure's bit 3.
int adb_seals_erase(const adb_row *row, uint8_t mask, uint8_t out[ADB_SEALS_ERASED_LEN]);

/// Computes the 32-byte stored MAC (row tag || link tag) of `row`, chained to `prev_mac`
/// (32 zero bytes for seq 1).
void adb_row_seal(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                  const uint8_t prev_mac[ADB_MAC_LEN], uint8_t mac_out[ADB_MAC_LEN]);

/// Checks a stored MAC in constant time. Returns ADB_OK, ADB_ROW_TAG_MISMATCH,
/// ADB_LINK_TAG_MISMATCH or ADB_BAD_MAC_LENGTH.
int adb_row_check(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                  const uint8_t prev_mac[ADB_MAC_LEN], const uint8_t *stored_mac, size_t stored_len);

/// adb_row_check and, in the same pass over one encoding of the row, its Merkle leaf hash
/// SHA256(0x00 || ENC_ROW) into `leaf_out` (unless it is NULL; written whatever the verdict).
/// With `prev_mac` NULL only the row tag is checked (the row before is unknown).
int adb_row_check_leaf(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], const adb_row *row,
                       const uint8_t *prev_mac, const uint8_t *stored_mac, size_t stored_len, uint8_t *leaf_out);

/// Checks only the link tag of a stored MAC (the row itself is not at hand: an expired row's
/// tombstone, FORMAT.md section 20.4): 1 if mac[16..32) = HMAC(K_mac, LINK_MSG(seq, mac[0..16),
/// prev_mac))[0..16), else 0.
int adb_link_check(const adb_keyset *ks, const uint8_t store_id[ADB_STORE_ID_LEN], int64_t seq,
                   const uint8_t stored_mac[ADB_MAC_LEN], const uint8_t prev_mac[ADB_MAC_LEN]);

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

/// The query indexes whose entries verification proves (FORMAT.md section 11, step 7).
enum {
    ADB_INDEX_ACTOR = 0,        ///< audit_entries_actor: (seq >> 14), actor, seq >> 0, outcome, severity, action (0003, 0011)
    ADB_INDEX_RESOURCE = 1,     ///< audit_entries_resource: (seq >> 14), resource_id, seq >> 0, outcome, severity, action (0003, 0011)
    ADB_INDEX_TENANT_TIME = 2,  ///< audit_entries_tenant_time: tenant, recorded_at
    ADB_INDEX_RECORDED_AT = 3,  ///< audit_entries_recorded_at: recorded_at
    ADB_INDEX_ENGINE = 4,       ///< audit_entries_engine: action (auditdb.*)
    ADB_INDEX_ORIGIN_REF = 5,   ///< audit_entries_origin_ref: origin_ref
    ADB_INDEX_TENANT_SEQ = 6,   ///< audit_entries_tenant_seq: tenant, seq >> 0, outcome, severity, action (migrations 0008, 0010)
    ADB_INDEX_COUNT = 7,
};
/// An order-independent digest of index entries: per index, the number of entries and the 64-bit
/// sum of each entry's keyed SipHash-1-3. Initialise with a random 16-byte key per pass.
///
/// The index side also records order: `disordered[i]` is 1 when a covering scan of index `i` met an
/// entry that does not sort strictly after the entry before it (a b-tree re-sorted by hand, which
/// holds the right entries but hides rows from every seek), and `disorder_at[i]` is that entry's
/// rowid (the first such entry met).
typedef struct {
    uint64_t k0, k1;
    uint64_t count[ADB_INDEX_COUNT];
    uint64_t sum[ADB_INDEX_COUNT];
    int64_t disorder_at[ADB_INDEX_COUNT];
    uint8_t disordered[ADB_INDEX_COUNT];
} adb_index_digest;
void adb_index_digest_init(adb_index_digest *d, const uint8_t key[16]);
void adb_index_digest_merge(adb_index_digest *into, const adb_index_digest *from);
/// 1 if both digests agree on `index`.
int adb_index_digest_equal(const adb_index_digest *a, const adb_index_digest *b, int index);
/// Adds the entries that a well-formed row (types checked, as adb_stmt_read_row gives it) puts
/// into each index.
void adb_index_digest_add_parsed(adb_index_digest *d, const adb_row *row);
/// The same through the general entry builder (any value length); tests compare the two.
void adb_index_digest_add_parsed_streaming(adb_index_digest *d, const adb_row *row);
/// The length of `auditdb_index_digest`'s result: u64 count, u64 sum, u8 disordered, i64 rowid of
/// the first entry out of order (all little-endian).
enum { ADB_INDEX_DIGEST_RESULT = 25 };
/// Adds the ADB_INDEX_DIGEST_RESULT-byte result of `auditdb_index_digest` to `d` for `index`.
void adb_index_digest_absorb(adb_index_digest *d, int index, const uint8_t result[ADB_INDEX_DIGEST_RESULT]);
/// SipHash-c-d with 64-bit output (the digest uses 1-3; 2-4 has reference vectors) and
/// SipHash-2-4 with 128-bit output, for tests.
uint64_t adb_siphash64(const uint8_t key[16], const uint8_t *msg, size_t len, int crounds, int drounds);
void adb_siphash128(const uint8_t key[16], const uint8_t *msg, size_t len, uint8_t out[16]);
/// The hash of one index entry: SipHash-1-3, 64-bit output, over a whole buffer (equals
/// adb_siphash64(key, msg, len, 1, 3); the proof's fast path).
uint64_t adb_index_entry_hash(const uint8_t key[16], const uint8_t *msg, size_t len);

#endif
