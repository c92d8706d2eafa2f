/*
 * pycomms.h - C guest SDK for pycomms plugins, ABI v1.
 *
 * Build a plugin as a WASI reactor with clang-14 and wasi-libc:
 *
 *   clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-all \
 *       -I sdk/c -o plugin.wasm plugin.c sdk/c/pycomms.c
 *
 * A plugin defines pc_init() and registers its handlers there:
 *
 *   #include "pycomms.h"
 *
 *   static int greet(const pc_msg *m) {
 *       return pc_reply(m->payload, m->payload_len);
 *   }
 *
 *   void pc_init(void) {
 *       pc_handle("hello.greet", greet);
 *   }
 *
 * The SDK exports pycomms_abi_version, pycomms_alloc, pycomms_handle and
 * pycomms_handle_batch (abi/SPEC.md, section 3) and dispatches every
 * message, alone or from a batch, to the handler registered for its
 * subject. See sdk/c/README.md for the full guide.
 *
 * Conventions of this API
 *  - Functions that only succeed or fail return a status: PC_OK (0) or one
 *    of the positive PC_* codes below, so a handler can `return rc;`.
 *  - Functions that return a length (pc_config_get, pc_header, pc_result)
 *    return it as a value >= 0, or the negated status (< 0) on failure,
 *    like the raw host functions do.
 *  - Instances are single-threaded: the host never delivers two messages to
 *    one instance at the same time, so handlers need no locking.
 */
#ifndef PYCOMMS_H
#define PYCOMMS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this SDK implements (exported as pycomms_abi_version). */
#define PC_ABI_VERSION 1

/* Status codes (abi/SPEC.md, section 6). Handlers return one of these; the
 * host functions return them negated. */
#define PC_OK 0            /* success */
#define PC_DENIED 1        /* the capability is not granted to this plugin */
#define PC_INVALID 2       /* bad argument (subject, level, pointer, ...) */
#define PC_TOO_LARGE 3     /* a size limit was exceeded (reply, payload) */
#define PC_NO_HANDLER 4    /* nobody serves the subject */
#define PC_TIMEOUT 5       /* the deadline passed */
#define PC_BUSY 6          /* a bounded queue is full */
#define PC_HANDLER_ERROR 7 /* the handler failed; the reply is the error text */
#define PC_TRAP 8          /* the plugin trapped, was killed or broke the ABI */
#define PC_NO_METHOD 9     /* this plugin serves the service but not this method */
#define PC_NOT_FOUND 10    /* a config key or header does not exist */
#define PC_UNREACHABLE 11  /* the node that serves the subject cannot be reached */
#define PC_INTERNAL 12     /* a host-side failure */
#define PC_UNSUPPORTED_TYPE 13 /* no codec converts the payload to a type the handler accepts */

/* Message kinds (abi/SPEC.md, section 5). */
#define PC_KIND_REQUEST 1 /* request/reply: the caller waits for the reply */
#define PC_KIND_SEND 2    /* one-way message to a service: no reply */
#define PC_KIND_EVENT 3   /* pub/sub event on a topic: no reply */

/* Log levels (abi/SPEC.md, section 7). */
#define PC_LOG_DEBUG 0
#define PC_LOG_INFO 1
#define PC_LOG_WARN 2
#define PC_LOG_ERROR 3

/* The longest subject or topic, in bytes (abi/SPEC.md, section 9). */
#define PC_MAX_SUBJECT_LEN 1024

/*
 * Durable queues (abi/SPEC.md, section 15): enqueue with pc_call on
 * PC_QUEUE_SUBJECT_PREFIX "orders.created" (the reply is the message's id,
 * once it is on disk); a plugin that consumes a queue gets each message as a
 * send under that subject with these two headers, and acknowledges it by
 * returning PC_OK.
 */
#define PC_QUEUE_SUBJECT_PREFIX "$queue."
#define PC_HEADER_QUEUE_ID "pycomms-queue-id" /* the message's id, decimal, the same on every delivery */
#define PC_HEADER_ATTEMPT "pycomms-attempt"   /* 1 on the first delivery, 2 on the first retry, ... */

