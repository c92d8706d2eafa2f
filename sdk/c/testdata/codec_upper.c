/*
 * codec_upper.c - the codec of pycomms_codec.h's example, with the SDK's
 * failure paths: text/plain -> text/x-upper upper-cases; identity ->
 * x-check fails on purpose by the payload's first byte ('i': invalid via
 * pc_codec_failf, 'l': too_large, 'u': a status outside section 6, which
 * the SDK reports as internal instead of breaking the ABI), and echoes
 * anything else with the plugin's config value "prefix" before it.
 * Built and run by TestCSDKCodec in host/internal/plugin.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pycomms_codec.h"

const char *pc_codec_pairs(void) { return "type text/plain text/x-upper\nencoding identity x-check\n"; }

int pc_codec_convert(const char *from, size_t from_len, const char *to, size_t to_len, const uint8_t *data,
                     size_t len) {
    (void)from, (void)from_len;
    if (to_len == 12 && memcmp(to, "text/x-upper", 12) == 0) {
        char *out = malloc(len ? len : 1);
        if (!out) return PC_TOO_LARGE;
        for (size_t i = 0; i < len; i++) out[i] = (char)toupper(data[i]);
        int rc = pc_reply(out, len);
        free(out);
        return rc;
    }
    if (len > 0 && data[0] == 'i') return pc_codec_failf(PC_INVALID, "x-check: byte 0 is %c", data[0]);
    if (len > 0 && data[0] == 'l') return pc_codec_fail(PC_TOO_LARGE, "x-check: too large on purpose");
    if (len > 0 && data[0] == 'u') return 99;
    char prefix[32];
    int32_t n = pc_config_get("prefix", prefix, sizeof prefix);
    if (n < 0 || (size_t)n >= sizeof prefix) n = 0;
    char *out = malloc((size_t)n + len + 1);
    if (!out) return PC_TOO_LARGE;
    memcpy(out, prefix, (size_t)n);
    memcpy(out + n, data, len);
    int rc = pc_reply(out, (size_t)n + len);
    free(out);
    return rc;
}
