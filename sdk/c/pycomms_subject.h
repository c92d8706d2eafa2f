/*
 * pycomms_subject.h - subject rules of the C SDK (abi/SPEC.md, section 9).
 *
 * Internal to the SDK: pycomms.c includes it once, so that building a
 * plugin still takes one .c file. It lives apart so that a native build can
 * run it alone against the table every implementation must agree on,
 * abi/testdata/subjects.txt (abi/subject_c_test.go). It needs nothing from
 * the host: only <string.h> and PC_MAX_SUBJECT_LEN.
 */
#ifndef PYCOMMS_SUBJECT_H
#define PYCOMMS_SUBJECT_H

#include <stddef.h>
#include <string.h>

#include "pycomms.h"

/* Checks a subject or pattern: 1..PC_MAX_SUBJECT_LEN bytes of printable
 * ASCII without spaces, non-empty '.'-separated tokens. With wildcards,
 * "*" may be any token and ">" the last one; without, neither may appear
 * as a token. '*' and '>' never appear inside a longer token: the host
 * refuses such a subject everywhere (abi/SPEC.md section 9). */
static int valid_subject(const char *s, int wildcards) {
	size_t n = strlen(s);
	if (n == 0 || n > PC_MAX_SUBJECT_LEN)
		return 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
				return 0;
			continue;
		}
		size_t tl = i - start;
		if (tl == 0)
			return 0;
		if (tl == 1 && (s[start] == '*' || s[start] == '>')) {
			if (!wildcards)
				return 0;
			if (s[start] == '>' && i != n)
				return 0;
		} else if (memchr(s + start, '*', tl) || memchr(s + start, '>', tl)) {
			return 0;
		}
		start = i + 1;
	}
	return 1;
}

int pc_match(const char *p, const char *s, size_t n) {
	size_t i = 0; /* start of the current subject token */
	for (;;) {
		const char *pe = strchr(p, '.');
		size_t pl = pe ? (size_t)(pe - p) : strlen(p);
		if (!pe && pl == 1 && p[0] == '>')
			return i < n; /* one or more tokens left */
		if (i >= n)
			return 0;
		size_t j = i;
		while (j < n && s[j] != '.')
			j++;
		size_t sl = j - i;
		if (sl == 0)
			return 0;
		if (!(pl == 1 && p[0] == '*') && (pl != sl || memcmp(p, s + i, sl) != 0))
			return 0;
		if (!pe)
			return j == n;
		if (j == n)
			return 0;
		p = pe + 1;
		i = j + 1;
	}
}

#endif