/*
 * One message, valid only while its handler runs: the SDK reuses the memory
 * for the next message. Copy anything you want to keep.
 */
typedef struct pc_msg {
	int32_t kind;          /* PC_KIND_REQUEST, PC_KIND_SEND or PC_KIND_EVENT */
	const char *subject;   /* subject or topic, NUL-terminated */
	size_t subject_len;    /* strlen(subject) */
	const char *payload;   /* payload bytes; a NUL follows them, so text payloads
	                        * can be used as C strings (binary payloads may
	                        * contain NULs: use payload_len) */
	size_t payload_len;    /* payload length in bytes */
	const uint8_t *headers; /* headers as a CBOR map of text to text (may be
	                         * empty); pc_header() looks one up for you */
	size_t headers_len;    /* encoded headers length in bytes (0: none) */
} pc_msg;

/* A request/send handler. Returns PC_OK, or a status: return
 * pc_error("...") for an application error. */
typedef int (*pc_handler)(const pc_msg *m);

/* An event handler. Its status is counted and logged by the host; nobody
 * waits for it. */
typedef int (*pc_event_handler)(const pc_msg *m);

/*
 * Defined by the plugin (required: linking fails without it). The SDK calls
 * it exactly once per instance, at the start of the instance's first
 * message, before dispatching that message. Register handlers and
 * subscriptions here. Host functions work inside pc_init (pc_log,
 * pc_config_get, ...), and pc_header() refers to that first message.
 *
 * It is not called from _initialize on purpose: that runs while the host is
 * still setting the instance up, before any message exists.
 */
void pc_init(void);

/*
 * Registers fn for requests and sends whose subject is exactly `subject`
 * (e.g. "hello.greet"; no wildcards). A later registration of the same
 * subject replaces the earlier one. The subject string is copied.
 * Returns PC_OK, PC_INVALID (empty token, wildcard, '*' or '>' inside a
 * token, too long) or PC_INTERNAL (out of memory).
 */
int pc_handle(const char *subject, pc_handler fn);

/*
 * Registers fn for events whose topic matches `pattern`: tokens separated by
 * '.', where "*" matches exactly one token and ">" (last token only) matches
 * one or more; '*' and '>' are never part of a longer token. Every matching
 * subscription sees the event, in registration order. The pattern string is
 * copied. Returns PC_OK, PC_INVALID or PC_INTERNAL.
 */
int pc_subscribe(const char *pattern, pc_event_handler fn);

/* Reports whether `subject` (subject_len bytes) matches the topic pattern
 * (same rules as pc_subscribe). Returns 1 or 0. */
int pc_match(const char *pattern, const char *subject, size_t subject_len);

/*
 * Dispatch rules of pycomms_handle:
 *  - requests and sends go to the pc_handle() handler of their exact
 *    subject; without one the SDK answers PC_NO_METHOD (for a request with
 *    the error text "no method <subject>").
 *  - events go to every matching pc_subscribe() handler; the status is the
 *    first non-OK status returned, or PC_NO_METHOD when none matches.
 *  - a handler returning a negative value -s is treated as status s.
 */

/* Sets the reply to the message being handled (replacing any earlier one).
 * The host copies the bytes. Returns PC_OK or PC_TOO_LARGE (over the
 * plugin's max_reply) / PC_INVALID. Ignored by the host for sends and events. */
int pc_reply(const void *data, size_t len);

/* pc_reply of a NUL-terminated string (without the NUL). */
int pc_reply_str(const char *s);

/* Sets `msg` (NUL-terminated) as the error text and returns
 * PC_HANDLER_ERROR: `return pc_error("quantity must be positive");` */
int pc_error(const char *msg);

/* Publishes an event on `topic` (no wildcards). Grant: publish.
 * Returns PC_OK, PC_DENIED, PC_BUSY or PC_INVALID. */
int pc_publish(const char *topic, const void *data, size_t len);

/* Sends a one-way message to the service serving `subject`. Grant: send.
 * Returns PC_OK, PC_DENIED, PC_NO_HANDLER, PC_BUSY or PC_INVALID. */
int pc_send(const char *subject, const void *data, size_t len);

