// audit_core.c - see audit_core.h and docs/FORMAT.md.
//
// OpenSSL 3 marks the low-level SHA256_* functions deprecated in favour of EVP. They are
// kept here on purpose: copying a prekeyed SHA256_CTX is the cheapest HMAC there is
// (measured: 254 ns per 250-byte HMAC against 624 ns for a duplicated EVP_MAC context and
// 1,188 ns for libsodium's prekeyed state on this machine; docs/performance.md).
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "audit_core.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

struct adb_keyset {
    SHA256_CTX mac_inner, mac_outer;      // K_mac ipad/opad states
    SHA256_CTX nonce_inner, nonce_outer;  // K_nonce ipad/opad states
};

size_t adb_keyset_size(void) { return sizeof(struct adb_keyset); }

// SHA-256 of one message through the low-level functions. OpenSSL 3's one-shot SHA256() goes
// through EVP and fetches the algorithm from its provider on every call (a lock and a lookup):
// 550-730 ns for a 65-byte Merkle node against 120-160 ns here (measured on this machine,
// docs/performance.md). The context is wiped: some messages hash secrets (seeds, long keys).
static void sha256_once(const void *msg, size_t len, uint8_t out[32]) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, msg, len);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof c);
}

static void hmac_prekey(SHA256_CTX *inner, SHA256_CTX *outer, const uint8_t *key, size_t key_len) {
    uint8_t k[64] = {0}, pad[64];
    if (key_len > 64) {
        sha256_once(key, key_len, k);
    } else {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    SHA256_Init(inner);
    SHA256_Update(inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(outer);
    SHA256_Update(outer, pad, 64);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
}

static void hmac_finish(SHA256_CTX *inner_running, const SHA256_CTX *outer, uint8_t out[32]) {
    uint8_t ih[32];
    SHA256_Final(ih, inner_running);
    SHA256_CTX o = *outer;
    SHA256_Update(&o, ih, 32);
    SHA256_Final(out, &o);
    OPENSSL_cleanse(ih, sizeof ih);
}

void adb_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len, uint8_t out[32]) {
    SHA256_CTX inner, outer;
    hmac_prekey(&inner, &outer, key, key_len);
    SHA256_Update(&inner, msg, len);
    hmac_finish(&inner, &outer, out);
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
}

void adb_sha256(const uint8_t *msg, size_t len, uint8_t out[32]) { sha256_once(msg, len, out); }

int adb_ct_equal(const uint8_t *a, const uint8_t *b, size_t len) { return CRYPTO_memcmp(a, b, len) == 0; }

void adb_keyset_init(adb_keyset *ks, const uint8_t master[ADB_KEY_LEN]) {
    static const char mac_label[] = "AuditDB/v1/mac-key";
    static const char nonce_label[] = "AuditDB/v1/nonce-key";
    uint8_t derived[32];
    adb_hmac_sha256(master, ADB_KEY_LEN, (const uint8_t *)mac_label, sizeof mac_label - 1, derived);
    hmac_prekey(&ks->mac_inner, &ks->mac_outer, derived, 32);
    adb_hmac_sha256(master, ADB_KEY_LEN, (const uint8_t *)nonce_label, sizeof nonce_label - 1, derived);
    hmac_prekey(&ks->nonce_inner, &ks->nonce_outer, derived, 32);
    OPENSSL_cleanse(derived, sizeof derived);
}

void adb_keyset_wipe(adb_keyset *ks) { OPENSSL_cleanse(ks, sizeof *ks); }

// ---- big-endian writers -------------------------------------------------------------------

static inline uint8_t *put_u64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}
static inline uint8_t *put_u32(uint8_t *p, uint32_t v) {
    for (int i = 3; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

// A sink that either feeds a running SHA-256 (through a small buffer, so that the many short
// fields cost one SHA256_Update call per 512 bytes) or copies into a caller's buffer. In hashing
// mode a second SHA-256 may be fed the same bytes: the row tag's HMAC and the Merkle leaf hash
// of one row share one encoding (adb_row_check_leaf).
typedef struct {
    SHA256_CTX *ctx;   // hashing mode when non-NULL
    SHA256_CTX *ctx2;  // optional second hash of the same bytes (hashing mode only)
    uint8_t *out;      // copy mode
    size_t cap;
    size_t total;      // bytes written so far (both modes)
    size_t used;       // bytes pending in buf (hashing mode)
    uint8_t buf[512];
} sink;

static void sink_flush(sink *s) {
    if (s->ctx && s->used) {
        SHA256_Update(s->ctx, s->buf, s->used);
        if (s->ctx2) SHA256_Update(s->ctx2, s->buf, s->used);
        s->used = 0;
    }
}

static void sink_put(sink *s, const void *data, size_t n) {
    if (s->ctx) {
        if (s->used + n > sizeof s->buf) {
            sink_flush(s);
            if (n > sizeof s->buf) {
                SHA256_Update(s->ctx, data, n);
                if (s->ctx2) SHA256_Update(s->ctx2, data, n);
                s->total += n;
                return;
            }
        }
        memcpy(s->buf + s->used, data, n);
        s->used += n;
    } else if (s->total + n <= s->cap) {
        memcpy(s->out + s->total, data, n);
    }
    s->total += n;
}

static void sink_u8(sink *s, uint8_t v) { sink_put(s, &v, 1); }
static void sink_u32(sink *s, uint32_t v) { uint8_t b[4]; put_u32(b, v); sink_put(s, b, 4); }
static void sink_u64(sink *s, uint64_t v) { uint8_t b[8]; put_u64(b, v); sink_put(s, b, 8); }

static void sink_opt_i64(sink *s, int32_t present, int64_t v) {
    sink_u8(s, present ? 1 : 0);
    if (present) sink_u64(s, (uint64_t)v);
}

static void sink_opt_str(sink *s, adb_bytes b) {
    if (b.len < 0) {
        sink_u32(s, 0xFFFFFFFFu);
    } else {
        sink_u32(s, (uint32_t)b.len);
        if (b.len) sink_put(s, b.ptr, (size_t)b.len);
    }
}

// ---- commitments ----------------------------------------------------------------------------

void adb_field_nonce(const adb_keyset *ks, const uint8_t store_id[16], int64_t seq, uint8_t field,
                     uint8_t out[32]) {
    uint8_t msg[8 + 16 + 8 + 1], *p = msg;
    memcpy(p, "ADB1NONC", 8); p += 8;
    memcpy(p, store_id, 16); p += 16;
    p = put_u64(p, (uint64_t)seq);
    *p = field;
    SHA256_CTX inner = ks->nonce_inner;
    SHA256_Update(&inner, msg, sizeof msg);
    hmac_finish(&inner, &ks->nonce_outer, out);
}

void adb_commitment(const uint8_t nonce[32], uint8_t field, adb_bytes value, uint8_t out[32]) {
    if (value.len < 0) {
        memset(out, 0, 32);
        return;
    }
    SHA256_CTX c;
    SHA256_Init(&c);
    uint8_t head[33];
    memcpy(head, nonce, 32);
    head[32] = field;
    SHA256_Update(&c, head, sizeof head);
    if (value.len) SHA256_Update(&c, value.ptr, (size_t)value.len);
    SHA256_Final(out, &c);
}

// ---- format 2: seals (FORMAT.md section 21) --------------------------------------------------

static int seals_erased_form(const adb_row *r) {
    return r->format_version == ADB_FORMAT_SEALED && r->seals_len == ADB_SEALS_ERASED_LEN;
}

uint8_t adb_row_erased_mask(const adb_row *r) {
    return seals_erased_form(r) ? (uint8_t)(r->seals[0] & 15) : 0;
}

int adb_seals_valid(const uint8_t *seals, int64_t len, adb_bytes actor, adb_bytes source, adb_bytes details) {
    if (seals == NULL) return 0;
    if (len == ADB_SEALS_FRESH_LEN) return seals[0] == 0;
    if (len != ADB_SEALS_ERASED_LEN || seals[0] < 1 || seals[0] > 15) return 0;
    if ((seals[0] & 1) && actor.len >= 0) return 0;
    if ((seals[0] & 2) && source.len >= 0) return 0;
    // Bit 3 (details partially erased) requires bit 2; the details column then holds the
    // residual text (FORMAT.md section 21.7), else an erased details is NULL.
    if ((seals[0] & 8) && !(seals[0] & 4)) return 0;
    if ((seals[0] & 8) ? details.len < 0 : ((seals[0] & 4) && details.len >= 0)) return 0;
    return 1;
}

// NONCE2(seed, f) = SHA256("ADB2NONC" || seed || u8(f)).
static void seed_nonce(const uint8_t seed[32], uint8_t field, uint8_t out[32]) {
    uint8_t msg[8 + 32 + 1];
    memcpy(msg, "ADB2NONC", 8);
    memcpy(msg + 8, seed, 32);
    msg[40] = field;
    sha256_once(msg, sizeof msg, out);
    OPENSSL_cleanse(msg, sizeof msg);
}

int adb_row_field_nonce(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *r, uint8_t field,
                        uint8_t out[32]) {
    if (r->format_version != ADB_FORMAT_SEALED) {
        adb_field_nonce(ks, store_id, r->seq, field, out);
        return 1;
    }
    if (seals_erased_form(r)) {
        if (r->seals[0] & (1u << (field - 1))) { memset(out, 0, 32); return 0; }
        memcpy(out, r->seals + 1 + 32 * (field - 1), 32);
        return 1;
    }
    // Only a well-formed row gets here (its shape is checked first); a seals value of any other
    // length is still never read past.
    if (r->seals == NULL || r->seals_len != ADB_SEALS_FRESH_LEN) { memset(out, 0, 32); return 0; }
    seed_nonce(r->seals + 1, field, out);
    return 1;
}

void adb_row_field_commitment(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *r, uint8_t field,
                              uint8_t out[32]) {
    adb_bytes value = field == ADB_FIELD_ACTOR ? r->actor : field == ADB_FIELD_SOURCE ? r->source : r->details;
    if (seals_erased_form(r) && (r->seals[0] & (1u << (field - 1)))) {
        memcpy(out, r->seals + 1 + 32 * (field - 1), 32);
        return;
    }
    if (value.len < 0) {
        memset(out, 0, 32);
        return;
    }
    uint8_t nonce[32];
    adb_row_field_nonce(ks, store_id, r, field, nonce);
    adb_commitment(nonce, field, value, out);
    OPENSSL_cleanse(nonce, sizeof nonce);
}

void adb_seals_fresh(const uint8_t seed[32], uint8_t out[ADB_SEALS_FRESH_LEN]) {
    out[0] = 0;
    memcpy(out + 1, seed, 32);
}

int adb_seals_erase(const adb_row *r, uint8_t mask, uint8_t out[ADB_SEALS_ERASED_LEN]) {
    mask &= 15;
    if (r->format_version != ADB_FORMAT_SEALED || mask == 0) return 0;
    if (mask & 8) mask |= 4;  // a partial erasure of details destroys its nonce too
    uint8_t all = (uint8_t)(mask | adb_row_erased_mask(r));
    if ((mask & 4) && !(mask & 8)) all &= (uint8_t)~8u;  // erasing details whole supersedes a partial erasure
    out[0] = all;
    for (uint8_t f = 1; f <= 3; f++) {
        uint8_t *slot = out + 1 + 32 * (f - 1);
        if (all & (1u << (f - 1))) {
            adb_row_field_commitment(NULL, NULL, r, f, slot);  // format 2 never uses the key
        } else {
            adb_row_field_nonce(NULL, NULL, r, f, slot);
        }
    }
    return 1;
}

// ---- ENC_ROW --------------------------------------------------------------------------------

static void encode_row(sink *s, const adb_keyset *ks, const uint8_t store_id[16], const adb_row *r) {
    uint8_t c[32];
    sink_put(s, "ADB1ROW_", 8);
    sink_put(s, store_id, 16);
    sink_u64(s, (uint64_t)r->seq);
    sink_u8(s, r->format_version);
    sink_u32(s, r->key_version);
    sink_u64(s, (uint64_t)r->recorded_at);
    sink_opt_i64(s, r->has_occurred_at, r->occurred_at);
    sink_opt_str(s, r->tenant);
    sink_opt_str(s, r->action);
    sink_opt_str(s, r->resource_type);
    sink_opt_str(s, r->resource_id);
    sink_u8(s, r->outcome);
    sink_u8(s, r->severity);
    sink_opt_str(s, r->correlation_id);
    sink_u8(s, r->origin);
    sink_opt_i64(s, r->has_origin_ref, r->origin_ref);
    for (uint8_t f = ADB_FIELD_ACTOR; f <= ADB_FIELD_DETAILS; f++) {
        adb_row_field_commitment(ks, store_id, r, f, c);
        sink_put(s, c, 32);
    }
}

size_t adb_row_encode(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *row, uint8_t *buf,
                      size_t cap) {
    sink s;
    s.ctx = NULL; s.ctx2 = NULL; s.out = buf; s.cap = cap; s.total = 0; s.used = 0;
    encode_row(&s, ks, store_id, row);
    return s.total;
}

static void row_tag(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *row, uint8_t full[32]) {
    SHA256_CTX inner = ks->mac_inner;
    sink s;
    s.ctx = &inner; s.ctx2 = NULL; s.out = NULL; s.cap = 0; s.total = 0; s.used = 0;
    encode_row(&s, ks, store_id, row);
    sink_flush(&s);
    hmac_finish(&inner, &ks->mac_outer, full);
}

static void link_tag(const adb_keyset *ks, const uint8_t store_id[16], int64_t seq, const uint8_t tag[16],
                     const uint8_t prev_mac[32], uint8_t full[32]) {
    uint8_t msg[8 + 16 + 8 + 16 + 32], *p = msg;
    memcpy(p, "ADB1LINK", 8); p += 8;
    memcpy(p, store_id, 16); p += 16;
    p = put_u64(p, (uint64_t)seq);
    memcpy(p, tag, 16); p += 16;
    memcpy(p, prev_mac, 32);
    SHA256_CTX inner = ks->mac_inner;
    SHA256_Update(&inner, msg, sizeof msg);
    hmac_finish(&inner, &ks->mac_outer, full);
}

void adb_row_seal(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *row, const uint8_t prev_mac[32],
                  uint8_t mac_out[32]) {
    uint8_t t[32], l[32];
    row_tag(ks, store_id, row, t);
    link_tag(ks, store_id, row->seq, t, prev_mac, l);
    memcpy(mac_out, t, 16);
    memcpy(mac_out + 16, l, 16);
}

int adb_row_check(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *row, const uint8_t prev_mac[32],
                  const uint8_t *stored_mac, size_t stored_len) {
    return adb_row_check_leaf(ks, store_id, row, prev_mac, stored_mac, stored_len, NULL);
}

int adb_row_check_leaf(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *row, const uint8_t *prev_mac,
                       const uint8_t *stored_mac, size_t stored_len, uint8_t *leaf_out) {
    // One encoding of the row feeds both the row tag's HMAC and (when asked) the leaf hash.
    SHA256_CTX inner = ks->mac_inner, leaf;
    sink s;
    s.ctx = &inner; s.ctx2 = NULL; s.out = NULL; s.cap = 0; s.total = 0; s.used = 0;
    if (leaf_out) {
        static const uint8_t leaf_prefix = 0x00;
        SHA256_Init(&leaf);
        SHA256_Update(&leaf, &leaf_prefix, 1);
        s.ctx2 = &leaf;
    }
    encode_row(&s, ks, store_id, row);
    sink_flush(&s);
    if (leaf_out) SHA256_Final(leaf_out, &leaf);
    if (stored_len != ADB_MAC_LEN || stored_mac == NULL) return ADB_BAD_MAC_LENGTH;
    uint8_t t[32], l[32];
    hmac_finish(&inner, &ks->mac_outer, t);
    if (CRYPTO_memcmp(t, stored_mac, 16) != 0) return ADB_ROW_TAG_MISMATCH;
    if (prev_mac == NULL) return ADB_OK;
    link_tag(ks, store_id, row->seq, stored_mac, prev_mac, l);
    if (CRYPTO_memcmp(l, stored_mac + 16, 16) != 0) return ADB_LINK_TAG_MISMATCH;
    return ADB_OK;
}

int adb_link_check(const adb_keyset *ks, const uint8_t store_id[16], int64_t seq, const uint8_t stored_mac[32],
                   const uint8_t prev_mac[32]) {
    uint8_t l[32];
    link_tag(ks, store_id, seq, stored_mac, prev_mac, l);
    return CRYPTO_memcmp(l, stored_mac + 16, 16) == 0;
}

void adb_hmac_mac_key(const adb_keyset *ks, const uint8_t *msg, size_t len, uint8_t out[32]) {
    SHA256_CTX inner = ks->mac_inner;
    SHA256_Update(&inner, msg, len);
    hmac_finish(&inner, &ks->mac_outer, out);
}

void adb_header_mac(const adb_keyset *ks, const uint8_t store_id[16], int64_t created_at, uint8_t format_version,
                    uint32_t key_version, uint8_t out[32]) {
    uint8_t msg[8 + 16 + 8 + 1 + 4], *p = msg;
    memcpy(p, "ADB1STOR", 8); p += 8;
    memcpy(p, store_id, 16); p += 16;
    p = put_u64(p, (uint64_t)created_at);
    *p++ = format_version;
    put_u32(p, key_version);
    adb_hmac_mac_key(ks, msg, sizeof msg, out);
}

void adb_attestation_mac(const adb_keyset *ks, const uint8_t store_id[16], int64_t seq, uint32_t row_key_version,
                         const uint8_t row_mac[32], int64_t declaration_seq, uint8_t out[32]) {
    uint8_t msg[8 + 16 + 8 + 4 + 32 + 8], *p = msg;
    memcpy(p, "ADB1ATST", 8); p += 8;
    memcpy(p, store_id, 16); p += 16;
    p = put_u64(p, (uint64_t)seq);
    p = put_u32(p, row_key_version);
    memcpy(p, row_mac, 32); p += 32;
    put_u64(p, (uint64_t)declaration_seq);
    adb_hmac_mac_key(ks, msg, sizeof msg, out);
}

// ---- Merkle tree (FORMAT.md, section 16) ----------------------------------------------------

void adb_leaf_hash(const adb_keyset *ks, const uint8_t store_id[16], const adb_row *row, uint8_t out[32]) {
    SHA256_CTX c;
    SHA256_Init(&c);
    sink s;
    s.ctx = &c; s.ctx2 = NULL; s.out = NULL; s.cap = 0; s.total = 0; s.used = 0;
    sink_u8(&s, 0x00);
    encode_row(&s, ks, store_id, row);
    sink_flush(&s);
    SHA256_Final(out, &c);
}

void adb_node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32]) {
    uint8_t msg[65];
    msg[0] = 0x01;
    memcpy(msg + 1, left, 32);
    memcpy(msg + 33, right, 32);
    sha256_once(msg, sizeof msg, out);
}
