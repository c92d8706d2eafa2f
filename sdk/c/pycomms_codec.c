/* pycomms_codec.c - the exports of pycomms_codec.h and the host functions a
 * codec may use (the pycomms.h subset named there). */
#include "pycomms_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

static uint8_t *inbuf;
static uint32_t incap;

EXPORT("pycomms_abi_version") int32_t pcc_abi_version(void) { return PC_ABI_VERSION; }

/* One grow-only buffer for every conversion; 0 when it cannot grow (the
 * host then fails the conversion with too_large and keeps the instance). */
EXPORT("pycomms_alloc") uint8_t *pcc_alloc(int32_t size) {
    if (size <= 0) return 0;
    if ((uint32_t)size > incap) {
        free(inbuf);
        inbuf = malloc((size_t)size);
        incap = inbuf ? (uint32_t)size : 0;
        if (!inbuf) return 0;
    }
    return inbuf;
}

EXPORT("pycomms_codec_pairs") int32_t pcc_pairs(void) {
    const char *p = pc_codec_pairs();
    if (!p) return pc_codec_fail(PC_INTERNAL, "codec: pc_codec_pairs returned NULL");
    return pc_reply_str(p);
}

EXPORT("pycomms_codec_convert")
int32_t pcc_convert(uint8_t *p, int32_t from_len, int32_t to_len, int32_t data_len) {
    if (from_len < 0 || to_len < 0 || data_len < 0 ||
        (uint64_t)from_len + (uint64_t)to_len + (uint64_t)data_len > incap ||
        (from_len + to_len + data_len > 0 && p != inbuf))
        return pc_codec_fail(PC_INVALID, "codec: the host passed a buffer pycomms_alloc did not return");
    int rc = pc_codec_convert((const char *)p, (size_t)from_len, (const char *)p + from_len, (size_t)to_len,
                              p + from_len + to_len, (size_t)data_len);
    /* Statuses outside section 6 would be an ABI violation (trap): report
     * them as the plugin's internal failure instead. */
    return rc >= PC_OK && rc <= PC_UNSUPPORTED_TYPE ? rc : pc_codec_fail(PC_INTERNAL, "codec: unknown status");
}

int pc_codec_fail(int status, const char *msg) {
    pc_reply_str(msg);
    return status;
}

int pc_codec_failf(int status, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return pc_codec_fail(status, "codec: error text could not be formatted");
    return pc_codec_fail(status, line);
}

/* ---- the pycomms.h host functions a codec may use ---------------------- */

#include "pycomms_calls.inc"
