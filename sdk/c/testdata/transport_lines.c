/* transport_lines.c - a transport plugin written with the C SDK
 * (pycomms_transport.h): it writes whole lines back on the connection they
 * came from, leaving a partial line with the host, and answers a request
 * routed out through it with its payload and, as the reply's headers, the
 * request's own (pct_respond_h), after writing the payload on the last
 * connection that opened. host/internal/transport's TestCTransport builds
 * and runs it. */
#include "pycomms_transport.h"

static uint32_t last;

static void opened(uint32_t conn, int dialed, int32_t index) {
    (void)dialed;
    (void)index;
    last = conn;
}

static int32_t data(uint32_t conn, const uint8_t *b, uint32_t n) {
    uint32_t k = n;
    while (k > 0 && b[k - 1] != '\n') k--;
    if (k > 0) pct_write(conn, b, k);
    return (int32_t)k;
}

static int32_t message(uint32_t corr, int32_t kind, const char *subject, uint32_t subject_len,
                       const uint8_t *payload, uint32_t payload_len, const uint8_t *headers,
                       uint32_t headers_len) {
    (void)kind;
    (void)subject;
    (void)subject_len;
    if (last == 0) return PC_UNREACHABLE;
    pct_write(last, payload, payload_len);
    if (corr != 0) pct_respond_h(corr, PC_OK, payload, payload_len, headers, headers_len);
    return PC_OK;
}

static const pct_handler handler = {.opened = opened, .data = data, .message = message};

void pct_init(void) { pct_set(&handler); }
