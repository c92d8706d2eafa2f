/*
 * topic.h - the mapping between MQTT topics and pycomms subjects
 * (plugins/mqtt/README.md has the table). Kept apart from mqtt.c, with
 * nothing from the host, so that a native build runs it against the table
 * in plugins/mqtt_test.go.
 *
 * Each function writes a NUL-terminated result into out (cap bytes) and
 * returns its length, or -1 with *why set to a static text naming what
 * cannot map. A topic level becomes a subject token and back; a level or
 * token that cannot travel unchanged is refused rather than rewritten, so
 * that the mapping stays one-to-one.
 */
#ifndef MQTT_TOPIC_H
#define MQTT_TOPIC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Subjects are at most 1024 bytes (abi/SPEC.md section 9); a topic maps to
 * a subject of the same length. */
#define MQTT_MAX_NAME 1024

/* topic_to_subject maps the topic of a PUBLISH the broker sent (no
 * wildcards: a topic name) to a subject: '/' becomes '.'. Refused: an
 * empty topic or level (a leading, trailing or double '/'), a level with a
 * '.' (it would split into two tokens), '*' or '>' (subject wildcards),
 * '+' or '#' (topic wildcards), a byte outside printable ASCII or a space
 * (subjects are printable ASCII), and a topic beyond MQTT_MAX_NAME. */
static int topic_to_subject(const uint8_t *t, size_t n, char *out, size_t cap, const char **why) {
    if (n == 0) {
        *why = "empty topic";
        return -1;
    }
    if (n > MQTT_MAX_NAME || n + 1 > cap) {
        *why = "topic longer than a subject may be (1024 bytes)";
        return -1;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || t[i] == '/') {
            if (i == start) {
                *why = "empty level (a leading, trailing or double '/')";
                return -1;
            }
            out[i] = '.';
            start = i + 1;
            continue;
        }
        uint8_t c = t[i];
        if (c == '.') {
            *why = "a level contains '.', which would split it into two subject tokens";
            return -1;
        }
        if (c == '+' || c == '#') {
            *why = "a wildcard ('+' or '#') in a topic name";
            return -1;
        }
        if (c == '*' || c == '>') {
            *why = "a level contains '*' or '>', which are subject wildcards";
            return -1;
        }
        if (c <= 0x20 || c >= 0x7f) {
            *why = "a byte outside printable ASCII or a space (subjects are printable ASCII)";
            return -1;
        }
        out[i] = (char)c;
    }
    out[n] = 0;
    return (int)n;
}

/* subject_map maps a subject (wildcards 0) or a subject pattern
 * (wildcards 1) to a topic name or topic filter: '.' becomes '/', and with
 * wildcards a '*' token becomes '+' and a final '>' token '#'. Refused: an
 * empty token, a token with '/', '+' or '#' (they mean levels and
 * wildcards in MQTT), a wildcard where it is not allowed, a byte outside
 * printable ASCII, and a subject beyond MQTT_MAX_NAME. */
static int subject_map(const char *s, size_t n, int wildcards, char *out, size_t cap, const char **why) {
    if (n == 0) {
        *why = "empty subject";
        return -1;
    }
    if (n > MQTT_MAX_NAME || n + 1 > cap) {
        *why = "subject longer than 1024 bytes";
        return -1;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            uint8_t c = (uint8_t)s[i];
            if (c == '/' || c == '+' || c == '#') {
                *why = "a token contains '/', '+' or '#', which MQTT reads as a level or a wildcard";
                return -1;
            }
            if (c <= 0x20 || c >= 0x7f) {
                *why = "a byte outside printable ASCII or a space";
                return -1;
            }
            out[i] = (char)c;
            continue;
        }
        size_t tl = i - start;
        if (tl == 0) {
            *why = "empty token";
            return -1;
        }
        if (tl == 1 && (s[start] == '*' || s[start] == '>')) {
            if (!wildcards) {
                *why = "a wildcard in a subject that names one topic";
                return -1;
            }
            if (s[start] == '>' && i != n) {
                *why = "'>' before the last token";
                return -1;
            }
            out[start] = s[start] == '*' ? '+' : '#';
        } else if (memchr(s + start, '*', tl) || memchr(s + start, '>', tl)) {
            *why = "'*' or '>' inside a longer token";
            return -1;
        }
        if (i < n) out[i] = '/';
        start = i + 1;
    }
    out[n] = 0;
    return (int)n;
}

#endif
