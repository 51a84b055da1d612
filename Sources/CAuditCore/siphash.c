// siphash.c - the exported SipHash entry points (audit_core.h); the algorithm is in siphash.h.
#include "audit_core.h"
#include "siphash.h"

uint64_t adb_siphash64(const uint8_t key[16], const uint8_t *msg, size_t len, int crounds, int drounds) {
    uint64_t k0 = 0, k1 = 0;
    for (int i = 0; i < 8; i++) { k0 |= (uint64_t)key[i] << (8 * i); k1 |= (uint64_t)key[8 + i] << (8 * i); }
    sip_state s;
    sip_init64(&s, k0, k1, crounds, drounds);
    sip_update(&s, msg, len);
    return sip_final64(&s);
}

void adb_siphash128(const uint8_t key[16], const uint8_t *msg, size_t len, uint8_t out[16]) {
    uint64_t k0 = 0, k1 = 0;
    for (int i = 0; i < 8; i++) { k0 |= (uint64_t)key[i] << (8 * i); k1 |= (uint64_t)key[8 + i] << (8 * i); }
    sip_state s;
    sip_init(&s, k0, k1, 2, 4);
    sip_update(&s, msg, len);
    uint64_t h[2];
    sip_final128(&s, h);
    for (int i = 0; i < 8; i++) { out[i] = (uint8_t)(h[0] >> (8 * i)); out[8 + i] = (uint8_t)(h[1] >> (8 * i)); }
}

uint64_t adb_index_entry_hash(const uint8_t key[16], const uint8_t *msg, size_t len) {
    uint64_t k0 = 0, k1 = 0;
    for (int i = 0; i < 8; i++) { k0 |= (uint64_t)key[i] << (8 * i); k1 |= (uint64_t)key[8 + i] << (8 * i); }
    return sip13_oneshot(k0, k1, msg, len);
}
