/* topic_driver.c - runs plugins/mqtt/topic.h natively for the mapping
 * table in plugins/mqtt_test.go. Each input line is an operation and a
 * hex-encoded name:
 *
 *   t HEX   topic name -> subject        (topic_to_subject)
 *   s HEX   subject -> topic name        (subject_map, no wildcards)
 *   f HEX   subject pattern -> filter    (subject_map, wildcards)
 *
 * and each output line the result as text, or "!" and why it was refused. */
#include <stdio.h>
#include <string.h>

#include "../topic.h"

static int unhex(const char *h, char *out, size_t cap) {
    size_t n = strlen(h);
    if (n % 2 || n / 2 >= cap) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (char)v;
    }
    return (int)(n / 2);
}

int main(void) {
    static char line[8192], in[4096], out[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char op = line[0];
        int n = line[1] == ' ' ? unhex(line + 2, in, sizeof in) : (line[1] == 0 ? 0 : -1);
        if (n < 0) {
            fprintf(stderr, "bad input line: %s\n", line);
            return 2;
        }
        const char *why = "";
        int r;
        if (op == 't')
            r = topic_to_subject((const uint8_t *)in, (size_t)n, out, sizeof out, &why);
        else
            r = subject_map(in, (size_t)n, op == 'f', out, sizeof out, &why);
        if (r < 0)
            printf("! %s\n", why);
        else
            printf("= %s\n", out);
    }
    return 0;
}
