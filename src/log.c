/*
 * log.c - one line per event on stderr, with time, pid and level, so that
 * systemd, script/server and the tests all read the same format.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int
log_parse_level(const char *name, enum log_level *out)
{
	for (int i = 0; i <= LOG_ERROR; i++)
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 1;
		}
	return 0;
}

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char stamp[32], line[1024];
	size_t len;
	int n;

	iso8601(clock_now_ms(), stamp);
	n = snprintf(line, sizeof line, "%s casqd[%ld] %s: ", stamp,
	    (long)getpid(), level_names[level]);
	/* Keep one byte for the newline. */
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	len = strlen(line);
	line[len++] = '\n';
	/* One write per line: lines from several workers never interleave. */
	(void)!write(STDERR_FILENO, line, len);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < log_threshold)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal_at(const char *file, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_msg(LOG_ERROR, "fatal at %s:%d: %s", file, line, msg);
	abort();
}
