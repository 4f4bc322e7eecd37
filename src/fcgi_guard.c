/*
 * fcgi_guard.c - the FastCGI records of one request, checked before
 * libfcgi reads any of them.
 *
 * libfcgi parses what it reads without limits (tests/fuzz/README.md: a
 * 24-byte params pair aborts it, an unknown management record leaks 48
 * bytes, a 200 MiB param is allocated whole and the memory stays). So a
 * worker reads each connection itself (conn.c) and hands libfcgi only a
 * request this checker passed: what nginx sends for one request, in order,
 *
 *   FCGI_BEGIN_REQUEST (responder role), FCGI_PARAMS..., an empty
 *   FCGI_PARAMS, FCGI_STDIN..., an empty FCGI_STDIN,
 *
 * all of one request id, every params pair complete and within
 * FCGI_PARAM_MAX, the params within FCGI_PARAMS_MAX, the body within
 * BODY_MAX, the whole within FCGI_REQUEST_BYTES_MAX. Anything else
 * (management records, other types or ids, a second BEGIN) is refused
 * with a reason for the log, and libfcgi never sees it.
 *
 * The check is incremental: the state keeps where the first record not
 * yet checked starts, so bytes that arrive one at a time are looked at
 * about once each. A record's header is checked as soon as it is there
 * (200 MiB of params are refused by their first header), its content
 * once the record is complete, a params pair's lengths as soon as its
 * record is (a pair that claims 1 GiB is refused by its first record).
 */
#include <string.h>

#include "daemon.h"
#include "http.h"

#define FCGI_VERSION_1		1
#define FCGI_BEGIN_REQUEST	1
#define FCGI_PARAMS		4
#define FCGI_STDIN		5
#define FCGI_RESPONDER		1

enum { PHASE_BEGIN, PHASE_PARAMS, PHASE_STDIN };

struct record {
	unsigned type, id;
	size_t   clen, plen;
};

static struct record
record_at(const unsigned char *p)
{
	return (struct record){
		.type = p[1],
		.id = (unsigned)p[2] << 8 | p[3],
		.clen = (size_t)p[4] << 8 | p[5],
		.plen = p[6],
	};
}

/* --- the params pairs -------------------------------------------------- */

/* The params as libfcgi reads them: one byte string across the records
 * before end (all with content: an empty one ends the params). */
struct params_reader {
	const unsigned char *buf;
	size_t pos, end;
	size_t left, pad;	/* of the record pos is in */
};

/* Into the next record if the current one is used up; false at end. */
static bool
params_enter(struct params_reader *pr)
{
	struct record r;

	if (pr->left > 0)
		return true;
	if (pr->pos >= pr->end)
		return false;
	r = record_at(pr->buf + pr->pos);
	pr->pos += FCGI_HEADER_LEN;
	pr->left = r.clen;
	pr->pad = r.plen;
	return true;
}

/* Skip n bytes of content; returns how many could not be (at end). */
static size_t
params_skip(struct params_reader *pr, size_t n)
{
	while (n > 0 && params_enter(pr)) {
		size_t k = n < pr->left ? n : pr->left;

		pr->pos += k;
		pr->left -= k;
		n -= k;
		if (pr->left == 0)
			pr->pos += pr->pad;
	}
	return n;
}

static bool
params_byte(struct params_reader *pr, unsigned *b)
{
	if (!params_enter(pr))
		return false;
	*b = pr->buf[pr->pos];
	return params_skip(pr, 1) == 0;
}

/* A length as FastCGI writes it: one byte, or four with the top bit set. */
static bool
params_length(struct params_reader *pr, size_t *len)
{
	unsigned b[4];

	if (!params_byte(pr, &b[0]))
		return false;
	if (!(b[0] & 0x80)) {
		*len = b[0];
		return true;
	}
	for (int i = 1; i < 4; i++)
		if (!params_byte(pr, &b[i]))
			return false;
	*len = (size_t)(b[0] & 0x7f) << 24 | (size_t)b[1] << 16 |
	    (size_t)b[2] << 8 | b[3];
	return true;
}

/* Check the pairs in the params records before end, from where the last
 * call stopped (g->pairs): each pair's lengths within FCGI_PARAM_MAX as
 * soon as they are there (a pair that claims 1 GiB is refused by its
 * first 8 bytes), and, at the params' end (final), every pair whole.
 * That is what libfcgi's ReadParams needs to allocate no more than a
 * pair's own bytes and never fail. */
