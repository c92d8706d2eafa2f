/*
 * pycomms.c - guest side of pycomms ABI v1 for C (clang-14 + wasi-libc,
 * WASI reactor). See pycomms.h for the API and abi/SPEC.md for the ABI.
 *
 * Exports: pycomms_abi_version, pycomms_alloc, pycomms_handle,
 * pycomms_handle_batch.
 */
#include "pycomms.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PC_EXPORT(name) __attribute__((export_name(name)))

/* ---- message buffer ------------------------------------------------------
 *
 * The host asks pycomms_alloc(n) for room for one message, copies the
 * message there and calls pycomms_handle. One grow-only buffer is reused
 * for every message. It always has one spare byte, which pycomms_handle
 * uses to put a NUL after the payload (moving the headers up by one).
 */
static char *g_buf;
static size_t g_cap;

/* Makes g_buf at least `need` bytes. The old contents are dropped. */
static int buf_reserve(size_t need) {
	if (need <= g_cap)
		return 1;
	size_t c = g_cap ? g_cap : 1024;
	while (c < need)
		c = c > SIZE_MAX / 2 ? need : c * 2;
	free(g_buf);
	g_buf = malloc(c);
	g_cap = g_buf ? c : 0;
	return g_buf != NULL;
}

PC_EXPORT("pycomms_abi_version")
int32_t pycomms_abi_version(void) { return PC_ABI_VERSION; }

PC_EXPORT("pycomms_alloc")
char *pycomms_alloc(uint32_t size) {
	if ((size_t)size == SIZE_MAX || !buf_reserve((size_t)size + 1))
		return NULL; /* the host reports a 0 for a non-zero size */
	return g_buf;
}

/* ---- registry ------------------------------------------------------------ */

struct route {
	char *pattern;
	size_t len;
	pc_handler fn;
};

struct routes {
	struct route *v;
	size_t n, cap;
};

static struct routes g_handlers; /* exact subjects: requests and sends */
static struct routes g_subs;     /* topic patterns: events */

/* valid_subject and pc_match: kept in their own file so that a native build
 * can test them alone against abi/testdata/subjects.txt. */
#include "pycomms_subject.h"

static int routes_add(struct routes *r, const char *pattern, pc_handler fn, int replace) {
	size_t len = strlen(pattern);
	if (replace) {
		for (size_t i = 0; i < r->n; i++) {
			if (r->v[i].len == len && memcmp(r->v[i].pattern, pattern, len) == 0) {
				r->v[i].fn = fn;
				return PC_OK;
			}
		}
	}
	if (r->n == r->cap) {
		size_t c = r->cap ? r->cap * 2 : 8;
		struct route *v = realloc(r->v, c * sizeof *v);
		if (!v)
			return PC_INTERNAL;
		r->v = v;
		r->cap = c;
	}
	char *p = malloc(len + 1);
	if (!p)
		return PC_INTERNAL;
	memcpy(p, pattern, len + 1);
	r->v[r->n++] = (struct route){p, len, fn};
	return PC_OK;
}

int pc_handle(const char *subject, pc_handler fn) {
	if (!subject || !fn || !valid_subject(subject, 0))
		return PC_INVALID;
	return routes_add(&g_handlers, subject, fn, 1);
}

int pc_subscribe(const char *pattern, pc_event_handler fn) {
	if (!pattern || !fn || !valid_subject(pattern, 1))
		return PC_INVALID;
	return routes_add(&g_subs, pattern, fn, 0);
}

/* ---- dispatch ------------------------------------------------------------ */

static int g_initialized;
static char g_subject[PC_MAX_SUBJECT_LEN + 1];

static int normalize(int rc) { return rc < 0 ? -rc : rc; }

