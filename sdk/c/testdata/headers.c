/*
 * headers.c: a handler built with sdk/c for the tests of headers on
 * outgoing messages and replies (abi/SPEC.md section 10). Each method
 * takes a subject (or topic) as its payload:
 *
 *   ch.call     pc_call_h(payload, "R") with {"X-Req": "c"} (sent as
 *               x-req); replies with the reply followed by the reply's
 *               header x-rep (pc_result_header)
 *   ch.send     pc_send_h(payload, "R") with {"x-req": "c"}; replies "ok"
 *   ch.publish  pc_publish_h(payload, "R") with {"x-req": "c"}; replies "ok"
 *   ch.reply    pc_reply_h("r") with {"x-rep": "c"}
 *   ch.full     adds headers to an 8-byte buffer until one does not fit,
 *               then pc_send_h(payload): replies with the status it got
 *   ch.dup      pc_send_h(payload) with the key "a" twice (the host
 *               refuses it): replies with the status it got
 */
#include <stdio.h>
#include <string.h>

#include "pycomms.h"

static int reply_status(int rc) {
	char num[16];
	int n = snprintf(num, sizeof num, "%d", rc);
	return pc_reply(num, (size_t)n);
}

static int call(const pc_msg *m) {
	uint8_t buf[64];
	pc_headers h;
	pc_headers_init(&h, buf, sizeof buf);
	pc_headers_add(&h, "X-Req", "c");
	char *out;
	size_t n;
	int rc = pc_call_h(m->payload, "R", 1, &h, 0, &out, &n);
	if (rc != PC_OK) {
		pc_reply(out, n);
		return rc;
	}
	char rep[32];
	int32_t rl = pc_result_header("x-rep", rep, sizeof rep);
	char both[96];
	if (rl < 0 || n + (size_t)rl > sizeof both)
		return pc_error("ch.call: no x-rep header in the reply");
	memcpy(both, out, n);
	memcpy(both + n, rep, (size_t)rl);
	return pc_reply(both, n + (size_t)rl);
}

static int send_or_publish(const pc_msg *m, int publish) {
	uint8_t buf[64];
	pc_headers h;
	pc_headers_init(&h, buf, sizeof buf);
	pc_headers_add(&h, "x-req", "c");
	int rc = publish ? pc_publish_h(m->payload, "R", 1, &h) : pc_send_h(m->payload, "R", 1, &h);
	if (rc != PC_OK)
		return rc;
	return pc_reply_str("ok");
}

static int send(const pc_msg *m) { return send_or_publish(m, 0); }
static int publish(const pc_msg *m) { return send_or_publish(m, 1); }

static int reply(const pc_msg *m) {
	(void)m;
	uint8_t buf[32];
	pc_headers h;
	pc_headers_init(&h, buf, sizeof buf);
	pc_headers_add(&h, "x-rep", "c");
	return pc_reply_h("r", 1, &h);
}

static int full(const pc_msg *m) {
	uint8_t buf[8];
	pc_headers h;
	pc_headers_init(&h, buf, sizeof buf);
	pc_headers_add(&h, "a", "1");
	pc_headers_add(&h, "b", "2"); /* 3 + 2*4 bytes: does not fit */
	return reply_status(pc_send_h(m->payload, "R", 1, &h));
}

static int dup(const pc_msg *m) {
	uint8_t buf[32];
	pc_headers h;
	pc_headers_init(&h, buf, sizeof buf);
	pc_headers_add(&h, "a", "1");
	pc_headers_add(&h, "A", "2");
	return reply_status(pc_send_h(m->payload, "R", 1, &h));
}

void pc_init(void) {
	pc_handle("ch.call", call);
	pc_handle("ch.send", send);
	pc_handle("ch.publish", publish);
	pc_handle("ch.reply", reply);
	pc_handle("ch.full", full);
	pc_handle("ch.dup", dup);
}
