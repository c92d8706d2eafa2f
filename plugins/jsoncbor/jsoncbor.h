/*
 * jsoncbor.h - the conversions of the json-cbor codec, with no ABI in them:
 * jsoncbor.c wires them to the codec SDK, and testdata/jc_driver.c runs
 * them natively for the tests. README.md states the mapping; the comments
 * here say how it is done.
 *
 * Both directions are loops over an explicit stack of at most JC_MAX_DEPTH
 * open arrays and maps, never recursion, so no input can overflow the C
 * stack. Every buffer grows with realloc; a failed realloc ends the
 * conversion with JC_TOO_LARGE instead of trapping.
 */
#ifndef JSONCBOR_H
#define JSONCBOR_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most arrays and maps (objects) open at once, in either direction;
 * CBOR tags count as levels too. */
#define JC_MAX_DEPTH 256
/* The longest bignum (tags 2 and 3) converted, in bytes of magnitude: up
 * to 10^154, and keeps the quadratic decimal conversion trivial. */
#define JC_MAX_BIGNUM 64

/* Results: the PC_* statuses they are reported as. */
#define JC_OK 0
#define JC_INVALID 2
#define JC_TOO_LARGE 3

typedef struct jc_buf {
    uint8_t *p;
    size_t n, cap;
} jc_buf;

/* A map key written to the output: where (off, len) and where it came from
 * in the input (in_off), for the duplicate check and its message. */
typedef struct jc_span {
    size_t off, len, in_off;
} jc_span;

/* An array or object written with a one-byte placeholder head at off;
 * count is its size once it closed (jc_json_heads). */
typedef struct jc_cont {
    size_t off;
    uint64_t count;
} jc_cont;

typedef struct jc_ctx {
    jc_buf out;      /* the converted data */
    jc_buf scratch;  /* one string being decoded */
    jc_span *spans;  /* keys of the open maps, innermost last */
    size_t nspans, spans_cap;
    jc_cont *conts; /* JSON -> CBOR: every array and object, in order of opening */
    size_t nconts, conts_cap;
    int oom;
    char err[256];
} jc_ctx;