static int dispatch(const pc_msg *m) {
	if (m->kind == PC_KIND_EVENT) {
		int rc = PC_OK, matched = 0;
		/* By index: a handler may subscribe more and move g_subs.v. */
		for (size_t i = 0; i < g_subs.n; i++) {
			if (!pc_match(g_subs.v[i].pattern, m->subject, m->subject_len))
				continue;
			matched = 1;
			int r = normalize(g_subs.v[i].fn(m));
			if (rc == PC_OK)
				rc = r;
		}
		return matched ? rc : PC_NO_METHOD;
	}
	if (m->kind != PC_KIND_REQUEST && m->kind != PC_KIND_SEND)
		return PC_INVALID;
	for (size_t i = 0; i < g_handlers.n; i++) {
		const struct route *r = &g_handlers.v[i];
		if (r->len == m->subject_len && memcmp(r->pattern, m->subject, r->len) == 0)
			return normalize(r->fn(m));
	}
	if (m->kind == PC_KIND_REQUEST) {
		static const char prefix[] = "no method ";
		char text[sizeof prefix + PC_MAX_SUBJECT_LEN];
		memcpy(text, prefix, sizeof prefix - 1);
		memcpy(text + sizeof prefix - 1, m->subject, m->subject_len);
		pc_reply(text, sizeof prefix - 1 + m->subject_len);
	}
	return PC_NO_METHOD;
}

static int32_t deliver(int32_t kind, char *ptr, uint32_t subject_len,
                       uint32_t payload_len, uint32_t headers_len);

PC_EXPORT("pycomms_handle")
int32_t pycomms_handle(int32_t kind, char *ptr, uint32_t subject_len,
                       uint32_t payload_len, uint32_t headers_len) {
	uint64_t total64 = (uint64_t)subject_len + payload_len + headers_len;
	if (subject_len > PC_MAX_SUBJECT_LEN || total64 >= SIZE_MAX)
		return PC_INVALID;
	size_t total = (size_t)total64;
	if (ptr != g_buf || total + 1 > g_cap) {
		/* Not our buffer (or not our size): copy the message into one. */
		size_t c = total + 1;
		char *nb = malloc(c);
		if (!nb)
			return PC_INTERNAL;
		if (total)
			memcpy(nb, ptr, total);
		free(g_buf);
		g_buf = nb;
		g_cap = c;
		ptr = nb;
	}
	return deliver(kind, ptr, subject_len, payload_len, headers_len);
}

/* ---- batches (abi/SPEC.md section 3.1) ------------------------------------
 *
 * A record is copied out of the batch into g_rec before it is handled: the
 * handler gets the same NUL-terminated payload as from pycomms_handle, and
 * that NUL needs a byte the batch does not have to spare.
 */
static char *g_rec;
static size_t g_rec_cap;

static uint32_t le32(const char *p) {
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

PC_EXPORT("pycomms_handle_batch")
int32_t pycomms_handle_batch(char *ptr, uint32_t len, uint32_t count) {
	uint32_t failed = 0;
	size_t off = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (len - off < 16) {
			pc_reply_str("pycomms: a record runs past the batch's end");
			return (int32_t)(failed + count - i);
		}
		const char *r = ptr + off;
		uint32_t s = le32(r + 4), p = le32(r + 8), h = le32(r + 12);
		uint64_t total64 = (uint64_t)s + p + h;
		if (s > PC_MAX_SUBJECT_LEN || total64 > len - off - 16) {
			pc_reply_str("pycomms: a record runs past the batch's end");
			return (int32_t)(failed + count - i);
		}
		size_t total = (size_t)total64;
		if (total + 1 > g_rec_cap) {
			size_t c = g_rec_cap ? g_rec_cap : 1024;
			while (c < total + 1)
				c *= 2;
			char *nb = malloc(c);
			if (!nb) {
				pc_reply_str("pycomms: out of memory for a batch record");
				return (int32_t)(failed + count - i);
			}
			free(g_rec);
			g_rec = nb;
			g_rec_cap = c;
		}
		memcpy(g_rec, r + 16, total);
		if (deliver((int32_t)le32(r), g_rec, s, p, h) != PC_OK)
			failed++;
		off += 16 + total;
	}
	return (int32_t)failed;
}

/* deliver hands one message at ptr (with one spare byte after it) to the
 * handlers. */
