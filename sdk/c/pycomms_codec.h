/*
 * pycomms_codec.h - C guest SDK for pycomms codec plugins (abi/SPEC.md,
 * section 14): a plugin that converts a payload between declared pairs of
 * media types (content-type) or content codings (content-encoding).
 *
 * Build a codec with pycomms_codec.c instead of pycomms.c (a plugin is one
 * kind: pycomms.c exports pycomms_handle, this one pycomms_codec_convert):
 *
 *   clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-all \
 *       -I sdk/c -o upper.wasm upper.c sdk/c/pycomms_codec.c
 *
 * The plugin defines two functions; the SDK provides the exports:
 *
 *   const char *pc_codec_pairs(void) {
 *       return "type text/plain text/x-upper\n";
 *   }
 *   int pc_codec_convert(const char *from, size_t from_len, const char *to,
 *                        size_t to_len, const uint8_t *data, size_t len) {
 *       char *out = malloc(len ? len : 1);
 *       if (!out) return PC_TOO_LARGE;
 *       for (size_t i = 0; i < len; i++) out[i] = (char)toupper(data[i]);
 *       int rc = pc_reply(out, len);
 *       free(out);
 *       return rc;
 *   }
 *
 * Of pycomms.h, a codec may use pc_reply, pc_reply_str, pc_log, pc_log_n,
 * pc_logf, pc_config_get, pc_config_dup and pc_config_raw (pycomms_codec.c
 * defines them); every other host function is refused at load.
 */
#ifndef PYCOMMS_CODEC_H
#define PYCOMMS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "pycomms.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defined by the plugin: its pairs text, one pair per line ("type FROM TO"
 * or "encoding FROM TO", section 14), NUL-terminated. Called once per
 * loaded version; the host refuses the load when a line is malformed. */
const char *pc_codec_pairs(void);

/* Defined by the plugin: converts data (len bytes, valid only during the
 * call) from the pair's from side to its to side; from and to are ASCII,
 * not NUL-terminated, and always one of the declared pairs. Set the output
 * with pc_reply and return PC_OK; or set an error text with pc_reply (or
 * pc_codec_fail) and return PC_INVALID when data is not valid `from` data,
 * or another PC_* status (PC_TOO_LARGE for output over a limit). */
int pc_codec_convert(const char *from, size_t from_len, const char *to, size_t to_len,
                     const uint8_t *data, size_t len);

/* Sets msg as the error text and returns status: `return
 * pc_codec_fail(PC_INVALID, "json: ...");`. */
int pc_codec_fail(int status, const char *msg);

/* printf-style pc_codec_fail; the text is cut at 511 bytes. */
int pc_codec_failf(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
