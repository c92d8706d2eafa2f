/*
 * mqtt.c - an MQTT 3.1.1 client as a pycomms transport plugin (abi/SPEC.md
 * section 13), written with the C SDK (sdk/c/pycomms_transport.h).
 *
 * The host dials the broker (the plugin's `dial` entries) and hands the
 * bytes here; this file only turns them into packets and back:
 *
 *   - on each connection: CONNECT (client_id, username, password, keepalive
 *     from the plugin config), then SUBSCRIBE to the filters of `subscribe`;
 *   - a PUBLISH from the broker is delivered into the host as an event on
 *     the mapped subject (topic.h); at QoS 1 its PUBACK is written only
 *     when deliver accepted it;
 *   - an event or send the host routes out (the plugin's `topics` and
 *     `services`) is published on the mapped topic at the configured QoS;
 *   - at QoS 1 each PUBLISH written is kept until the broker's PUBACK; a
 *     connection to the same dial entry that comes up after a drop writes
 *     the ones not acknowledged again (DUP set, same packet identifier,
 *     MQTT 3.1.1 section 4.4), so a drop loses none (at most MAX_UNACKED
 *     and UNACKED_BYTES kept: beyond, a publish is refused with busy);
 *   - every keepalive period a timer writes PINGREQ; a broker that sent
 *     nothing since the last one is dead: the connection is closed, and the
 *     host dials it again with backoff (SPEC 13.2).
 *
 * Refusals (a topic or subject that cannot map, a malformed packet, a
 * broker that refused the CONNECT) are logged with what and why, and
 * counted: the host counts a malformed stream (data result < 0) as an
 * error and closes that connection; topics that cannot map are counted
 * here, and each refusal's log line carries the running count.
 */
#include "pycomms_transport.h"
#include "topic.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNS 16
#define CFG_CAP 4096
#define MAX_FILTERS 64

/* MQTT control packet types (3.1.1, section 2.2.1). */
enum { CONNECT = 1, CONNACK = 2, PUBLISH = 3, PUBACK = 4, SUBSCRIBE = 8, SUBACK = 9, PINGREQ = 12, PINGRESP = 13 };

/* Headers of every delivered message: {"pycomms-origin": "mqtt"}. The
 * message came in through a medium that has it already (the broker), so
 * the host must not route it out through a transport again (SPEC 13.5):
 * with a topic both subscribed and carried out, it would otherwise go back
 * to the broker and come round for ever. */
static const uint8_t origin_hdr[] = {0xa1, 0x6e, 'p', 'y', 'c', 'o', 'm', 'm', 's', '-', 'o', 'r', 'i', 'g',
                                     'i',  'n',  0x64, 'm', 'q', 't', 't'};

typedef struct {
    uint32_t id;    /* 0: a free entry */
    int32_t index;  /* its dial entry */
    int connected;  /* CONNACK accepted */
    int waiting;    /* a CONNACK or PINGRESP is due: set when CONNECT or PINGREQ is written,
                       cleared by any packet from the broker */
} mconn;

static mconn conns[MAX_CONNS];

/* QoS 1 PUBLISH packets written and not yet acknowledged, by dial entry
 * (a broker): written again on that entry's next connection. */
#define MAX_UNACKED 256
#define UNACKED_BYTES (1u << 20)

typedef struct {
    uint8_t *pkt; /* the whole packet, fixed header included; 0: a free entry */
    uint32_t len;
    uint32_t conn; /* the connection it was last written on */
    int32_t index;
    uint16_t pid;
} unacked;

static unacked outq[MAX_UNACKED];
static uint32_t outq_n, outq_bytes;
static uint64_t outq_refused;

/* Packet identifiers come from one counter for every connection (MQTT
 * scopes them per session, so that is allowed) and skip those still
 * waiting for a PUBACK: one resent after a reconnect keeps its own. */
static uint16_t last_pid;

