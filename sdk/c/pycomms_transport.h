/*
 * pycomms_transport.h - C guest SDK for pycomms transport plugins
 * (abi/SPEC.md, section 13): a wire protocol as a state machine while the
 * host owns every socket.
 *
 * Build a transport with pycomms_transport.c instead of pycomms.c (a plugin
 * is one kind: pycomms.c exports pycomms_handle, this one
 * pycomms_transport_event):
 *
 *   clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-all \
 *       -I sdk/c -o gw.wasm gw.c sdk/c/pycomms_transport.c
 *
 * The plugin defines pct_init() and installs its callbacks there; a
 * callback left NULL ignores its event:
 *
 *   static int32_t data(uint32_t conn, const uint8_t *b, uint32_t n) {
 *       uint32_t k = n;                        // echo whole lines
 *       while (k > 0 && b[k - 1] != '\n') k--;
 *       pct_write(conn, b, k);
 *       return (int32_t)k;                     // the rest stays with the host
 *   }
 *   static const pct_handler h = {.data = data};
 *   void pct_init(void) { pct_set(&h); }
 *
 * Actions return 0 (pct_open: the new connection id) or a negated status
 * (PC_* of pycomms.h, negated), like the raw host functions.
 */
#ifndef PYCOMMS_TRANSPORT_H
#define PYCOMMS_TRANSPORT_H

#include <stdint.h>

#include "pycomms.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message kinds (abi/SPEC.md, section 5). */
#define PCT_REQUEST 1
#define PCT_SEND 2
#define PCT_EVENT 3

/* The events of section 13.2, as callbacks. Byte pointers are valid only
 * during the call. */
typedef struct pct_handler {
    /* A connection opened: dialed != 0 for a dial entry, index into dial
     * or accept. */
    void (*opened)(uint32_t conn, int dialed, int32_t index);
    /* Bytes arrived: return how many were consumed (0..n), or a negated
     * status (-PC_INVALID for a malformed stream) to close the connection:
     * the host counts it and a closed event with that status follows. */
    int32_t (*data)(uint32_t conn, const uint8_t *b, uint32_t n);
    /* A connection closed; why is a PC_* status (PC_OK: the peer closed). */
    void (*closed)(uint32_t conn, int32_t why);
    /* A message routed out through the transport; corr != 0 for a request
     * (answer it with pct_respond or pct_respond_h). Return PC_OK, or a
     * status that fails
     * it. */
    int32_t (*message)(uint32_t corr, int32_t kind, const char *subject, uint32_t subject_len,
                       const uint8_t *payload, uint32_t payload_len,
                       const uint8_t *headers, uint32_t headers_len);
    /* The reply to a request delivered with pct_deliver and corr (not
     * called when reply_h is set). */
    void (*reply)(uint32_t corr, int32_t status, const uint8_t *b, uint32_t n);
    /* A timer set with pct_timer_set fired. */
    void (*timer)(uint32_t id);
    /* The reply to a request delivered with pct_deliver and corr, with the
     * reply's headers: a CBOR map of text to text (SPEC.md section 10) of
     * headers_len bytes, 0 when the reply has none and always for an error
     * reply (status != PC_OK, b its error text). When set, it is called
     * instead of reply. Last in the struct, so that handlers written
     * before it compile and run unchanged. */
    void (*reply_h)(uint32_t corr, int32_t status, const uint8_t *b, uint32_t n, const uint8_t *headers,
                    uint32_t headers_len);
} pct_handler;

/* Defined by the plugin: called once per instance, before any event. */
void pct_init(void);

/* Installs the callbacks (h must outlive the instance: make it static). */
void pct_set(const pct_handler *h);

int32_t pct_write(uint32_t conn, const void *b, uint32_t n);
int32_t pct_open(int32_t dial_index);
int32_t pct_close(uint32_t conn);
int32_t pct_timer_set(uint32_t id, int32_t ms);
/* subject, payload and CBOR headers must lie contiguously at p (as the
 * host lays out a message): use pct_deliver_parts when they do not. */
int32_t pct_deliver(int32_t kind, uint32_t corr, const void *p, uint32_t subject_len,
                    uint32_t payload_len, uint32_t headers_len);
/* Copies subject and payload together (at most 64 KiB) and delivers them
 * without headers. */
int32_t pct_deliver_parts(int32_t kind, uint32_t corr, const char *subject, uint32_t subject_len,
                          const void *payload, uint32_t payload_len);
int32_t pct_respond(uint32_t corr, int32_t status, const void *b, uint32_t n);
/* pct_respond that also sets the reply's headers: a CBOR map of text to
 * text (SPEC.md section 10) of headers_len bytes at headers, 0 for none.
 * Headers the host refuses give -PC_INVALID and leave the request
 * unanswered (respond again); an error reply's headers are dropped. A
 * plugin that never calls it does not import respond_h. */
int32_t pct_respond_h(uint32_t corr, int32_t status, const void *b, uint32_t n, const void *headers,
                      uint32_t headers_len);

#ifdef __cplusplus
}
#endif

#endif
