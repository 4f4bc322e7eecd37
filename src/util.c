/*
 * util.c - allocation, buffers, the clock, and small text helpers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatal("out of memory (%zu bytes)", n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatal("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		fatal("out of memory (%zu bytes)", n);
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
buf_reserve(struct buf *b, size_t extra)
{
	size_t want = b->len + extra + 1;	/* +1: always NUL-terminable */

	if (want <= b->cap)
		return;
	b->cap = b->cap ? b->cap : 256;
	while (b->cap < want)
		b->cap *= 2;
	b->data = xrealloc(b->data, b->cap);
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("vsnprintf failed");
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

#ifdef CASQ_TEST_CLOCK
/* Test builds only: the offset file is re-read on every call so a test can
 * move time forward while the daemon runs. */
static int64_t
test_clock_offset(void)
{
	const char *path = getenv("CASQ_TEST_CLOCK_FILE");
	long long off = 0;
	FILE *f;

	if (path == NULL || (f = fopen(path, "r")) == NULL)
		return 0;
	if (fscanf(f, "%lld", &off) != 1)
		off = 0;
	fclose(f);
	return (int64_t)off;
}
#endif

int64_t
clock_now_ms(void)
{
	struct timespec ts;
	int64_t ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#ifdef CASQ_TEST_CLOCK
	ms += test_clock_offset();
#endif
	return ms;
}

void
iso8601(int64_t ms, char out[static 32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
iso8601_ms(int64_t ms, char out[static 32])
{
	iso8601(ms, out);
	snprintf(out + 19, 32 - 19, ".%03dZ", (int)(ms % 1000));
}

bool
name_valid(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || !strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789._-", s[i]))
			return false;
	return true;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
bool
utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t need;
		unsigned min, cp;

		if (c < 0x80) { i++; continue; }
		if (c >= 0xC2 && c <= 0xDF) { need = 1; min = 0x80; cp = c & 0x1F; }
		else if (c >= 0xE0 && c <= 0xEF) { need = 2; min = 0x800; cp = c & 0x0F; }
		else if (c >= 0xF0 && c <= 0xF4) { need = 3; min = 0x10000; cp = c & 0x07; }
		else return false;
		if (i + need >= n)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += need + 1;
	}
	return true;
}

bool
parse_seconds_ms(const char *s, int64_t *ms)
{
	int64_t whole = 0, frac = 0, scale = 100;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > (INT64_MAX / 1000 - 9) / 10)
			return false;
		whole = whole * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
			if (scale == 0)
				return false;	/* finer than a millisecond */
			else
				frac += (*p - '0') * scale;
	}
	if (*p != '\0')
		return false;
	*ms = whole * 1000 + frac;
	return true;
}

void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xF];
	}
	out[2 * n] = '\0';
}

void
random_bytes(unsigned char *out, size_t n)
{
	if (RAND_bytes(out, (int)n) != 1)
		fatal("RAND_bytes failed");
}

void
sha256(const void *data, size_t n, unsigned char out[32])
{
	unsigned int len = 32;

	if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1)
		fatal("EVP_Digest(sha256) failed");
}