/*
 * Calls the service serving `subject` and waits for its reply, at most
 * timeout_ms milliseconds (<= 0: whatever remains of the current message's
 * own deadline). Grant: call.
 *
 * Returns PC_OK when the callee replied, or the failure status (PC_DENIED,
 * PC_TIMEOUT, PC_NO_HANDLER, PC_HANDLER_ERROR, ...).
 *
 * Ownership: when `out` is not NULL, *out receives a buffer allocated with
 * malloc() that the caller owns and must free(). It holds the reply (on
 * PC_OK) or the error text (on failure), followed by a NUL that is not
 * counted in *out_len; an empty result is a 1-byte buffer holding the NUL.
 * *out is NULL only when that allocation failed.
 *
 * When `out` is NULL nothing is allocated: *out_len (if given) receives the
 * result's length, and pc_result() copies it into a buffer of your own
 * until the next pc_call. out_len may be NULL.
 */
int pc_call(const char *subject, const void *data, size_t len, int timeout_ms,
            char **out, size_t *out_len);

/* Copies the reply (or error text) of the last pc_call into buf when it
 * fits in cap bytes. Returns its full length either way (call again with a
 * larger buffer when the result exceeds cap); nothing is written when it
 * does not fit. */
int32_t pc_result(void *buf, size_t cap);

/*
 * Headers on outgoing messages and replies (abi/SPEC.md section 10).
 *
 * A pc_headers builds the CBOR map in a buffer the caller provides (no
 * allocation): pc_headers_init, then pc_headers_add for each header, then
 * pass it to pc_publish_h, pc_send_h, pc_call_h or pc_reply_h (NULL, or no
 * header added: none). Keys are lower-cased (ASCII) as they are added.
 *
 *     uint8_t buf[256];
 *     pc_headers h;
 *     pc_headers_init(&h, buf, sizeof buf);
 *     pc_headers_add(&h, "Content-Type", "application/cbor");
 *     pc_call_h("inventory.reserve", data, len, &h, 0, &out, &out_len);
 *
 * pc_headers_add returns PC_TOO_LARGE when the entry does not fit in the
 * buffer (or the map would exceed 256 entries or 64 KiB), PC_INVALID for an
 * empty key or one starting with "pycomms-" (the host's own); the builder
 * then remembers the failure and the _h functions return it without sending
 * anything. The host also refuses (PC_INVALID, logged) a key added twice.
 */
typedef struct pc_headers {
	uint8_t *buf;   /* the caller's buffer */
	size_t cap;     /* its size */
	size_t len;     /* bytes used: the encoded map when count > 0 */
	uint32_t count; /* headers added */
	int err;        /* first failure of pc_headers_add, PC_OK if none */
} pc_headers;

void pc_headers_init(pc_headers *h, void *buf, size_t cap);
int pc_headers_add(pc_headers *h, const char *key, const char *value);

/* pc_publish, pc_send and pc_call with headers (h may be NULL). Grants as
 * for those; PC_INVALID also when the host refuses the headers (for
 * pc_call_h the error text in *out says why). */
int pc_publish_h(const char *topic, const void *data, size_t len, const pc_headers *h);
int pc_send_h(const char *subject, const void *data, size_t len, const pc_headers *h);
int pc_call_h(const char *subject, const void *data, size_t len, const pc_headers *h,
              int timeout_ms, char **out, size_t *out_len);

/* Looks up one header of the reply of the last pc_call or pc_call_h; same
 * contract as pc_header (-PC_NOT_FOUND when absent, or after a failed
 * call). */
int32_t pc_result_header(const char *key, char *buf, size_t cap);

/* Copies every header of the last call's reply, as a CBOR map, into buf
 * when it fits in cap. Returns its full length (0: none). */
int32_t pc_result_headers(void *buf, size_t cap);

/* pc_reply that also sets the reply's headers (h may be NULL: none).
 * Returns PC_OK, PC_TOO_LARGE or PC_INVALID (refused headers: the reply is
 * then not changed). */
int pc_reply_h(const void *data, size_t len, const pc_headers *h);

