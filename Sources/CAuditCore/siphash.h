// siphash.h - SipHash (Aumasson & Bernstein, "SipHash: a fast short-input PRF") for CAuditCore's
// own C files: the streaming form with any round counts and 64- or 128-bit output, and a one-call
// SipHash-1-3 for whole buffers (the index proof's entries). Internal, not in the module's public
// header; siphash.c exports the entry points audit_core.h declares.
#ifndef AUDITDB_SIPHASH_H
#define AUDITDB_SIPHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
    int crounds, drounds;  // SipHash-c-d: 2-4 is the reference, 1-3 what the digest uses
} sip_state;

static inline void sip_init(sip_state *s, uint64_t k0, uint64_t k1, int crounds, int drounds) {
    s->crounds = crounds;
    s->drounds = drounds;
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
    for (int r = 0; r < s->crounds; r++) SIPROUND;
    v0 ^= m;
    s->v0 = v0; s->v1 = v1; s->v2 = v2; s->v3 = v3;
}

static inline void sip_update(sip_state *s, const uint8_t *p, size_t n) {
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

static inline void sip_init64(sip_state *s, uint64_t k0, uint64_t k1, int crounds, int drounds) {
    sip_init(s, k0, k1, crounds, drounds);
    s->v1 ^= 0xee;  // undo the 128-bit variant's tweak: plain SipHash-2-4 with a 64-bit output
}

static inline uint64_t sip_final64(sip_state *s) {
    uint64_t b = (s->total << 56) | s->tail;
    sip_compress(s, b);
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    v2 ^= 0xff;
    for (int r = 0; r < s->drounds; r++) SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static inline void sip_final128(sip_state *s, uint64_t out[2]) {
    uint64_t b = (s->total << 56) | s->tail;
    sip_compress(s, b);
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    v2 ^= 0xee;
    for (int r = 0; r < s->drounds; r++) SIPROUND;
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    for (int r = 0; r < s->drounds; r++) SIPROUND;
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}

/// Little-endian 64-bit load of 8 bytes (memcpy compiles to one load).
static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t m;
    memcpy(&m, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    m = __builtin_bswap64(m);
#endif
    return m;
}

/// SipHash-1-3 with a 64-bit output of a whole buffer in one call: the same value as the
/// streaming sip_init64/sip_update/sip_final64, with word loads instead of a byte loop. Every
/// entry of both sides of the proof goes through here.
static inline uint64_t sip13_oneshot(uint64_t k0, uint64_t k1, const uint8_t *p, size_t n) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    const uint8_t *end = p + (n & ~(size_t)7);
    for (; p < end; p += 8) {
        uint64_t m = load_le64(p);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    switch (n & 7) {
    case 7: b |= (uint64_t)p[6] << 48; /* fall through */
    case 6: b |= (uint64_t)p[5] << 40; /* fall through */
    case 5: b |= (uint64_t)p[4] << 32; /* fall through */
    case 4: b |= (uint64_t)p[3] << 24; /* fall through */
    case 3: b |= (uint64_t)p[2] << 16; /* fall through */
    case 2: b |= (uint64_t)p[1] << 8;  /* fall through */
    case 1: b |= (uint64_t)p[0]; break;
    default: break;
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#endif
