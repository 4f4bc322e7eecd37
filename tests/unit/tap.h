/*
 * tap.h - a header-only TAP producer for the unit tests, in the manner of
 * Knot DNS's libtap: every assertion names what it checks, a failure
 * prints what was got and what was wanted as "# " diagnostics, and the
 * plan ("1..N") comes last so a test never has to count in advance.
 * automake's tap-driver.sh reads the output; exit status is 1 when any
 * assertion failed, so a test run by hand also says so.
 *
 * Every function is static inline: a test that uses only some of them
 * compiles without unused-function warnings.
 */
#ifndef CASQ_TAP_H
#define CASQ_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

static int tap_count;		/* assertions so far */
static int tap_failures;	/* of which failed */

/* Print "# ..." on stdout: a diagnostic the driver shows but ignores. */
static inline void TAP_PRINTF(1, 2)
diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* The one place a result line is printed; returns pass. */
static inline bool
tap_vresult(bool pass, const char *fmt, va_list ap)
{
	tap_count++;
	if (!pass)
		tap_failures++;
	printf("%sok %d - ", pass ? "" : "not ", tap_count);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	return pass;
}

static inline bool TAP_PRINTF(2, 3)
ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	bool pass;

	va_start(ap, fmt);
	pass = tap_vresult(cond, fmt, ap);
	va_end(ap);
	return pass;
}

static inline bool TAP_PRINTF(3, 4)
is_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;
	bool pass = got == want;

	va_start(ap, fmt);
	tap_vresult(pass, fmt, ap);
	va_end(ap);
	if (!pass)
		diag("got: %lld want: %lld", got, want);
	return pass;
}

/* Strings compared with strcmp; NULL equals only NULL. */
static inline bool TAP_PRINTF(3, 4)
is_str(const char *got, const char *want, const char *fmt, ...)
{
	va_list ap;
	bool pass = (got == NULL || want == NULL) ? got == want :
	    strcmp(got, want) == 0;

	va_start(ap, fmt);
	tap_vresult(pass, fmt, ap);
	va_end(ap);
	if (!pass) {
		diag("got:  %s%s%s", got ? "'" : "", got ? got : "(null)", got ? "'" : "");
		diag("want: %s%s%s", want ? "'" : "", want ? want : "(null)", want ? "'" : "");
	}
	return pass;
}

/* For fatal set-up failures: the driver reports the whole file as broken. */
static inline _Noreturn void TAP_PRINTF(1, 2)
bail_out(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(2);
}

/* Print the plan; the exit status for main. */
static inline int
done_testing(void)
{
	printf("1..%d\n", tap_count);
	if (tap_failures > 0)
		diag("failed %d of %d", tap_failures, tap_count);
	fflush(stdout);
	return tap_failures ? 1 : 0;
}

#endif