/* Writes `msg` (NUL-terminated) to the host log at `level` (PC_LOG_*),
 * tagged with the plugin's name. Grant: log (granted by default).
 * Returns PC_OK, PC_DENIED or PC_INVALID. */
int pc_log(int level, const char *msg);

/* Like pc_log, for a message that is not NUL-terminated. */
int pc_log_n(int level, const char *msg, size_t len);

/* printf-style pc_log; the formatted line is cut at 1023 bytes. Pulls in
 * wasi-libc's vsnprintf (a few KiB of code) when used. */
int pc_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Looks up the string form of one value of the plugin's `config` (dotted key
 * path for nested maps, e.g. "db.host"). Returns the value's full length
 * (not counting a NUL), or -PC_NOT_FOUND. When the length is < cap, buf
 * holds the value followed by a NUL; otherwise buf is not written, and a
 * buffer of (length + 1) bytes will fit it.
 */
int32_t pc_config_get(const char *key, char *buf, size_t cap);

/* pc_config_get into a malloc()'d NUL-terminated string the caller must
 * free(). Returns NULL when the key does not exist (or out of memory). */
char *pc_config_dup(const char *key);

/* Copies the whole plugin config, encoded as a CBOR map with text keys,
 * into buf when it fits in cap. Returns its full length (0: no config). */
int32_t pc_config_raw(void *buf, size_t cap);

/* Looks up one header of the message being handled; same contract as
 * pc_config_get (-PC_NOT_FOUND when the header is absent). */
int32_t pc_header(const char *key, char *buf, size_t cap);

/*
 * Raw host functions of ABI v1 (module "pycomms:host/v1", abi/SPEC.md
 * section 4). Pointers are addresses in this module's memory. Each returns
 * a value >= 0 on success or a negated status. Prefer the pc_* wrappers
 * above; these are here for code that needs the exact ABI.
 */
#define PC__IMPORT(name) __attribute__((import_module("pycomms:host/v1"), import_name(name)))
PC__IMPORT("reply") int32_t pc_host_reply(const void *ptr, int32_t len);
PC__IMPORT("log") int32_t pc_host_log(int32_t level, const void *ptr, int32_t len);
PC__IMPORT("publish") int32_t pc_host_publish(const void *topic, int32_t topic_len,
                                              const void *data, int32_t data_len);
PC__IMPORT("send") int32_t pc_host_send(const void *subject, int32_t subject_len,
                                        const void *data, int32_t data_len);
PC__IMPORT("call") int32_t pc_host_call(const void *subject, int32_t subject_len,
                                        const void *data, int32_t data_len,
                                        int32_t timeout_ms);
PC__IMPORT("result") int32_t pc_host_result(void *ptr, int32_t cap);
PC__IMPORT("config") int32_t pc_host_config(void *ptr, int32_t cap);
PC__IMPORT("config_get") int32_t pc_host_config_get(const void *key, int32_t key_len,
                                                    void *ptr, int32_t cap);
PC__IMPORT("header") int32_t pc_host_header(const void *key, int32_t key_len,
                                            void *ptr, int32_t cap);
PC__IMPORT("publish_h") int32_t pc_host_publish_h(const void *topic, int32_t topic_len,
                                                  const void *data, int32_t data_len,
                                                  const void *headers, int32_t headers_len);
PC__IMPORT("send_h") int32_t pc_host_send_h(const void *subject, int32_t subject_len,
                                            const void *data, int32_t data_len,
                                            const void *headers, int32_t headers_len);
PC__IMPORT("call_h") int32_t pc_host_call_h(const void *subject, int32_t subject_len,
                                            const void *data, int32_t data_len,
                                            const void *headers, int32_t headers_len,
                                            int32_t timeout_ms);
PC__IMPORT("result_header") int32_t pc_host_result_header(const void *key, int32_t key_len,
                                                          void *ptr, int32_t cap);
PC__IMPORT("result_headers") int32_t pc_host_result_headers(void *ptr, int32_t cap);
PC__IMPORT("reply_h") int32_t pc_host_reply_h(const void *ptr, int32_t len,
                                              const void *headers, int32_t headers_len);
#undef PC__IMPORT

#ifdef __cplusplus
}
#endif

#endif /* PYCOMMS_H */