static struct {
    int loaded;
    char client_id[256], username[256], password[256];
    int has_user, has_pass;
    int keepalive; /* seconds */
    int qos;       /* 0 or 1, for publishes and subscriptions */
    int clean;     /* clean session */
    char filters[MAX_FILTERS][MQTT_MAX_NAME + 1];
    int nfilters;
} cfg;

/* refused counts the topics and subjects that could not map, per instance. */
static uint64_t refused;

static void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(int level, const char *fmt, ...) {
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    pc_host_log(level, buf, n);
}

/* cfg_str reads config key into buf; 1 when set, 0 when absent or too long
 * (too long is logged). */
static int cfg_str(const char *key, char *buf, size_t cap) {
    int32_t n = pc_host_config_get(key, (int32_t)strlen(key), buf, (int32_t)cap - 1);
    if (n < 0) return 0;
    if ((size_t)n >= cap) {
        logf_(PC_LOG_ERROR, "mqtt: config %s is %d bytes, more than the %d this plugin takes: ignored", key, (int)n,
              (int)cap - 1);
        return 0;
    }
    buf[n] = 0;
    return 1;
}

static int cfg_int(const char *key, int def, int lo, int hi) {
    char b[32];
    if (!cfg_str(key, b, sizeof b)) return def;
    char *end;
    long v = strtol(b, &end, 10);
    if (*b == 0 || *end != 0 || v < lo || v > hi) {
        logf_(PC_LOG_ERROR, "mqtt: config %s = %s is not a whole number in [%d, %d]: using %d", key, b, lo, hi, def);
        return def;
    }
    return (int)v;
}

static void load_config(void) {
    if (cfg.loaded) return;
    cfg.loaded = 1;
    cfg_str("client_id", cfg.client_id, sizeof cfg.client_id);
    cfg.has_user = cfg_str("username", cfg.username, sizeof cfg.username);
    cfg.has_pass = cfg_str("password", cfg.password, sizeof cfg.password);
    if (cfg.has_pass && !cfg.has_user)
        logf_(PC_LOG_ERROR, "mqtt: config password is set without username: MQTT 3.1.1 sends a password only with a "
                            "user name, so it is not sent");
    cfg.keepalive = cfg_int("keepalive", 30, 1, 65535);
    cfg.qos = cfg_int("qos", 0, 0, 1);
    char b[5];
    cfg.clean = 1;
    if (cfg_str("clean_session", b, sizeof b)) cfg.clean = strcmp(b, "false") != 0;
    if (!cfg.clean && cfg.client_id[0] == 0) {
        logf_(PC_LOG_ERROR, "mqtt: clean_session: false needs a client_id (the broker keeps the session under it): "
                            "using a clean session");
        cfg.clean = 1;
    }
    /* subscribe: subjects (a list reads as its items joined by ','). */
    static char list[CFG_CAP];
    if (!cfg_str("subscribe", list, sizeof list)) return;
    for (char *p = list; *p;) {
        char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *why;
        if (cfg.nfilters == MAX_FILTERS) {
            logf_(PC_LOG_ERROR, "mqtt: subscribe: more than %d subjects: the rest are ignored", MAX_FILTERS);
            break;
        }
        if (subject_map(p, n, 1, cfg.filters[cfg.nfilters], sizeof cfg.filters[0], &why) < 0) {
            refused++;
            logf_(PC_LOG_ERROR, "mqtt: subscribe: %.*s cannot map to an MQTT topic filter: %s (refused so far: %llu)",
                  (int)n, p, why, (unsigned long long)refused);
        } else {
            cfg.nfilters++;
        }
        if (!e) break;
        p = e + 1;
    }
}

static mconn *find(uint32_t id) {
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].id == id) return &conns[i];
    return 0;
}

/* --- packet writing --- */

/* pkt is a packet being built: a fixed header with room for the longest
 * remaining length, then the body. */
typedef struct {
    uint8_t *b;
    size_t n, cap;
    int oom;
} pkt;

static uint8_t *outbuf;
static size_t outcap;