static int jc_fail(jc_ctx *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jc_fail(jc_ctx *c, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return status;
}

static int jc_oom(jc_ctx *c) {
    return jc_fail(c, JC_TOO_LARGE, "out of memory: the converted data does not fit in the codec's memory (limits.memory)");
}

static int jc_reserve(jc_ctx *c, jc_buf *b, size_t more) {
    if (c->oom) return 0;
    if (more <= b->cap - b->n) return 1;
    if (more > SIZE_MAX / 2 - b->n) {
        c->oom = 1;
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < more) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        c->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

static void jc_put(jc_ctx *c, jc_buf *b, const void *p, size_t n) {
    if (n && jc_reserve(c, b, n)) {
        memcpy(b->p + b->n, p, n);
        b->n += n;
    }
}

static void jc_putc(jc_ctx *c, jc_buf *b, uint8_t ch) {
    if (jc_reserve(c, b, 1)) b->p[b->n++] = ch;
}

/* Drops big buffers between conversions, so that one large message does
 * not keep its memory in the instance. */
static void jc_trim(jc_ctx *c) {
    const size_t keep = 1 << 20;
    if (c->out.cap > keep) { free(c->out.p); c->out = (jc_buf){0}; }
    if (c->scratch.cap > keep) { free(c->scratch.p); c->scratch = (jc_buf){0}; }
    if (c->spans_cap > keep / sizeof(jc_span)) { free(c->spans); c->spans = NULL; c->spans_cap = 0; }
    if (c->conts_cap > keep / sizeof(jc_cont)) { free(c->conts); c->conts = NULL; c->conts_cap = 0; }
    c->out.n = c->scratch.n = c->nspans = c->nconts = 0;
    c->oom = 0;
}

static int jc_push_span(jc_ctx *c, size_t off, size_t len, size_t in_off) {
    if (c->nspans == c->spans_cap) {
        size_t cap = c->spans_cap ? c->spans_cap * 2 : 64;
        jc_span *s = realloc(c->spans, cap * sizeof *s);
        if (!s) return 0;
        c->spans = s;
        c->spans_cap = cap;
    }
    c->spans[c->nspans++] = (jc_span){off, len, in_off};
    return 1;
}

/* qsort has no context argument; instances are single-threaded. */
static const uint8_t *jc_sort_base;

static int jc_span_cmp(const void *a, const void *b) {
    const jc_span *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(jc_sort_base + x->off, jc_sort_base + y->off, n);
    if (r) return r;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->in_off < y->in_off ? -1 : x->in_off > y->in_off;
}

/* Checks the keys of the map that just closed (spans from first on) for
 * duplicates, sorting them: n log n, where comparing each pair would let a
 * map of many keys cost n^2. Then forgets them. */
static int jc_check_keys(jc_ctx *c, size_t first, const char *what, size_t map_off) {
    size_t n = c->nspans - first;
    if (n > 1) {
        jc_span *s = c->spans + first;
        jc_sort_base = c->out.p;
        qsort(s, n, sizeof *s, jc_span_cmp);
        for (size_t i = 1; i < n; i++)
            if (s[i].len == s[i - 1].len && memcmp(c->out.p + s[i].off, c->out.p + s[i - 1].off, s[i].len) == 0)
                return jc_fail(c, JC_INVALID, "duplicate %s at byte %zu (first at byte %zu) in the map at byte %zu",
                               what, s[i].in_off, s[i - 1].in_off, map_off);
    }
    c->nspans = first;
    return JC_OK;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. Refuses
 * overlong forms, surrogates and code points past U+10FFFF. */
static size_t jc_utf8(const uint8_t *p, size_t n) {
    uint8_t b = p[0];
    if (b < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (b >= 0xc2 && b <= 0xdf) len = 2, cp = b & 0x1f, min = 0x80;
    else if (b >= 0xe0 && b <= 0xef) len = 3, cp = b & 0x0f, min = 0x800;
    else if (b >= 0xf0 && b <= 0xf4) len = 4, cp = b & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* Offset of the first byte of p[0:n] that starts no valid UTF-8
 * sequence, or n. */
static size_t jc_utf8_bad(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { i++; continue; }
        size_t k = jc_utf8(p + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* ======================= JSON -> CBOR ======================= */

/* A CBOR head with its argument in the shortest form (preferred
 * serialization, RFC 8949 section 4.1). */
/* Writes a CBOR head at h (room for 9 bytes) and returns its length: the
 * argument in the shortest form (preferred serialization, RFC 8949
 * section 4.1). */
static size_t jc_head_at(uint8_t *h, int major, uint64_t v) {
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        h[0] = m | (uint8_t)v;
        return 1;
    }
    if (v <= 0xff) {
        h[0] = m | 24, h[1] = (uint8_t)v;
        return 2;
    }
    if (v <= 0xffff) {
        h[0] = m | 25, h[1] = (uint8_t)(v >> 8), h[2] = (uint8_t)v;
        return 3;
    }
    if (v <= 0xffffffff) {
        h[0] = m | 26;
        for (int i = 0; i < 4; i++) h[1 + i] = (uint8_t)(v >> (24 - 8 * i));
        return 5;
    }
    h[0] = m | 27;
    for (int i = 0; i < 8; i++) h[1 + i] = (uint8_t)(v >> (56 - 8 * i));
    return 9;
}

/* Written in place, not through jc_put: a memcpy call per head costs a
 * quarter of the conversion of a list of numbers. */
static void jc_cbor_head(jc_ctx *c, int major, uint64_t v) {
    if (jc_reserve(c, &c->out, 9)) c->out.n += jc_head_at(c->out.p + c->out.n, major, v);
}

static size_t jc_ws(const uint8_t *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

static int jc_hex4(const uint8_t *s, size_t n, size_t i, uint32_t *v) {
    if (n - i < 4) return 0;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t ch = s[i + k];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

static void jc_put_utf8(jc_ctx *c, jc_buf *b, uint32_t cp) {
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) u[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000) u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    else u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f)), u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    jc_put(c, b, u, n);
}

/* Decodes the JSON string at s[*pi] (a '"') into c->scratch and moves *pi
 * past it. */
static int jc_json_string(jc_ctx *c, const uint8_t *s, size_t n, size_t *pi) {
    size_t at = *pi, i = at + 1;
    c->scratch.n = 0;
    for (;;) {
        size_t run = i;
        while (i < n && s[i] != '"' && s[i] != '\\' && s[i] >= 0x20 && s[i] < 0x80) i++;
        jc_put(c, &c->scratch, s + run, i - run);
        if (i >= n) return jc_fail(c, JC_INVALID, "unterminated string at byte %zu", at);
        uint8_t ch = s[i];
        if (ch == '"') break;
        if (ch < 0x20) return jc_fail(c, JC_INVALID, "control character 0x%02x in the string at byte %zu (escape it)", ch, i);
        if (ch >= 0x80) {
            size_t k = jc_utf8(s + i, n - i);
            if (!k) return jc_fail(c, JC_INVALID, "invalid UTF-8 at byte %zu", i);
            jc_put(c, &c->scratch, s + i, k);
            i += k;
            continue;
        }
        /* a backslash */
        if (i + 1 >= n) return jc_fail(c, JC_INVALID, "unterminated string at byte %zu", at);
        uint8_t e = s[i + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            jc_putc(c, &c->scratch, (uint8_t)to[simple - "\"\\/bfnrt"]);
            i += 2;
            continue;
        }
        if (e != 'u') return jc_fail(c, JC_INVALID, "invalid escape \\%c at byte %zu", e >= 0x20 && e < 0x7f ? e : '?', i);
        uint32_t cp, lo;
        if (!jc_hex4(s, n, i + 2, &cp)) return jc_fail(c, JC_INVALID, "invalid \\u escape at byte %zu", i);
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return jc_fail(c, JC_INVALID, "lone low surrogate \\u%04x at byte %zu: not a Unicode character, so no CBOR text", cp, i);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (!(i + 7 < n && s[i + 6] == '\\' && s[i + 7] == 'u' && jc_hex4(s, n, i + 8, &lo) && lo >= 0xdc00 && lo <= 0xdfff))
                return jc_fail(c, JC_INVALID, "lone high surrogate \\u%04x at byte %zu: not a Unicode character, so no CBOR text", cp, i);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
        }
        jc_put_utf8(c, &c->scratch, cp);
        i += 6;
    }
    *pi = i + 1;
    return c->oom ? jc_oom(c) : JC_OK;
}

/* The JSON number at s[*pi]: an integer literal in the int64/uint64 range
 * becomes a CBOR integer, any other number a float64. */
static int jc_json_number(jc_ctx *c, const uint8_t *s, size_t n, size_t *pi) {
    size_t at = *pi, i = at;
    int neg = 0, integer = 1;
    if (s[i] == '-') neg = 1, i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return jc_fail(c, JC_INVALID, "invalid number at byte %zu", at);
    size_t digits = i;
    if (s[i] == '0') i++;
    else while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    size_t int_end = i;
    if (i < n && s[i] == '.') {
        integer = 0;
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return jc_fail(c, JC_INVALID, "invalid number at byte %zu: no digit after '.'", at);
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        integer = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return jc_fail(c, JC_INVALID, "invalid number at byte %zu: no digit in the exponent", at);
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    *pi = i;
    if (integer) {
        uint64_t v = 0;
        int fits = 1;
        for (size_t k = digits; k < int_end; k++) {
            unsigned d = s[k] - '0';
            if (v > (UINT64_MAX - d) / 10) { fits = 0; break; }
            v = v * 10 + d;
        }
        if (fits && neg && v > (uint64_t)1 << 63) fits = 0;
        if (fits) {
            if (neg && v > 0) jc_cbor_head(c, 1, v - 1);
            else jc_cbor_head(c, 0, v);
            return JC_OK;
        }
    }
    c->scratch.n = 0;
    jc_put(c, &c->scratch, s + at, i - at);
    jc_putc(c, &c->scratch, 0);
    if (c->oom) return jc_oom(c);
    double d = strtod((const char *)c->scratch.p, NULL);
    if (isinf(d)) return jc_fail(c, JC_INVALID, "number at byte %zu is out of the float64 range", at);
    uint64_t bits;
    memcpy(&bits, &d, 8);
    uint8_t f[9] = {0xfb};
    for (int k = 0; k < 8; k++) f[1 + k] = (uint8_t)(bits >> (56 - 8 * k));
    jc_put(c, &c->out, f, 9);
    return JC_OK;
}

typedef struct jc_jframe {
    int obj;
    uint64_t count;
    size_t ord, span0, in_off;
} jc_jframe;

/* Reads the JSON text once and writes the CBOR, each array and object
 * with a one-byte placeholder head recorded in c->conts (its size is not
 * known before it closes); jc_json_heads then writes the real heads.
 * Member names are checked for duplicates as each object closes. */
static int jc_json_pass(jc_ctx *c, const uint8_t *s, size_t n) {
    jc_jframe st[JC_MAX_DEPTH];
    int d = 0, rc;
    size_t i = 0, ord = 0;
    c->nspans = 0;
value:
    i = jc_ws(s, n, i);
    if (i >= n) return jc_fail(c, JC_INVALID, "unexpected end of JSON at byte %zu: want a value", i);
    switch (s[i]) {
    case '{':
    case '[':
        if (d == JC_MAX_DEPTH) return jc_fail(c, JC_INVALID, "nesting deeper than %d at byte %zu", JC_MAX_DEPTH, i);
        st[d] = (jc_jframe){s[i] == '{', 0, ord, c->nspans, i};
        if (c->nconts == c->conts_cap) {
            size_t cap = c->conts_cap ? c->conts_cap * 2 : 64;
            jc_cont *p = realloc(c->conts, cap * sizeof *p);
            if (!p) return jc_oom(c);
            c->conts = p;
            c->conts_cap = cap;
        }
        c->conts[c->nconts++] = (jc_cont){c->out.n, 0};
        jc_putc(c, &c->out, st[d].obj ? 0xa0 : 0x80);
        ord++;
        d++;
        i = jc_ws(s, n, i + 1);
        if (i < n && s[i] == (st[d - 1].obj ? '}' : ']')) {
            i++;
            d--;
            goto closed;
        }
        if (st[d - 1].obj) goto key;
        goto value;
    case '"':
        if ((rc = jc_json_string(c, s, n, &i))) return rc;
        jc_cbor_head(c, 3, c->scratch.n);
        jc_put(c, &c->out, c->scratch.p, c->scratch.n);
        break;
    case 't':
    case 'f':
    case 'n': {
        static const char *const lit[] = {"true", "false", "null"};
        static const uint8_t enc[] = {0xf5, 0xf4, 0xf6};
        int k = s[i] == 't' ? 0 : s[i] == 'f' ? 1 : 2;
        size_t l = strlen(lit[k]);
        if (n - i < l || memcmp(s + i, lit[k], l) != 0) return jc_fail(c, JC_INVALID, "invalid literal at byte %zu", i);
        jc_putc(c, &c->out, enc[k]);
        i += l;
        break;
    }
    default:
        if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
            if ((rc = jc_json_number(c, s, n, &i))) return rc;
            break;
        }
        return jc_fail(c, JC_INVALID, "unexpected byte 0x%02x at byte %zu: want a value", s[i], i);
    }
after:
    if (c->oom) return jc_oom(c);
    if (d == 0) {
        i = jc_ws(s, n, i);
        if (i != n) return jc_fail(c, JC_INVALID, "data after the JSON value at byte %zu", i);
        return JC_OK;
    }
    st[d - 1].count++;
    i = jc_ws(s, n, i);
    if (i >= n) return jc_fail(c, JC_INVALID, "unexpected end of JSON at byte %zu: the %s at byte %zu is not closed", i, st[d - 1].obj ? "object" : "array", st[d - 1].in_off);
    if (s[i] == ',') {
        i++;
        if (st[d - 1].obj) goto key;
        goto value;
    }
    if (s[i] == (st[d - 1].obj ? '}' : ']')) {
        i++;
        d--;
        goto closed;
    }
    return jc_fail(c, JC_INVALID, "unexpected byte 0x%02x at byte %zu: want ',' or '%c'", s[i], i, st[d - 1].obj ? '}' : ']');
closed:
    c->conts[st[d].ord].count = st[d].count;
    if (st[d].obj && (rc = jc_check_keys(c, st[d].span0, "member name", st[d].in_off))) return rc;
    goto after;
key:
    i = jc_ws(s, n, i);
    if (i >= n || s[i] != '"') return jc_fail(c, JC_INVALID, "%s at byte %zu: want a member name (a string)", i >= n ? "unexpected end of JSON" : "unexpected byte", i);
    {
        size_t at = i;
        if ((rc = jc_json_string(c, s, n, &i))) return rc;
        size_t off = c->out.n;
        jc_cbor_head(c, 3, c->scratch.n);
        jc_put(c, &c->out, c->scratch.p, c->scratch.n);
        if (c->oom) return jc_oom(c);
        if (!jc_push_span(c, off, c->out.n - off, at)) return jc_oom(c);
    }
    i = jc_ws(s, n, i);
    if (i >= n || s[i] != ':') return jc_fail(c, JC_INVALID, "want ':' after the member name at byte %zu", i);
    i++;
    goto value;
}

static size_t jc_head_len(uint64_t v) { return v < 24 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffff ? 5 : 9; }

/* Replaces the one-byte placeholder head of every array and object with
 * its definite-length head (preferred serialization, RFC 8949 section
 * 4.1), moving the bytes between them up from the end: each byte moves
 * once, so this is linear, where reading the JSON twice (once to count)
 * cost about as much again as the conversion. */
static int jc_json_heads(jc_ctx *c) {
    size_t extra = 0;
    for (size_t k = 0; k < c->nconts; k++) extra += jc_head_len(c->conts[k].count) - 1;
    if (extra && !jc_reserve(c, &c->out, extra)) return jc_oom(c);
    uint8_t *p = c->out.p;
    size_t src = c->out.n, dst = c->out.n + extra;
    for (size_t k = c->nconts; k-- > 0;) {
        size_t seg = c->conts[k].off + 1, len = src - seg;
        dst -= len;
        if (dst != seg) memmove(p + dst, p + seg, len);
        uint8_t h[9];
        size_t hl = jc_head_at(h, p[c->conts[k].off] >> 5, c->conts[k].count);
        dst -= hl;
        memcpy(p + dst, h, hl);
        src = c->conts[k].off;
    }
    c->out.n += extra;
    return JC_OK;
}

/* Converts JSON text (s, n) to one CBOR data item in c->out. */
static int jc_json_to_cbor(jc_ctx *c, const uint8_t *s, size_t n) {
    int rc;
    c->out.n = 0;
    c->nconts = 0;
    c->oom = 0;
    if ((rc = jc_json_pass(c, s, n))) return rc;
    return jc_json_heads(c);
}

/* ======================= CBOR -> JSON ======================= */

static void jc_puts(jc_ctx *c, const char *s) { jc_put(c, &c->out, s, strlen(s)); }

/* Writes v in decimal, after "-" when neg, quoted when quote: printf's
 * machinery costs several times more per number in Wasm. */
static void jc_put_dec(jc_ctx *c, uint64_t v, int neg, int quote) {
    char b[24];
    size_t k = sizeof b;
    if (quote) b[--k] = '"';
    do b[--k] = (char)('0' + v % 10); while ((v /= 10) != 0);
    if (neg) b[--k] = '-';
    if (quote) b[--k] = '"';
    if (!jc_reserve(c, &c->out, sizeof b)) return;
    for (size_t i = k; i < sizeof b; i++) c->out.p[c->out.n++] = (uint8_t)b[i];
}

/* Writes text (valid UTF-8) as a JSON string. */
static void jc_json_quote(jc_ctx *c, const uint8_t *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    jc_putc(c, &c->out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = p[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        jc_put(c, &c->out, p + run, i - run);
        run = i + 1;
        char e[7] = {'\\', 0};
        switch (ch) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[ch >> 4], e[5] = hex[ch & 15];
        }
        jc_puts(c, e);
    }
    jc_put(c, &c->out, p + run, n - run);
    jc_putc(c, &c->out, '"');
}

/* Byte strings: base64url without padding (RFC 8949 section 6.1), or as a
 * tag 22 (base64) or 23 (base16) directly around them asks. */
static void jc_json_bytes(jc_ctx *c, const uint8_t *p, size_t n, int hint) {
    static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char hex[] = "0123456789abcdef";
    jc_putc(c, &c->out, '"');
    if (hint == 23) {
        if (jc_reserve(c, &c->out, 2 * n))
            for (size_t i = 0; i < n; i++) c->out.p[c->out.n++] = (uint8_t)hex[p[i] >> 4], c->out.p[c->out.n++] = (uint8_t)hex[p[i] & 15];
    } else if (jc_reserve(c, &c->out, (n + 2) / 3 * 4)) {
        const char *a = hint == 22 ? std : url;
        uint8_t *o = c->out.p + c->out.n;
        size_t i = 0;
        for (; i + 2 < n; i += 3) {
            uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
            *o++ = (uint8_t)a[v >> 18], *o++ = (uint8_t)a[v >> 12 & 63], *o++ = (uint8_t)a[v >> 6 & 63], *o++ = (uint8_t)a[v & 63];
        }
        if (n - i == 1) {
            uint32_t v = (uint32_t)p[i] << 16;
            *o++ = (uint8_t)a[v >> 18], *o++ = (uint8_t)a[v >> 12 & 63];
            if (hint == 22) *o++ = '=', *o++ = '=';
        } else if (n - i == 2) {
            uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
            *o++ = (uint8_t)a[v >> 18], *o++ = (uint8_t)a[v >> 12 & 63], *o++ = (uint8_t)a[v >> 6 & 63];
            if (hint == 22) *o++ = '=';
        }
        c->out.n = (size_t)(o - c->out.p);
    }
    jc_putc(c, &c->out, '"');
}

/* A finite double as the shortest decimal that reads back as the same
 * double, written without an exponent when that is short (1e-6 <= |d| <
 * 1e21, as JavaScript and Go write numbers); NaN and infinities become
 * null (RFC 8949 section 6.1). */
static void jc_json_double(jc_ctx *c, double d) {
    if (isnan(d) || isinf(d)) {
        jc_puts(c, "null");
        return;
    }
    char b[48];
    /* More digits of a correctly rounded decimal never stop it reading
     * back, so the shortest precision that does is found by bisection:
     * 4-5 format-and-parse rounds instead of up to 17. */
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(b, sizeof b, "%.*e", mid - 1, d);
        if (strtod(b, NULL) == d) hi = mid;
        else lo = mid + 1;
    }
    int prec = lo;
    snprintf(b, sizeof b, "%.*e", prec - 1, d);
    int e = atoi(strchr(b, 'e') + 1);
    if (e >= -6 && e < 21) {
        int decimals = prec - 1 - e;
        snprintf(b, sizeof b, "%.*f", decimals > 0 ? decimals : 0, d);
    } else {
        /* "1.5e+300": drop a "+" and leading exponent zeros ("1e-07" -> "1e-7") */
        char *x = strchr(b, 'e') + 1, *y = x;
        if (*y == '+') y++;
        else if (*y == '-') x++, y++;
        while (*y == '0' && y[1]) y++;
        memmove(x, y, strlen(y) + 1);
    }
    jc_puts(c, b);
}

static double jc_half(uint16_t h) {
    int e = h >> 10 & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e != 31 ? ldexp(m + 1024, e - 25) : m ? NAN : INFINITY;
    return h & 0x8000 ? -v : v;
}

/* A bignum's magnitude (big-endian, n <= JC_MAX_BIGNUM bytes) in decimal;
 * neg: tag 3, whose value is -1 - magnitude. */
static void jc_json_bignum(jc_ctx *c, const uint8_t *p, size_t n, int neg, int quoted) {
    uint8_t m[JC_MAX_BIGNUM + 1];
    size_t len = n + 1;
    m[0] = 0;
    memcpy(m + 1, p, n);
    if (neg)
        for (size_t i = len; i-- > 0;)
            if (++m[i] != 0) break;
    /* repeated division by 10^9: at most ~18 chunks of 9 digits */
    uint32_t chunks[24];
    int nch = 0;
    size_t start = 0;
    for (;;) {
        while (start < len && m[start] == 0) start++;
        if (start == len) break;
        uint64_t rem = 0;
        for (size_t i = start; i < len; i++) {
            uint64_t cur = rem << 8 | m[i];
            m[i] = (uint8_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        chunks[nch++] = (uint32_t)rem;
    }
    char b[24 * 9 + 4];
    size_t k = 0;
    if (quoted) b[k++] = '"';
    if (neg) b[k++] = '-';
    if (nch == 0) b[k++] = '0';
    for (int i = nch - 1; i >= 0; i--)
        k += (size_t)snprintf(b + k, sizeof b - k, i == nch - 1 ? "%u" : "%09u", chunks[i]);
    if (quoted) b[k++] = '"';
    jc_put(c, &c->out, b, k);
}

typedef struct jc_cframe {
    int map, indef, want_key;
    int levels; /* nesting levels this container takes: 1 + the tags around it */
    uint64_t left, idx;
    size_t span0, in_off;
} jc_cframe;

static const char *const jc_major_name[] = {"unsigned integer", "negative integer", "byte string", "text string",
                                            "array", "map", "tag", "simple value or float"};

/* Reads the string (major 2 or 3) whose head ended at *pi with argument v
 * (indef: chunks follow). A definite one is returned in place; chunks are
 * joined in c->scratch. Text is checked to be UTF-8. */
static int jc_cbor_string(jc_ctx *c, const uint8_t *s, size_t n, size_t *pi, int major, uint64_t v, int indef,
                          size_t at, const uint8_t **out, size_t *outn) {
    size_t i = *pi;
    if (!indef) {
        if (v > n - i) return jc_fail(c, JC_INVALID, "%s at byte %zu runs past the end of the data", jc_major_name[major], at);
        if (major == 3 && jc_utf8_bad(s + i, (size_t)v) != v)
            return jc_fail(c, JC_INVALID, "invalid UTF-8 at byte %zu in the text string at byte %zu", i + jc_utf8_bad(s + i, (size_t)v), at);
        *out = s + i;
        *outn = (size_t)v;
        *pi = i + (size_t)v;
        return JC_OK;
    }
    c->scratch.n = 0;
    for (;;) {
        if (i >= n) return jc_fail(c, JC_INVALID, "indefinite-length %s at byte %zu is not ended", jc_major_name[major], at);
        if (s[i] == 0xff) break;
        size_t ch = i;
        int ai = s[i] & 31;
        if (s[i] >> 5 != major || ai > 27)
            return jc_fail(c, JC_INVALID, "chunk at byte %zu of the indefinite-length %s at byte %zu is not a definite-length %s", ch, jc_major_name[major], at, jc_major_name[major]);
        i++;
        uint64_t len = ai;
        if (ai >= 24) {
            size_t k = (size_t)1 << (ai - 24);
            if (k > n - i) return jc_fail(c, JC_INVALID, "head at byte %zu runs past the end of the data", ch);
            len = 0;
            for (size_t j = 0; j < k; j++) len = len << 8 | s[i + j];
            i += k;
        }
        if (len > n - i) return jc_fail(c, JC_INVALID, "chunk at byte %zu runs past the end of the data", ch);
        if (major == 3 && jc_utf8_bad(s + i, (size_t)len) != len)
            return jc_fail(c, JC_INVALID, "invalid UTF-8 at byte %zu in the chunk at byte %zu", i + jc_utf8_bad(s + i, (size_t)len), ch);
        jc_put(c, &c->scratch, s + i, (size_t)len);
        if (c->oom) return jc_oom(c);
        i += (size_t)len;
    }
    *pi = i + 1;
    *out = c->scratch.p;
    *outn = c->scratch.n;
    return JC_OK;
}

/* Converts one CBOR data item (s, n), and nothing after it, to JSON text in
 * c->out. */
static int jc_cbor_to_json(jc_ctx *c, const uint8_t *s, size_t n) {
    jc_cframe st[JC_MAX_DEPTH];
    /* Nesting counts tags as levels too, as fxamacker/cbor and other
     * readers do: lvl is the levels of the open containers, tags those of
     * the tags before the current item. */
    int d = 0, rc, hint = 0, big = 0, lvl = 0, tags = 0;
    size_t i = 0, big_at = 0;
    c->out.n = 0;
    c->nspans = 0;
    c->oom = 0;
item:
    if (c->oom) return jc_oom(c);
    {
        if (i >= n) return jc_fail(c, JC_INVALID, "unexpected end of CBOR data at byte %zu: want a data item", i);
        size_t at = i;
        uint8_t ib = s[i++];
        int major = ib >> 5, ai = ib & 31, indef = 0;
        uint64_t v = (uint64_t)ai;
        int key = d > 0 && st[d - 1].map && st[d - 1].want_key;
        if (ai >= 24 && ai <= 27) {
            size_t k = (size_t)1 << (ai - 24);
            if (k > n - i) return jc_fail(c, JC_INVALID, "head at byte %zu runs past the end of the data", at);
            v = 0;
            for (size_t j = 0; j < k; j++) v = v << 8 | s[i + j];
            i += k;
        } else if (ai >= 28 && ai <= 30) {
            return jc_fail(c, JC_INVALID, "reserved additional information %d at byte %zu: not well-formed CBOR", ai, at);
        } else if (ai == 31) {
            if (major == 7) return jc_fail(c, JC_INVALID, "unexpected break code at byte %zu: want a data item", at);
            if (major < 2 || major == 6) return jc_fail(c, JC_INVALID, "indefinite length on a %s at byte %zu: not well-formed CBOR", jc_major_name[major], at);
            indef = 1;
        }
        if (big && major != 2)
            return jc_fail(c, JC_INVALID, "tag %d at byte %zu wraps a %s; a bignum wraps a byte string", big, big_at, jc_major_name[major]);
        if (key && major != 0 && major != 1 && major != 3 && major != 6 && !(major == 2 && big))
            return jc_fail(c, JC_INVALID, "map key at byte %zu is a %s; JSON member names are text (integer keys become their decimal text)",
                           at, major == 7 ? (ai >= 25 && ai <= 27 ? "float" : ai == 20 || ai == 21 ? "bool" : "simple value") : jc_major_name[major]);
        size_t off = c->out.n;
        switch (major) {
        case 0:
            jc_put_dec(c, v, 0, key);
            break;
        case 1:
            if (v == UINT64_MAX) jc_puts(c, key ? "\"-18446744073709551616\"" : "-18446744073709551616");
            else jc_put_dec(c, v + 1, 1, key);
            break;
        case 2:
        case 3: {
            const uint8_t *p;
            size_t len;
            if ((rc = jc_cbor_string(c, s, n, &i, major, v, indef, at, &p, &len))) return rc;
            if (big) {
                size_t z = 0;
                while (z < len && p[z] == 0) z++;
                if (len - z > JC_MAX_BIGNUM)
                    return jc_fail(c, JC_INVALID, "bignum (tag %d) at byte %zu has %zu bytes, more than the %d converted", big, big_at, len - z, JC_MAX_BIGNUM);
                jc_json_bignum(c, p + z, len - z, big == 3, key);
            } else if (major == 2) {
                jc_json_bytes(c, p, len, hint);
            } else {
                jc_json_quote(c, p, len);
            }
            break;
        }
        case 4:
        case 5:
            if (lvl + tags + 1 > JC_MAX_DEPTH) return jc_fail(c, JC_INVALID, "nesting deeper than %d at byte %zu", JC_MAX_DEPTH, at);
            st[d++] = (jc_cframe){major == 5, indef, 1, tags + 1, v, 0, c->nspans, at};
            lvl += tags + 1;
            tags = 0;
            jc_putc(c, &c->out, major == 5 ? '{' : '[');
            hint = 0;
            goto next;
        case 6:
            if (lvl + ++tags > JC_MAX_DEPTH) return jc_fail(c, JC_INVALID, "nesting deeper than %d at byte %zu (tags count as levels)", JC_MAX_DEPTH, at);
            if (v == 2 || v == 3) big = (int)v, big_at = at;
            else if (v >= 21 && v <= 23) hint = (int)v;
            goto item;
        case 7:
            switch (ai) {
            case 20: jc_puts(c, "false"); break;
            case 21: jc_puts(c, "true"); break;
            case 22:
            case 23: jc_puts(c, "null"); break;
            case 24:
                if (v < 32) return jc_fail(c, JC_INVALID, "simple value %llu at byte %zu in two bytes: not well-formed CBOR", (unsigned long long)v, at);
                return jc_fail(c, JC_INVALID, "simple value %llu at byte %zu has no JSON form", (unsigned long long)v, at);
            case 25: jc_json_double(c, jc_half((uint16_t)v)); break;
            case 26: {
                uint32_t b32 = (uint32_t)v;
                float f;
                memcpy(&f, &b32, 4);
                jc_json_double(c, (double)f);
                break;
            }
            case 27: {
                double f;
                memcpy(&f, &v, 8);
                jc_json_double(c, f);
                break;
            }
            default: return jc_fail(c, JC_INVALID, "simple value %d at byte %zu has no JSON form", ai, at);
            }
            break;
        }
        big = 0;
        hint = 0;
        tags = 0;
        if (key) {
            if (c->oom) return jc_oom(c);
            if (!jc_push_span(c, off, c->out.n - off, at)) return jc_oom(c);
        }
    }
    /* one item done */
    if (d == 0) {
        if (i != n) return jc_fail(c, JC_INVALID, "data after the CBOR data item at byte %zu", i);
        return c->oom ? jc_oom(c) : JC_OK;
    }
    if (st[d - 1].map && st[d - 1].want_key) {
        jc_putc(c, &c->out, ':');
        st[d - 1].want_key = 0;
        goto item;
    }
    st[d - 1].idx++;
    st[d - 1].want_key = 1;
next:
    {
        jc_cframe *f = &st[d - 1];
        int end;
        if (f->indef) {
            if (i >= n) return jc_fail(c, JC_INVALID, "indefinite-length %s at byte %zu is not ended", f->map ? "map" : "array", f->in_off);
            end = s[i] == 0xff;
            if (end) i++;
        } else {
            end = f->left == 0;
            if (!end) f->left--;
        }
        if (!end) {
            if (f->idx > 0) jc_putc(c, &c->out, ',');
            goto item;
        }
        jc_putc(c, &c->out, f->map ? '}' : ']');
        if (f->map && (rc = jc_check_keys(c, f->span0, "member name after conversion", f->in_off))) return rc;
        lvl -= f->levels;
        d--;
    }
    /* the container is the item just done */
    if (d == 0) {
        if (i != n) return jc_fail(c, JC_INVALID, "data after the CBOR data item at byte %zu", i);
        return c->oom ? jc_oom(c) : JC_OK;
    }
    /* (never a key: arrays and maps are refused as keys when they open) */
    st[d - 1].idx++;
    st[d - 1].want_key = 1;
    goto next;
}

#endif