static const char *
params_check(struct fcgi_guard *g, const unsigned char *buf, size_t end, bool final)
{
	struct params_reader pr = { .buf = buf, .pos = g->pairs.pos, .end = end,
	    .left = g->pairs.left, .pad = g->pairs.pad };
	size_t skip = g->pairs.skip, name, value;

	while ((skip = params_skip(&pr, skip)) == 0 && params_enter(&pr)) {
		struct params_reader pair = pr;		/* where this pair starts */

		if (!params_length(&pr, &name) || !params_length(&pr, &value)) {
			pr = pair;	/* its lengths are not all here yet */
			break;
		}
		if (name > FCGI_PARAM_MAX || value > FCGI_PARAM_MAX - name)
			return "a param over 16384 bytes";
		skip = name + value;
	}
	if (final && (skip > 0 || params_enter(&pr)))
		return "a params pair cut short";
	g->pairs.pos = pr.pos;
	g->pairs.left = pr.left;
	g->pairs.pad = pr.pad;
	g->pairs.skip = skip;
	return NULL;
}

/* --- records ----------------------------------------------------------- */

/* What the header at p may not be at this point of the request: NULL if
 * it may follow what came before. */
static const char *
header_refused(const struct fcgi_guard *g, const unsigned char *p)
{
	struct record r = record_at(p);

	if (p[0] != FCGI_VERSION_1)
		return "not FastCGI version 1";
	if (r.id == 0)
		return "a management record";	/* nginx sends none */
	if (g->phase == PHASE_BEGIN)
		return r.type != FCGI_BEGIN_REQUEST ? "a request without FCGI_BEGIN_REQUEST" :
		    r.clen != 8 ? "an FCGI_BEGIN_REQUEST of the wrong length" :
		    /* libfcgi would read the padding as the next header */
		    r.plen != 0 ? "padding after FCGI_BEGIN_REQUEST" : NULL;
	if (r.id != g->id)
		return "a record of another request (multiplexing)";
	if (g->phase == PHASE_PARAMS)
		return r.type != FCGI_PARAMS ? "a record other than FCGI_PARAMS in the params" :
		    g->params + r.clen > FCGI_PARAMS_MAX ? "params over 49152 bytes" :
		    r.clen == 0 && r.plen != 0 ? "padding after the last FCGI_PARAMS" : NULL;
	return r.type != FCGI_STDIN ? "a record other than FCGI_STDIN after the params" :
	    g->body + r.clen > BODY_MAX ? "a body over 65536 bytes" : NULL;
}

enum guard_verdict
fcgi_guard_check(struct fcgi_guard *g, const unsigned char *buf, size_t len,
    struct guard_request *req, const char **why)
{
	while (len - g->off >= FCGI_HEADER_LEN) {
		const unsigned char *p = buf + g->off;
		struct record r = record_at(p);
		size_t end = g->off + FCGI_HEADER_LEN + r.clen + r.plen;

		if ((*why = header_refused(g, p)) != NULL)
			return GUARD_REFUSE;
		if (end > FCGI_REQUEST_BYTES_MAX) {
			*why = "a request over 131072 bytes of records";
			return GUARD_REFUSE;
		}
		if (end > len)
			return GUARD_MORE;
		if (g->phase == PHASE_BEGIN) {
			if ((p[8] << 8 | p[9]) != FCGI_RESPONDER) {
				*why = "a role other than responder";
				return GUARD_REFUSE;
			}
			g->id = r.id;
			g->phase = PHASE_PARAMS;
			g->pairs.pos = end;
		} else if (g->phase == PHASE_PARAMS) {
			/* the pairs in the records so far; all whole at the end */
			if ((*why = params_check(g, buf, r.clen ? end : g->off,
			    r.clen == 0)) != NULL)
				return GUARD_REFUSE;
			g->params += r.clen;
			if (r.clen == 0)
				g->phase = PHASE_STDIN;
		} else if (r.clen == 0) {
			/* libfcgi stops at this header: the padding is ours */
			req->feed = g->off + FCGI_HEADER_LEN;
			req->used = end;
			return GUARD_REQUEST;
		} else {
			g->body += r.clen;
		}
		g->off = end;
	}
	return GUARD_MORE;
}

bool
fcgi_guard_cut(const struct fcgi_guard *g, struct guard_request *req,
    unsigned char end_stdin[FCGI_HEADER_LEN])
{
	if (g->phase != PHASE_STDIN)
		return false;
	req->feed = req->used = g->off;
	memset(end_stdin, 0, FCGI_HEADER_LEN);
	end_stdin[0] = FCGI_VERSION_1;
	end_stdin[1] = FCGI_STDIN;
	end_stdin[2] = (unsigned char)(g->id >> 8);
	end_stdin[3] = (unsigned char)g->id;
	return true;
}
