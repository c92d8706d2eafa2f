/*
 * cbor_sum.c - a handler that speaks only CBOR, for the tests of the
 * shipped json-cbor codec through a whole host: subject "sum.ints".
 * The payload must be one CBOR array of integers (definite length); the
 * reply is the CBOR map {"sum": total, "n": count}. Anything else is
 * refused with PC_INVALID naming the byte, so a JSON payload that reached
 * it unconverted fails the test.
 *
 *   clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -I sdk/c \
 *       -o cbor_sum.wasm testdata/cbor/cbor_sum.c sdk/c/pycomms.c
 */
#include <stdio.h>
#include <string.h>

#include "pycomms.h"

/* Reads a head at p[*i] (n bytes): major type and argument. */
static int head(const uint8_t *p, size_t n, size_t *i, int *major, uint64_t *v) {
    if (*i >= n) return 0;
    uint8_t b = p[(*i)++];
    int ai = b & 31;
    *major = b >> 5;
    if (ai < 24) {
        *v = (uint64_t)ai;
        return 1;
    }
    if (ai > 27) return 0;
    size_t k = (size_t)1 << (ai - 24);
    if (k > n - *i) return 0;
    *v = 0;
    for (size_t j = 0; j < k; j++) *v = *v << 8 | p[*i + j];
    *i += k;
    return 1;
}

static size_t put_int(uint8_t *o, int64_t x) {
    int major = x < 0 ? 1 : 0;
    uint64_t v = x < 0 ? (uint64_t)(-(x + 1)) : (uint64_t)x;
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) { o[0] = m | (uint8_t)v; return 1; }
    o[0] = m | 27;
    for (int k = 0; k < 8; k++) o[1 + k] = (uint8_t)(v >> (56 - 8 * k));
    return 9;
}

static int sum(const pc_msg *m) {
    const uint8_t *p = (const uint8_t *)m->payload;
    size_t n = m->payload_len, i = 0;
    int major;
    uint64_t count, v;
    char err[96];
    if (!head(p, n, &i, &major, &count) || major != 4) {
        snprintf(err, sizeof err, "sum: the payload is not a CBOR array (first byte 0x%02x)", n ? p[0] : 0);
        pc_reply_str(err);
        return PC_INVALID;
    }
    int64_t total = 0;
    for (uint64_t k = 0; k < count; k++) {
        size_t at = i;
        if (!head(p, n, &i, &major, &v) || major > 1 || v > INT64_MAX) {
            snprintf(err, sizeof err, "sum: element %llu at byte %zu is not a CBOR integer in the int64 range", (unsigned long long)k, at);
            pc_reply_str(err);
            return PC_INVALID;
        }
        total += major == 0 ? (int64_t)v : -1 - (int64_t)v;
    }
    if (i != n) {
        pc_reply_str("sum: bytes after the array");
        return PC_INVALID;
    }
    uint8_t out[32];
    size_t o = 0;
    out[o++] = 0xa2;
    out[o++] = 0x63, memcpy(out + o, "sum", 3), o += 3;
    o += put_int(out + o, total);
    out[o++] = 0x61, out[o++] = 'n';
    o += put_int(out + o, (int64_t)count);
    return pc_reply(out, o);
}

void pc_init(void) { pc_handle("sum.ints", sum); }
