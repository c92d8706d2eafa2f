/* transport_callh.c - testdata/wat/transport_callh.wat written with the C
 * SDK (pycomms_transport.h): each whole line that arrives is delivered as
 * a request to "headers.r", and each reply, with its headers (the reply_h
 * callback), is written on the last connection that opened as status,
 * reply length, headers length (3 x u32, little-endian), reply, headers.
 * host/internal/transport's TestCTransportReplyHeaders builds and runs it. */
#include <string.h>

#include "pycomms_transport.h"

static uint32_t last, corr;
static uint8_t buf[4096];

static void opened(uint32_t conn, int dialed, int32_t index) {
    (void)dialed;
    (void)index;
    last = conn;
}

static int32_t data(uint32_t conn, const uint8_t *b, uint32_t n) {
    (void)conn;
    const uint8_t *nl = memchr(b, '\n', n);
    if (!nl) return 0;
    uint32_t k = (uint32_t)(nl - b);
    pct_deliver_parts(PCT_REQUEST, ++corr, "headers.r", 9, b, k);
    return (int32_t)k + 1;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void frame(int32_t status, const uint8_t *b, uint32_t n, const uint8_t *h, uint32_t hn) {
    if (last == 0 || 12 + (uint64_t)n + hn > sizeof buf) return;
    put32(buf, (uint32_t)status);
    put32(buf + 4, n);
    put32(buf + 8, hn);
    memcpy(buf + 12, b, n);
    memcpy(buf + 12 + n, h, hn);
    pct_write(last, buf, 12 + n + hn);
}

/* Never called when reply_h is set. */
static void reply(uint32_t c, int32_t status, const uint8_t *b, uint32_t n) {
    (void)c;
    (void)status;
    (void)b;
    (void)n;
    static const char text[] = "reply called instead of reply_h";
    frame(PC_INTERNAL, (const uint8_t *)text, sizeof text - 1, 0, 0);
}

static void reply_h(uint32_t c, int32_t status, const uint8_t *b, uint32_t n, const uint8_t *h, uint32_t hn) {
    (void)c;
    frame(status, b, n, h, hn);
}

static const pct_handler handler = {.opened = opened, .data = data, .reply = reply, .reply_h = reply_h};

void pct_init(void) { pct_set(&handler); }
