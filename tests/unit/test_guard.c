/*
 * test_guard.c - fcgi_guard.c, the check of a peer's FastCGI records
 * before libfcgi reads them: requests as nginx sends them pass (whole, or
 * a byte at a time, with the bytes of the next request after them); the
 * records libfcgi would misread, allocate without bound or leak on are
 * refused, each with its reason; a peer that closes in the middle of a
 * body gets its request cut there.
 */
#include <string.h>

#include "daemon.h"
#include "http.h"
#include "tap.h"

/* --- requests built by hand, as nginx writes them --- */

struct bytes {
	unsigned char b[FCGI_REQUEST_BYTES_MAX * 2];
	size_t        n;
};

static void
put(struct bytes *o, const void *p, size_t n)
{
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void
record(struct bytes *o, int type, int id, const void *content, size_t clen, size_t pad)
{
	unsigned char h[8] = { 1, (unsigned char)type, (unsigned char)(id >> 8),
	    (unsigned char)id, (unsigned char)(clen >> 8), (unsigned char)clen,
	    (unsigned char)pad, 0 };
	unsigned char zeros[256] = { 0 };

	put(o, h, sizeof h);
	put(o, content, clen);
	put(o, zeros, pad);
}

static void
begin(struct bytes *o, int id, int role, size_t pad)
{
	unsigned char body[8] = { (unsigned char)(role >> 8), (unsigned char)role, 1 };

	record(o, 1, id, body, sizeof body, pad);
}

/* One pair, lengths in four bytes when long. */
static size_t
pair(unsigned char *out, const char *name, size_t vlen, char fill)
{
	size_t nlen = strlen(name), off = 0;
	size_t lens[2] = { nlen, vlen };

	for (int i = 0; i < 2; i++)
		if (lens[i] < 128)
			out[off++] = (unsigned char)lens[i];
		else {
			out[off++] = (unsigned char)(lens[i] >> 24 | 0x80);
			out[off++] = (unsigned char)(lens[i] >> 16);
			out[off++] = (unsigned char)(lens[i] >> 8);
			out[off++] = (unsigned char)lens[i];
		}
	memcpy(out + off, name, nlen);
	memset(out + off + nlen, fill, vlen);
	return off + nlen + vlen;
}

/* A GET /v1/ping with a param of vlen bytes, the body, as nginx. */
static void
nginx_request(struct bytes *o, size_t vlen, const char *body)
{
	static unsigned char params[FCGI_REQUEST_BYTES_MAX];
	size_t n = 0, blen = strlen(body);

	n += pair(params + n, "REQUEST_URI", 8, 'p');
	n += pair(params + n, "HTTP_X_FILL", vlen, 'x');
	begin(o, 1, 1, 0);
	for (size_t off = 0; off < n; off += 32768)
		record(o, 4, 1, params + off, n - off < 32768 ? n - off : 32768,
		    (8 - (n - off < 32768 ? n - off : 32768) % 8) % 8);
	record(o, 4, 1, NULL, 0, 0);
	if (blen)
		record(o, 5, 1, body, blen, (8 - blen % 8) % 8);
	record(o, 5, 1, NULL, 0, 0);
}

static enum guard_verdict
check(const struct bytes *o, size_t len, struct guard_request *req, const char **why)
{
	struct fcgi_guard g = { 0 };

	*why = NULL;
	return fcgi_guard_check(&g, o->b, len, req, why);
}

static void
refused(const struct bytes *o, const char *want, const char *what)
{
	struct guard_request req;
	const char *why;

	is_int(check(o, o->n, &req, &why), GUARD_REFUSE, "%s: refused", what);
	is_str(why, want, "%s: the reason", what);
}

/* --- sections --- */

static void
test_nginx_requests(void)
{
	static struct bytes o, two;
	struct fcgi_guard g = { 0 };
	struct guard_request req, whole;
	const char *why;
	enum guard_verdict v = GUARD_MORE;
	size_t len;

	nginx_request(&o, 100, "key=a");
	is_int(check(&o, o.n, &whole, &why), GUARD_REQUEST, "an nginx request passes");
	is_int((long long)whole.used, (long long)o.n, "... all of its bytes are its own");
	is_int((long long)whole.feed, (long long)o.n, "... and go to libfcgi (no last padding)");
	for (len = 1; len <= o.n && v == GUARD_MORE; len++)
		v = fcgi_guard_check(&g, o.b, len, &req, &why);
	is_int(v, GUARD_REQUEST, "a byte at a time: it passes");
	is_int((long long)len - 1, (long long)o.n, "... with its last byte");
	is_int((long long)req.used, (long long)whole.used, "... the same request");

	nginx_request(&two, 100, "");
	put(&two, o.b, o.n);
	is_int(check(&two, two.n, &req, &why), GUARD_REQUEST, "two requests: the first passes");
	ok(req.used < two.n, "... and leaves the second's bytes");

	o.n = 0;
	nginx_request(&o, FCGI_PARAM_MAX - 11, "");
	is_int(check(&o, o.n, &req, &why), GUARD_REQUEST,
	    "a param of FCGI_PARAM_MAX (name and value) passes");
}

static void
test_refused(void)
{
	static struct bytes o;
	unsigned char p[64], big[64];
	size_t n;

	o.n = 0;
	begin(&o, 1, 1, 0);
	/* libfcgi 2.4.2 aborts on these 24 bytes (tests/fuzz/regress) */
	memcpy(p, "\xc0\x00\x00\x00\xc0\x00\x00\x00", 8);
	record(&o, 4, 1, p, 8, 0);
	refused(&o, "a param over 16384 bytes", "a pair that claims 2 GiB, before its bytes");

	o.n = 0;
	record(&o, 9, 0, "\x0e\x00" "FCGI_MAX_CONNS", 16, 0);
	refused(&o, "a management record", "FCGI_GET_VALUES");
	o.n = 0;
	record(&o, 11, 0, NULL, 0, 0);
	refused(&o, "a management record", "an unknown management record (libfcgi leaks 48 bytes)");

	o.n = 0;
	begin(&o, 1, 1, 8);
	refused(&o, "padding after FCGI_BEGIN_REQUEST", "padding on BEGIN (libfcgi reads it as a header)");
	o.n = 0;
	begin(&o, 1, 1, 0);
	record(&o, 4, 1, NULL, 0, 8);
	refused(&o, "padding after the last FCGI_PARAMS", "padding on the last PARAMS");

	o.n = 0;
	begin(&o, 1, 3, 0);
	refused(&o, "a role other than responder", "the filter role");
	o.n = 0;
	record(&o, 4, 1, NULL, 0, 0);
	refused(&o, "a request without FCGI_BEGIN_REQUEST", "params first");
	o.n = 0;
	begin(&o, 1, 1, 0);
	begin(&o, 2, 1, 0);
	refused(&o, "a record of another request (multiplexing)", "a second BEGIN");
	o.n = 0;
	begin(&o, 1, 1, 0);
	record(&o, 5, 1, "x", 1, 7);
	refused(&o, "a record other than FCGI_PARAMS in the params", "stdin before the params end");
	o.n = 0;
	begin(&o, 1, 1, 0);
	o.b[o.n - 16] = 2;
	refused(&o, "not FastCGI version 1", "version 2");

	o.n = 0;
	begin(&o, 1, 1, 0);
	n = pair(big, "HTTP_X", 40, 'x');
	record(&o, 4, 1, big, n - 20, 0);	/* the pair's last 20 bytes missing */
	record(&o, 4, 1, NULL, 0, 0);
	refused(&o, "a params pair cut short", "a pair cut short by the end of the params");

	o.n = 0;
	nginx_request(&o, FCGI_PARAM_MAX - 10, "");
	refused(&o, "a param over 16384 bytes", "a param one byte over FCGI_PARAM_MAX");
}

static void
test_sizes(void)
{
	static struct bytes o;
	static unsigned char chunk[65528];
	struct guard_request req;
	const char *why;

	/* 200 MiB of params: the first record's header is enough */
	o.n = 0;
	begin(&o, 1, 1, 0);
	put(&o, "\x01\x04\x00\x01\xff\xf8\x00\x00", 8);	/* 65528 bytes to come */
	is_int(check(&o, o.n, &req, &why), GUARD_REFUSE,
	    "200 MiB of params: refused by the header of their first record");
	is_str(why, "params over 49152 bytes", "... the reason");

	/* a body over BODY_MAX */
	o.n = 0;
	begin(&o, 1, 1, 0);
	record(&o, 4, 1, NULL, 0, 0);
	for (int i = 0; i < 2; i++)
		record(&o, 5, 1, chunk, 32768, 0);
	record(&o, 5, 1, chunk, 8, 0);
	refused(&o, "a body over 65536 bytes", "a body one record over BODY_MAX");

	/* a body in tiny records: over the bytes a request may take */
	o.n = 0;
	begin(&o, 1, 1, 0);
	record(&o, 4, 1, NULL, 0, 0);
	while (o.n <= FCGI_REQUEST_BYTES_MAX)
		record(&o, 5, 1, "x", 1, 7);
	refused(&o, "a request over 131072 bytes of records", "a body sent a byte a record");
}

static void
test_cut(void)
{
	static struct bytes o;
	struct fcgi_guard g = { 0 };
	struct guard_request req;
	unsigned char end[FCGI_HEADER_LEN];
	const char *why;

	nginx_request(&o, 10, "key=abcdefgh");
	o.n -= 8 + 5;			/* the end of stdin, and part of the body record */
	is_int(fcgi_guard_check(&g, o.b, o.n, &req, &why), GUARD_MORE, "a body cut short: more wanted");
	ok(fcgi_guard_cut(&g, &req, end), "the peer closes: the request is cut");
	ok(req.feed < o.n && end[1] == 5 && end[5] == 0, "... at its last whole record, "
	    "with an empty FCGI_STDIN after it");

	memset(&g, 0, sizeof g);
	o.n = 0;
	begin(&o, 1, 1, 0);
	is_int(fcgi_guard_check(&g, o.b, o.n, &req, &why), GUARD_MORE, "BEGIN alone: more wanted");
	ok(!fcgi_guard_cut(&g, &req, end), "the peer closes before the params end: nothing to answer");
}

int
main(void)
{
	test_nginx_requests();
	test_refused();
	test_sizes();
	test_cut();
	return done_testing();
}
