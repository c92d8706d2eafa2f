/*
 * hello-c: a small pycomms handler plugin written in C with sdk/c.
 *
 *   hello.greet  request: replies "<greeting>, <payload>!", where <greeting>
 *                is the plugin config value "greeting" (default "hello").
 *   hello.count  request: counts the hello.count calls this instance has
 *                served (including this one) and replies with the number.
 *   greetings.>  events: logs each one at info level.
 *
 * Build (from the repository root): scripts/build-fixtures.sh
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pycomms.h"

/* Per instance: the host runs several instances and may replace one at any
 * time, so this counts calls on this instance only. */
static unsigned long long count_calls;

static int greet(const pc_msg *m) {
	char *greeting = pc_config_dup("greeting");
	const char *g = greeting ? greeting : "hello";
	size_t gl = strlen(g);

	/* "<greeting>, <payload>!" */
	size_t n = gl + 2 + m->payload_len + 1;
	char *out = malloc(n);
	if (!out) {
		free(greeting);
		return pc_error("hello.greet: out of memory");
	}
	memcpy(out, g, gl);
	memcpy(out + gl, ", ", 2);
	memcpy(out + gl + 2, m->payload, m->payload_len);
	out[n - 1] = '!';

	int rc = pc_reply(out, n);
	free(out);
	free(greeting);
	return rc;
}

static int count(const pc_msg *m) {
	(void)m;
	char num[24];
	int n = snprintf(num, sizeof num, "%llu", ++count_calls);
	return pc_reply(num, (size_t)n);
}

static int on_greeting(const pc_msg *m) {
	pc_logf(PC_LOG_INFO, "greeting on %s: %.*s", m->subject, (int)m->payload_len,
	        m->payload);
	return PC_OK;
}

void pc_init(void) {
	pc_handle("hello.greet", greet);
	pc_handle("hello.count", count);
	pc_subscribe("greetings.>", on_greeting);
}
