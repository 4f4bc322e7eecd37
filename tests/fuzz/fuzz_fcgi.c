/*
 * fuzz_fcgi.c - a FastCGI connection as a peer sends it, read as a worker
 * reads it: fcgi_guard.c checks the records, and each request it passes
 * goes to libfcgi through a feed as worker.c's (worker_feed_request:
 * FCGX_Accept_r, then worker_read_request: the params it uses, read_body,
 * drain_stdin), then its parameters are parsed.
 *
 * Input: the bytes the peer sends on one connection, then it closes its
 * sending side. As conn.c, requests are taken from the front while the
 * guard passes them, and at the end the peer's close may cut the last
 * one (fcgi_guard_cut: its params came whole, its body did not).
 *
 * libfcgi is the system's (not instrumented: no coverage inside it, but
 * ASan's interceptors check what it copies, and crashes are crashes). It
 * used to abort on a 24-byte params pair and to leak on management
 * records (tests/fuzz/regress/fuzz_fcgi/): the guard must keep every such
 * input away from it, so here any abort or leak in libfcgi is a guard bug.
 *
 * Checks: the guard's verdict does not depend on how the bytes arrive
 * (all at once, or one at a time as from a trickling peer); libfcgi takes
 * every request the guard passes and reads exactly the bytes it was given
 * (the feed is empty afterwards); the parameter invariants of fuzz.h; a
 * body is NUL-terminated at body_len, at most BODY_MAX bytes unless
 * refused unread (then empty); body_incomplete only when less than
 * declared came.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "fuzz.h"

static int feed[2] = { -1, -1 };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (FCGX_Init() != 0 || !worker_feed_open(feed))
		abort();
	return 0;
}

static void
check_request(const struct request *req, FCGX_Request *fr)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
	long declared = cl ? strtol(cl, NULL, 10) : 0;

	fuzz_check(req->body != NULL, "no body buffer");
	fuzz_check(req->method != NULL, "no method");
	if (req->body_len > BODY_MAX || FCGX_GetParam("CASQ_BODY_REFUSED", fr->envp)) {
		fuzz_check(req->body[0] == '\0', "a refused body was read");
		fuzz_check(!req->body_incomplete, "a refused body is incomplete");
		return;
	}
	fuzz_check(req->body[req->body_len] == '\0', "body not terminated");
	fuzz_check(declared <= 0 || req->body_len <= (size_t)declared,
	    "read %zu bytes of a %ld-byte body", req->body_len, declared);
	fuzz_check(req->body_incomplete == (declared > 0 && req->body_len < (size_t)declared),
	    "incomplete %d with %zu of %ld bytes", req->body_incomplete, req->body_len, declared);
}

/* What the guard passed, read by libfcgi and worker.c as a worker does. */
static void
serve(const struct conn_request *r)
{
	static struct request req;
	FCGX_Request fr;
	char rest;

	memset(&req, 0, sizeof req);
	fuzz_check(worker_feed_request(feed, &fr, r), "libfcgi refused a request the guard passed");
	fuzz_check(worker_read_request(&fr, &req), "the request's stdin was not read to its end");
	fuzz_check(recv(feed[0], &rest, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN,
	    "libfcgi left bytes of the request in the feed");
	check_request(&req, &fr);
	if (req.body_len <= BODY_MAX && !req.body_incomplete) {
		(void)request_parse_params(&req);
		fuzz_check_params(&req);
	}
	request_free(&req);
	free(req.body);
	FCGX_Free(&fr, 0);
}

/* The guard over data[0, size) with the bytes arriving one at a time:
 * must say what it says of them all at once. */
static enum guard_verdict
check_trickled(const unsigned char *data, size_t size, enum guard_verdict whole,
    const struct guard_request *gr)
{
	struct fcgi_guard g = { 0 };
	struct guard_request got;
	enum guard_verdict v = GUARD_MORE;
	const char *why;

	for (size_t len = 1; len <= size && v == GUARD_MORE; len++)
		v = fcgi_guard_check(&g, data, len, &got, &why);
	fuzz_check(v == whole, "verdict %d one byte at a time, %d at once", v, whole);
	if (v == GUARD_REQUEST)
		fuzz_check(got.feed == gr->feed && got.used == gr->used,
		    "request of %zu/%zu bytes one byte at a time, %zu/%zu at once",
		    got.feed, got.used, gr->feed, gr->used);
	return v;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	for (;;) {
		struct fcgi_guard g = { 0 };
		struct conn_request r = { .bytes = data };
		const char *why;
		enum guard_verdict v = fcgi_guard_check(&g, data, size, &r.gr, &why);

		check_trickled(data, size, v, &r.gr);
		if (v == GUARD_REFUSE)
			return 0;
		if (v == GUARD_MORE) {
			r.cut = fcgi_guard_cut(&g, &r.gr, r.end_stdin);
			if (r.cut)
				serve(&r);
			return 0;
		}
		serve(&r);
		data += r.gr.used;
		size -= r.gr.used;
	}
}