static void pkt_start(pkt *p, size_t body) {
    size_t need = body + 5;
    if (need > outcap) {
        uint8_t *nb = realloc(outbuf, need);
        if (nb) {
            outbuf = nb;
            outcap = need;
        }
    }
    p->b = outbuf;
    p->cap = outcap;
    p->n = 5;
    p->oom = need > outcap;
}

static void put(pkt *p, const void *b, size_t n) {
    if (p->oom || p->n + n > p->cap) {
        p->oom = 1;
        return;
    }
    memcpy(p->b + p->n, b, n);
    p->n += n;
}

static void put16(pkt *p, uint16_t v) {
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(p, b, 2);
}

static void putstr(pkt *p, const char *s, size_t n) {
    put16(p, (uint16_t)n);
    put(p, s, n);
}

/* pkt_frame fills in the fixed header in front of the body; *out and
 * *len are then the whole packet. */
static int32_t pkt_frame(pkt *p, uint8_t first, const uint8_t **out, uint32_t *len) {
    if (p->oom) return -PC_TOO_LARGE;
    size_t rem = p->n - 5;
    if (rem > 268435455) return -PC_TOO_LARGE;
    uint8_t hdr[5];
    size_t h = 0;
    hdr[h++] = first;
    do {
        uint8_t d = rem % 128;
        rem /= 128;
        if (rem) d |= 0x80;
        hdr[h++] = d;
    } while (rem);
    uint8_t *start = p->b + 5 - h;
    memcpy(start, hdr, h);
    *out = start;
    *len = (uint32_t)(p->n - 5 + h);
    return 0;
}

/* pkt_send writes the packet on conn. */
static int32_t pkt_send(pkt *p, uint8_t first, uint32_t conn) {
    const uint8_t *b;
    uint32_t len;
    int32_t st = pkt_frame(p, first, &b, &len);
    return st < 0 ? st : pct_write(conn, b, len);
}

static int pid_in_use(uint16_t pid) {
    for (int i = 0; i < MAX_UNACKED; i++)
        if (outq[i].pkt && outq[i].pid == pid) return 1;
    return 0;
}

static uint16_t next_pid(void) {
    do {
        if (++last_pid == 0) last_pid = 1;
    } while (outq_n && pid_in_use(last_pid));
    return last_pid;
}

/* keep stores a copy of a QoS 1 PUBLISH written on a connection of dial
 * entry index; 0 when it cannot (no room), and the caller refuses it. */
static int keep(mconn *c, uint16_t pid, const uint8_t *b, uint32_t len) {
    if (outq_n >= MAX_UNACKED || outq_bytes + len > UNACKED_BYTES) return 0;
    for (int i = 0; i < MAX_UNACKED; i++) {
        if (outq[i].pkt) continue;
        uint8_t *copy = malloc(len);
        if (!copy) return 0;
        memcpy(copy, b, len);
        outq[i] = (unacked){.pkt = copy, .len = len, .conn = c->id, .index = c->index, .pid = pid};
        outq_n++;
        outq_bytes += len;
        return 1;
    }
    return 0;
}

static void forget(unacked *u) {
    free(u->pkt);
    outq_n--;
    outq_bytes -= u->len;
    *u = (unacked){0};
}

/* acked drops what a PUBACK on c acknowledges. */
static void acked(mconn *c, uint16_t pid) {
    for (int i = 0; i < MAX_UNACKED; i++)
        if (outq[i].pkt && outq[i].pid == pid && outq[i].index == c->index) {
            forget(&outq[i]);
            return;
        }
}

/* resend writes again, DUP set, what c's dial entry has not had
 * acknowledged on an earlier connection: c is a new one to that broker
 * (what c itself carried before its CONNACK is not written twice). */
