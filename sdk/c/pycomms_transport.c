/* pycomms_transport.c - the exports and actions of pycomms_transport.h. */
#include "pycomms_transport.h"

#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("pycomms:host/v1"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("conn_write") int32_t pct_host_conn_write(int32_t conn, const void *p, int32_t n);
IMPORT("conn_open") int32_t pct_host_conn_open(int32_t index);
IMPORT("conn_close") int32_t pct_host_conn_close(int32_t conn);
IMPORT("timer_set") int32_t pct_host_timer_set(int32_t id, int32_t ms);
IMPORT("deliver") int32_t pct_host_deliver(int32_t kind, int32_t corr, const void *p, int32_t sl, int32_t pl, int32_t hl);
IMPORT("respond") int32_t pct_host_respond(int32_t corr, int32_t status, const void *p, int32_t n);
IMPORT("respond_h") int32_t pct_host_respond_h(int32_t corr, int32_t status, const void *p, int32_t n, const void *h,
                                               int32_t hn);

static const pct_handler *handler;
static uint8_t *inbuf;
static uint32_t incap;
static int initialized;

void pct_set(const pct_handler *h) { handler = h; }

EXPORT("pycomms_abi_version") int32_t pct_abi_version(void) { return PC_ABI_VERSION; }

/* One grow-only buffer for every event; 0 when it cannot grow (the host
 * then fails the event with too_large and keeps the instance). */
EXPORT("pycomms_alloc") uint8_t *pct_alloc(int32_t size) {
    if (size <= 0) return 0;
    if ((uint32_t)size > incap) {
        uint8_t *b = realloc(inbuf, (size_t)size);
        if (!b) return 0;
        inbuf = b;
        incap = (uint32_t)size;
    }
    return inbuf;
}

EXPORT("pycomms_transport_event")
int32_t pct_event(int32_t ev, int32_t id, int32_t arg, uint8_t *p, int32_t la, int32_t lb, int32_t lc) {
    if (!initialized) {
        initialized = 1;
        pct_init();
    }
    if (!handler) return -PC_INTERNAL;
    uint32_t conn = (uint32_t)id;
    switch (ev) {
    case 1: case 2:
        if (handler->opened) handler->opened(conn, ev == 1, arg);
        return 0;
    case 3: {
        if (!handler->data) return la; /* consume and drop */
        int32_t n = handler->data(conn, p, (uint32_t)la);
        /* A negated status closes the connection (SPEC 13.2); anything
         * else out of range is clamped rather than an ABI violation. */
        if (n < 0) return n >= -PC_INTERNAL ? n : -PC_INTERNAL;
        return n > la ? la : n;
    }
    case 4:
        if (handler->closed) handler->closed(conn, arg);
        return 0;
    case 5: {
        if (!handler->message) return -PC_NO_HANDLER;
        int32_t st = handler->message(conn, arg, (const char *)p, (uint32_t)la, p + la, (uint32_t)lb,
                                      p + la + lb, (uint32_t)lc);
        return st == PC_OK ? 0 : -st;
    }
    case 6:
        /* len_b: the reply's headers (SPEC.md 13.2); an older host passes 0. */
        if (handler->reply_h)
            handler->reply_h(conn, arg, p, (uint32_t)la, p + la, (uint32_t)lb);
        else if (handler->reply)
            handler->reply(conn, arg, p, (uint32_t)la);
        return 0;
    case 7:
        if (handler->timer) handler->timer(conn);
        return 0;
    }
    return 0;
}

int32_t pct_write(uint32_t conn, const void *b, uint32_t n) { return pct_host_conn_write((int32_t)conn, b, (int32_t)n); }
int32_t pct_open(int32_t dial_index) { return pct_host_conn_open(dial_index); }
int32_t pct_close(uint32_t conn) { return pct_host_conn_close((int32_t)conn); }
int32_t pct_timer_set(uint32_t id, int32_t ms) { return pct_host_timer_set((int32_t)id, ms); }

int32_t pct_deliver(int32_t kind, uint32_t corr, const void *p, uint32_t subject_len, uint32_t payload_len,
                    uint32_t headers_len) {
    return pct_host_deliver(kind, (int32_t)corr, p, (int32_t)subject_len, (int32_t)payload_len, (int32_t)headers_len);
}

int32_t pct_deliver_parts(int32_t kind, uint32_t corr, const char *subject, uint32_t subject_len,
                          const void *payload, uint32_t payload_len) {
    static uint8_t buf[64 << 10];
    if ((uint64_t)subject_len + payload_len > sizeof buf) return -PC_TOO_LARGE;
    memcpy(buf, subject, subject_len);
    memcpy(buf + subject_len, payload, payload_len);
    return pct_deliver(kind, corr, buf, subject_len, payload_len, 0);
}

int32_t pct_respond(uint32_t corr, int32_t status, const void *b, uint32_t n) {
    return pct_host_respond((int32_t)corr, status, b, (int32_t)n);
}

int32_t pct_respond_h(uint32_t corr, int32_t status, const void *b, uint32_t n, const void *headers,
                      uint32_t headers_len) {
    return pct_host_respond_h((int32_t)corr, status, b, (int32_t)n, headers, (int32_t)headers_len);
}
