/*
 * subject_driver.c - runs the C SDK's subject code natively for
 * abi/subject_c_test.go, which feeds it the cases of
 * abi/testdata/subjects.txt and compares its answers with the table.
 *
 * Input, one case per line: an operation letter and its arguments, each
 * hex-encoded so that any byte can pass (spaces, tabs, non-ASCII):
 *   s HEX        is HEX a valid subject?
 *   p HEX        is HEX a valid topic pattern?
 *   m HEX HEX    does the subject (second) match the pattern (first)?
 * Output: one line per case, "1" or "0".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pycomms_subject.h"

/* Decodes the hex word at *in into a NUL-terminated buffer it allocates
 * and advances *in past it. Returns NULL on malformed input. */
static char *unhex(char **in, size_t *len) {
	char *p = *in;
	while (*p == ' ')
		p++;
	size_t n = strspn(p, "0123456789abcdef");
	if (n % 2 != 0)
		return NULL;
	char *out = malloc(n / 2 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(p + 2 * i, "%2x", &v) != 1) {
			free(out);
			return NULL;
		}
		out[i] = (char)v;
	}
	out[n / 2] = 0;
	*len = n / 2;
	*in = p + n;
	return out;
}

int main(void) {
	static char line[16384];
	while (fgets(line, sizeof line, stdin)) {
		char *p = line + 1;
		size_t alen, blen;
		char *a = unhex(&p, &alen);
		if (!a) {
			fprintf(stderr, "bad input line: %s", line);
			return 2;
		}
		int r;
		switch (line[0]) {
		case 's':
			r = valid_subject(a, 0);
			break;
		case 'p':
			r = valid_subject(a, 1);
			break;
		case 'm': {
			char *b = unhex(&p, &blen);
			if (!b) {
				fprintf(stderr, "bad input line: %s", line);
				return 2;
			}
			r = pc_match(a, b, blen);
			free(b);
			break;
		}
		default:
			fprintf(stderr, "unknown operation %c\n", line[0]);
			return 2;
		}
		free(a);
		printf("%d\n", r);
	}
	return ferror(stdin) ? 1 : 0;
}