static void resend(mconn *c) {
    int n = 0;
    for (int i = 0; i < MAX_UNACKED; i++) {
        unacked *u = &outq[i];
        if (!u->pkt || u->index != c->index || u->conn == c->id) continue;
        u->conn = c->id;
        u->pkt[0] |= 0x08;
        if (pct_write(c->id, u->pkt, u->len) >= 0) n++;
    }
    if (n) logf_(PC_LOG_INFO, "mqtt: connection %u: %d QoS 1 publish(es) not acknowledged before the last drop written again", c->id, n);
}

/* --- events --- */

/* subscribe writes the SUBSCRIBE of every filter; sent once the CONNACK
 * accepted the session: written before, it can make a broker that refuses
 * the CONNECT reset the connection, and the reset loses the CONNACK that
 * says why. */
static void subscribe(mconn *c) {
    if (cfg.nfilters == 0) return;
    size_t body = 2;
    for (int i = 0; i < cfg.nfilters; i++) body += 3 + strlen(cfg.filters[i]);
    pkt p;
    pkt_start(&p, body);
    put16(&p, next_pid());
    for (int i = 0; i < cfg.nfilters; i++) {
        putstr(&p, cfg.filters[i], strlen(cfg.filters[i]));
        uint8_t q = (uint8_t)cfg.qos;
        put(&p, &q, 1);
    }
    pkt_send(&p, (SUBSCRIBE << 4) | 0x02, c->id);
}


static void opened(uint32_t id, int dialed, int32_t index) {
    (void)dialed;
    load_config();
    mconn *c = find(0);
    if (!c) {
        logf_(PC_LOG_ERROR, "mqtt: more than %d connections on one instance: closing connection %u (dial[%d])",
              MAX_CONNS, id, (int)index);
        pct_close(id);
        return;
    }
    memset(c, 0, sizeof *c);
    c->id = id;
    c->index = index;
    size_t cl = strlen(cfg.client_id), ul = strlen(cfg.username), pl = strlen(cfg.password);
    pkt p;
    pkt_start(&p, 12 + 2 + cl + 2 + ul + 2 + pl);
    put(&p, "\0\4MQTT\4", 7);
    uint8_t flags = (uint8_t)((cfg.clean ? 0x02 : 0) | (cfg.has_user ? 0x80 : 0) | (cfg.has_user && cfg.has_pass ? 0x40 : 0));
    put(&p, &flags, 1);
    put16(&p, (uint16_t)cfg.keepalive);
    putstr(&p, cfg.client_id, cl);
    if (cfg.has_user) putstr(&p, cfg.username, ul);
    if (cfg.has_user && cfg.has_pass) putstr(&p, cfg.password, pl);
    pkt_send(&p, CONNECT << 4, id);
    c->waiting = 1;
    pct_timer_set(id, cfg.keepalive * 1000);
}

static void closed(uint32_t id, int32_t why) {
    (void)why;
    mconn *c = find(id);
    if (c) c->id = 0;
    pct_timer_set(id, 0);
}

/* timer: one per connection (its id is the connection's). */
static void timer(uint32_t id) {
    mconn *c = find(id);
    if (!c) return;
    if (c->waiting) {
        logf_(PC_LOG_WARN, "mqtt: connection %u: the broker sent nothing for %d s after %s: closing it (the host "
                           "dials again)",
              id, cfg.keepalive, c->connected ? "PINGREQ" : "CONNECT");
        pct_close(id);
        c->id = 0;
        return;
    }
    uint8_t ping[2] = {PINGREQ << 4, 0};
    pct_write(id, ping, 2);
    c->waiting = 1;
    pct_timer_set(id, cfg.keepalive * 1000);
}

static uint8_t *dbuf;
static size_t dcap;

