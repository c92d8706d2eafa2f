/*
 * jc_driver.c - runs jsoncbor.h natively for the tests in plugins/: reads
 * lines "j HEX" (JSON -> CBOR) or "c HEX" (CBOR -> JSON) on stdin and
 * answers each with "= HEX" (the output) or "! STATUS message".
 */
#include <ctype.h>

#include "../jsoncbor.h"

static int unhex(char ch) { return isdigit((unsigned char)ch) ? ch - '0' : tolower((unsigned char)ch) - 'a' + 10; }

int main(void) {
    static jc_ctx c;
    size_t cap = 1 << 16;
    char *line = malloc(cap);
    uint8_t *in = malloc(cap);
    if (!line || !in) return 1;
    for (;;) {
        size_t n = 0;
        int ch;
        while ((ch = getchar()) != EOF && ch != '\n') {
            if (n + 1 >= cap) {
                cap *= 2;
                line = realloc(line, cap);
                in = realloc(in, cap);
                if (!line || !in) return 1;
            }
            line[n++] = (char)ch;
        }
        if (n == 0 && ch == EOF) return 0;
        if (n < 2) return 2;
        size_t m = 0;
        for (size_t i = 2; i + 1 < n; i += 2) in[m++] = (uint8_t)(unhex(line[i]) << 4 | unhex(line[i + 1]));
        int rc = line[0] == 'j' ? jc_json_to_cbor(&c, in, m) : jc_cbor_to_json(&c, in, m);
        if (rc) {
            printf("! %d %s\n", rc, c.err);
        } else {
            printf("= ");
            for (size_t i = 0; i < c.out.n; i++) printf("%02x", c.out.p[i]);
            printf("\n");
        }
        jc_trim(&c);
        fflush(stdout);
    }
}