static int32_t deliver(int32_t kind, char *ptr, uint32_t subject_len,
                       uint32_t payload_len, uint32_t headers_len) {
	/* subject -> NUL-terminated copy; payload gets a NUL after it by moving
	 * the headers up one byte into the spare byte. */
	memcpy(g_subject, ptr, subject_len);
	g_subject[subject_len] = 0;
	char *payload = ptr + subject_len;
	char *headers = payload + payload_len + 1;
	if (headers_len)
		memmove(headers, payload + payload_len, headers_len);
	payload[payload_len] = 0;

	if (!g_initialized) {
		g_initialized = 1;
		pc_init();
	}
	pc_msg m = {
	    .kind = kind,
	    .subject = g_subject,
	    .subject_len = subject_len,
	    .payload = payload,
	    .payload_len = payload_len,
	    .headers = (const uint8_t *)headers,
	    .headers_len = headers_len,
	};
	return dispatch(&m);
}

/* ---- host functions ------------------------------------------------------ */

#include "pycomms_calls.inc"

int pc_error(const char *msg) {
	pc_reply_str(msg);
	return PC_HANDLER_ERROR;
}

int pc_publish(const char *topic, const void *data, size_t len) {
	size_t tl = strlen(topic);
	if (!PC_FITS_I32(len))
		return PC_TOO_LARGE;
	return status_of(pc_host_publish(topic, (int32_t)tl, data, (int32_t)len));
}

int pc_send(const char *subject, const void *data, size_t len) {
	size_t sl = strlen(subject);
	if (!PC_FITS_I32(len))
		return PC_TOO_LARGE;
	return status_of(pc_host_send(subject, (int32_t)sl, data, (int32_t)len));
}

int32_t pc_result(void *buf, size_t cap) { return pc_host_result(buf, cap_i32(cap)); }

/* call_out finishes pc_call and pc_call_h: r is what the import returned. */
static int call_out(int32_t r, char **out, size_t *out_len) {
	int status = status_of(r);
	int32_t n = r >= 0 ? r : pc_host_result(NULL, 0);
	if (n < 0)
		n = 0;
	if (!out) {
		if (out_len)
			*out_len = (size_t)n;
		return status;
	}
	for (;;) {
		char *b = malloc((size_t)n + 1);
		if (!b)
			return status;
		int32_t got = n ? pc_host_result(b, n) : 0;
		if (got > n) { /* cannot happen with a conforming host; retry */
			free(b);
			n = got;
			continue;
		}
		if (got < 0)
			got = 0;
		b[got] = 0;
		*out = b;
		if (out_len)
			*out_len = (size_t)got;
		return status;
	}
}

int pc_call(const char *subject, const void *data, size_t len, int timeout_ms,
            char **out, size_t *out_len) {
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!PC_FITS_I32(len))
		return PC_TOO_LARGE;
	return call_out(pc_host_call(subject, (int32_t)strlen(subject), data, (int32_t)len,
	                             timeout_ms),
	                out, out_len);
}

/* ---- headers ---- */

/* The map's head is 0xb9 and a big-endian u16 count, rewritten by every
 * add: the count is not known until the last one, and a fixed-size head
 * keeps the entries where they are. CBOR allows the longer form. */
#define PC_HDR_HEAD 3
#define PC_MAX_HEADERS 256
#define PC_MAX_HEADERS_LEN (64 * 1024)

void pc_headers_init(pc_headers *h, void *buf, size_t cap) {
	h->buf = buf;
	h->cap = cap;
	h->len = PC_HDR_HEAD;
	h->count = 0;
	h->err = cap < PC_HDR_HEAD ? PC_TOO_LARGE : PC_OK;
}

/* text_head writes the head of a CBOR text string of n bytes to p (which
 * has room for 3) and returns its size; 0 when n is too long for headers. */
static size_t text_head(uint8_t *p, size_t n) {
	if (n < 24) {
		p[0] = (uint8_t)(0x60 | n);
		return 1;
	}
	if (n < 256) {
		p[0] = 0x78;
		p[1] = (uint8_t)n;
		return 2;
	}
	if (n < 65536) {
		p[0] = 0x79;
		p[1] = (uint8_t)(n >> 8);
		p[2] = (uint8_t)n;
		return 3;
	}
	return 0;
}