/* inbound handles one PUBLISH (flags: the low nibble of its first byte). */
static int32_t inbound(mconn *c, uint8_t flags, const uint8_t *b, uint32_t n) {
    int qos = (flags >> 1) & 3;
    if (qos > 1) {
        logf_(PC_LOG_WARN, "mqtt: connection %u: PUBLISH at QoS %d, above the QoS 1 this client subscribes with: "
                           "closing it",
              c->id, qos);
        return -PC_INVALID;
    }
    if (n < 2) return -PC_INVALID;
    uint32_t tl = (uint32_t)b[0] << 8 | b[1];
    uint32_t at = 2 + tl + (qos ? 2 : 0);
    if (at > n) {
        logf_(PC_LOG_WARN, "mqtt: connection %u: PUBLISH shorter than its topic and packet id: closing it", c->id);
        return -PC_INVALID;
    }
    uint16_t pid = qos ? (uint16_t)(b[2 + tl] << 8 | b[3 + tl]) : 0;
    const uint8_t *payload = b + at;
    uint32_t pl = n - at;
    size_t need = MQTT_MAX_NAME + 1 + pl + sizeof origin_hdr;
    if (need > dcap) {
        uint8_t *nb = realloc(dbuf, need);
        if (!nb) return -PC_TOO_LARGE;
        dbuf = nb;
        dcap = need;
    }
    const char *why;
    int sl = topic_to_subject(b + 2, tl, (char *)dbuf, MQTT_MAX_NAME + 1, &why);
    int accepted = 0;
    if (sl < 0) {
        refused++;
        logf_(PC_LOG_WARN, "mqtt: topic %.*s refused: it cannot map to a subject: %s (refused so far: %llu)",
              (int)(tl > 200 ? 200 : tl), (const char *)b + 2, why, (unsigned long long)refused);
        accepted = 1; /* acknowledged: sending it again cannot make it map */
    } else {
        memmove(dbuf + sl, payload, pl);
        memcpy(dbuf + sl + pl, origin_hdr, sizeof origin_hdr);
        int32_t st = pct_deliver(PCT_EVENT, 0, dbuf, (uint32_t)sl, pl, sizeof origin_hdr);
        if (st == 0) {
            accepted = 1;
        } else {
            logf_(PC_LOG_WARN, "mqtt: %s: the host did not take the message (status %d)%s", (const char *)dbuf, (int)-st,
                  qos ? ": no PUBACK" : "");
        }
    }
    if (qos && accepted) {
        uint8_t ack[4] = {PUBACK << 4, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
        pct_write(c->id, ack, 4);
    }
    return 0;
}

/* packet handles one complete packet from the broker; < 0 closes the
 * connection. */
static int32_t packet(mconn *c, uint8_t first, const uint8_t *b, uint32_t n) {
    int type = first >> 4;
    if (!c->connected) {
        if (type != CONNACK || n != 2) {
            logf_(PC_LOG_WARN, "mqtt: connection %u: the broker's first packet is of type %d (%u bytes), not a CONNACK: "
                               "closing it",
                  c->id, type, n);
            return -PC_INVALID;
        }
        static const char *const codes[] = {"accepted", "unacceptable protocol version", "client identifier rejected",
                                            "server unavailable", "bad user name or password", "not authorized"};
        if (b[1] != 0) {
            logf_(PC_LOG_ERROR, "mqtt: connection %u: the broker refused the CONNECT: %s (code %d)", c->id,
                  b[1] < 6 ? codes[b[1]] : "unknown code", b[1]);
            return -PC_DENIED;
        }
        c->connected = 1;
        c->waiting = 0;
        subscribe(c);
        resend(c);
        logf_(PC_LOG_INFO, "mqtt: connection %u: connected, %d subscription(s)", c->id, cfg.nfilters);
        return 0;
    }
    c->waiting = 0;
    switch (type) {
    case PUBLISH:
        return inbound(c, first & 0x0f, b, n);
    case PUBACK:
        if (n == 2) acked(c, (uint16_t)(b[0] << 8 | b[1]));
        return 0;
    case PINGRESP:
        return 0;
    case SUBACK:
        for (uint32_t i = 2; i < n; i++)
            if (b[i] == 0x80)
                logf_(PC_LOG_ERROR, "mqtt: connection %u: the broker refused subscription %u (%s)", c->id, i - 2,
                      (int)(i - 2) < cfg.nfilters ? cfg.filters[i - 2] : "?");
        return 0;
    }
    logf_(PC_LOG_WARN, "mqtt: connection %u: unexpected packet type %d from the broker: closing it", c->id, type);
    return -PC_INVALID;
}

static int32_t data(uint32_t id, const uint8_t *b, uint32_t n) {
    mconn *c = find(id);
    if (!c) return (int32_t)n;
    uint32_t used = 0;
    while (n - used >= 2) {
        const uint8_t *p = b + used;
        uint32_t left = n - used, rem = 0, mul = 1, h = 1;
        for (;;) {
            if (h >= left) return (int32_t)used; /* the length is not all here yet */
            uint8_t d = p[h++];
            rem += (d & 0x7f) * mul;
            if (!(d & 0x80)) break;
            if (h == 5) {
                logf_(PC_LOG_WARN, "mqtt: connection %u: a remaining length longer than 4 bytes: closing it", id);
                return -PC_INVALID;
            }
            mul *= 128;
        }
        if (rem > left - h) return (int32_t)used; /* the rest comes later (or the host's read_buffer ends it) */
        int32_t st = packet(c, p[0], p + h, rem);
        if (st < 0) return st;
        if (!find(id)) return (int32_t)n;
        used += h + rem;
    }
    return (int32_t)used;
}

static int32_t message(uint32_t corr, int32_t kind, const char *subject, uint32_t sl, const uint8_t *payload,
                       uint32_t pl, const uint8_t *headers, uint32_t hl) {
    (void)headers;
    (void)hl;
    if (kind == PCT_REQUEST) {
        const char *e = "mqtt: MQTT 3.1.1 has no replies: only events and sends are carried";
        pct_respond(corr, PC_INVALID, e, (uint32_t)strlen(e));
        return PC_OK;
    }
    char topic[MQTT_MAX_NAME + 1];
    const char *why;
    int tl = subject_map(subject, sl, 0, topic, sizeof topic, &why);
    if (tl < 0) {
        refused++;
        logf_(PC_LOG_WARN, "mqtt: subject %.*s refused: it cannot map to an MQTT topic: %s (refused so far: %llu)",
              (int)(sl > 200 ? 200 : sl), subject, why, (unsigned long long)refused);
        return PC_INVALID;
    }
    int sent = 0, full = 0;
    for (int i = 0; i < MAX_CONNS; i++) {
        mconn *c = &conns[i];
        if (!c->id) continue;
        pkt p;
        pkt_start(&p, 2 + (size_t)tl + 2 + pl);
        putstr(&p, topic, (size_t)tl);
        uint16_t pid = 0;
        if (cfg.qos) put16(&p, pid = next_pid());
        put(&p, payload, pl);
        const uint8_t *b;
        uint32_t len;
        if (pkt_frame(&p, (uint8_t)(PUBLISH << 4 | cfg.qos << 1), &b, &len) < 0) continue;
        if (cfg.qos) {
            if (!keep(c, pid, b, len)) {
                full = 1;
                continue;
            }
            /* Kept: a write that fails (the connection just closed) is
             * made good on the next connection to this broker. */
            pct_write(c->id, b, len);
            sent++;
        } else if (pct_write(c->id, b, len) >= 0) {
            sent++;
        }
        if (kind == PCT_SEND) break;
    }
    if (full) {
        outq_refused++;
        logf_(PC_LOG_WARN, "mqtt: %.*s refused: %u QoS 1 publishes (%u bytes) wait for the broker's PUBACK, the most "
                           "this plugin keeps (refused so far: %llu)",
              (int)(sl > 200 ? 200 : sl), subject, outq_n, outq_bytes, (unsigned long long)outq_refused);
    }
    return sent ? PC_OK : full ? PC_BUSY : PC_UNREACHABLE;
}

static const pct_handler handler = {
    .opened = opened, .data = data, .closed = closed, .message = message, .timer = timer};

void pct_init(void) { pct_set(&handler); }
