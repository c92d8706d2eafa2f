/*
 * jsoncbor.c - builtin:json-cbor, the application/json <-> application/cbor
 * codec (abi/SPEC.md section 14), with the C codec SDK. The conversions are
 * in jsoncbor.h; README.md states what each value becomes.
 *
 *   clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-all \
 *       -I sdk/c -o jsoncbor.wasm plugins/jsoncbor/jsoncbor.c sdk/c/pycomms_codec.c
 */
#include "jsoncbor.h"

#include "pycomms_codec.h"

static jc_ctx ctx;

const char *pc_codec_pairs(void) { return "type application/json application/cbor\ntype application/cbor application/json\n"; }

static int is(const char *s, size_t n, const char *want) { return n == strlen(want) && memcmp(s, want, n) == 0; }

int pc_codec_convert(const char *from, size_t from_len, const char *to, size_t to_len, const uint8_t *data,
                     size_t len) {
    int rc;
    const char *dir;
    if (is(from, from_len, "application/json") && is(to, to_len, "application/cbor")) {
        dir = "json->cbor";
        rc = jc_json_to_cbor(&ctx, data, len);
    } else if (is(from, from_len, "application/cbor") && is(to, to_len, "application/json")) {
        dir = "cbor->json";
        rc = jc_cbor_to_json(&ctx, data, len);
    } else {
        return pc_codec_failf(PC_INVALID, "json-cbor: no conversion %.*s -> %.*s", (int)from_len, from, (int)to_len, to);
    }
    if (rc == JC_OK) {
        rc = pc_reply(ctx.out.p, ctx.out.n);
        if (rc != PC_OK)
            pc_codec_failf(rc, "json-cbor: %s: %zu bytes of output not taken by the host (limits.max_reply)", dir, ctx.out.n);
    } else {
        pc_codec_failf(rc, "json-cbor: %s: %s", dir, ctx.err);
    }
    jc_trim(&ctx);
    return rc;
}