/* reserved_key reports a key that lower-cases to "pycomms-...". */
static int reserved_key(const char *key, size_t kl) {
	static const char prefix[] = "pycomms-";
	if (kl < sizeof prefix - 1)
		return 0;
	for (size_t i = 0; i < sizeof prefix - 1; i++) {
		char c = key[i];
		if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != prefix[i])
			return 0;
	}
	return 1;
}

int pc_headers_add(pc_headers *h, const char *key, const char *value) {
	if (h->err != PC_OK)
		return h->err;
	size_t kl = strlen(key), vl = strlen(value);
	if (kl == 0 || reserved_key(key, kl))
		return h->err = PC_INVALID;
	if (h->count >= PC_MAX_HEADERS || kl >= 65536 || vl >= 65536)
		return h->err = PC_TOO_LARGE;
	size_t need = 3 + kl + 3 + vl;
	if (h->len + need > h->cap || h->len + need > PC_MAX_HEADERS_LEN)
		return h->err = PC_TOO_LARGE;
	uint8_t *p = h->buf + h->len;
	p += text_head(p, kl);
	for (size_t i = 0; i < kl; i++) {
		char c = key[i];
		*p++ = (uint8_t)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	p += text_head(p, vl);
	memcpy(p, value, vl);
	p += vl;
	h->len = (size_t)(p - h->buf);
	h->count++;
	h->buf[0] = 0xb9;
	h->buf[1] = (uint8_t)(h->count >> 8);
	h->buf[2] = (uint8_t)h->count;
	return PC_OK;
}

/* hdr_span gives the encoded headers of h, or none; PC_OK or h's failure. */
static int hdr_span(const pc_headers *h, const void **p, int32_t *n) {
	*p = NULL;
	*n = 0;
	if (!h)
		return PC_OK;
	if (h->err != PC_OK)
		return h->err;
	if (h->count > 0) {
		*p = h->buf;
		*n = (int32_t)h->len;
	}
	return PC_OK;
}

int pc_publish_h(const char *topic, const void *data, size_t len, const pc_headers *h) {
	const void *hp;
	int32_t hn;
	int rc = hdr_span(h, &hp, &hn);
	if (rc != PC_OK)
		return rc;
	if (!PC_FITS_I32(len))
		return PC_TOO_LARGE;
	return status_of(pc_host_publish_h(topic, (int32_t)strlen(topic), data, (int32_t)len, hp, hn));
}

int pc_send_h(const char *subject, const void *data, size_t len, const pc_headers *h) {
	const void *hp;
	int32_t hn;
	int rc = hdr_span(h, &hp, &hn);
	if (rc != PC_OK)
		return rc;
	if (!PC_FITS_I32(len))
		return PC_TOO_LARGE;
	return status_of(pc_host_send_h(subject, (int32_t)strlen(subject), data, (int32_t)len, hp, hn));
}

int pc_call_h(const char *subject, const void *data, size_t len, const pc_headers *h,
              int timeout_ms, char **out, size_t *out_len) {
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	const void *hp;
	int32_t hn;
	int rc = hdr_span(h, &hp, &hn);
	if (rc != PC_OK)
		return rc;
	if (!PC_FITS_I32(len))
		return PC_TOO_LARGE;
	return call_out(pc_host_call_h(subject, (int32_t)strlen(subject), data, (int32_t)len, hp, hn,
	                               timeout_ms),
	                out, out_len);
}

int32_t pc_result_headers(void *buf, size_t cap) {
	return pc_host_result_headers(buf, cap_i32(cap));
}

int pc_reply_h(const void *data, size_t len, const pc_headers *h) {
	const void *hp;
	int32_t hn;
	int rc = hdr_span(h, &hp, &hn);
	if (rc != PC_OK)
		return rc;
	if (!PC_FITS_I32(len))
		return PC_TOO_LARGE;
	return status_of(pc_host_reply_h(data, (int32_t)len, hp, hn));
}

int32_t pc_header(const char *key, char *buf, size_t cap) {
	return get_string(pc_host_header, key, buf, cap);
}

int32_t pc_result_header(const char *key, char *buf, size_t cap) {
	return get_string(pc_host_result_header, key, buf, cap);
}

