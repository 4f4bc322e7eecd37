/*
 * fuzz_route.c - whole requests through the route table (route_request)
 * into a real LMDB environment in a temporary directory, with a real
 * keyring read from a keys file: every route, every parameter, request
 * ids, expiry as the clock moves.
 *
 * Input: up to 16 requests separated by a line "=". Each is
 *
 *	METHOD REQUEST-URI
 *	header lines, one letter, a space, the value:
 *	  c Content-Type       k X-Api-Key ("a", "b" or "c": the test keys;
 *	                         c has scope=read)
 *	  a Authorization ("a", "b" or "c": "Bearer " and that key)
 *	  i Idempotency-Key    t seconds the clock moves on first (0-10^9)
 *	  l the Content-Length nginx declared (a larger one than the body
 *	    is incomplete; above 64 KiB the body is refused unread)
 *	an empty line, then the body.
 *
 * A request with neither k nor a sends key a, so most inputs get past
 * the key check; "k -" sends none. Each input starts from empty
 * databases, so an input replays the same way alone.
 *
 * Checks: no request ends in 500 Internal Error; every answer is one
 * JSON object with the status and reason of casq's error table (or 200
 * OK; a 200 of /metrics is lines of Prometheus text instead) and no
 * write is left pending (writes are not deferred here); a write retried
 * with its request id gets its first answer, byte for byte.
 * FUZZ_VERBOSE=1 in the environment prints each request and its answer.
 */
#include <lmdb.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "route.h"

#define REQUESTS_MAX	16
#define T0		1764194281000LL		/* 2025-11-26T21:58:01Z */
#define ADVANCE_MAX_S	1000000000LL

static struct app app;
static bool verbose;	/* FUZZ_VERBOSE=1: print each request and answer */
static char key_a[80], key_b[80], key_c[80];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char why[256], line_a[256], line_b[256], line_c[256], dir[300], keys[300];
	struct keyring *kr;
	struct store_config cfg = { .dir = dir, .map_size = 64UL << 20 };
	FILE *f;

	snprintf(dir, sizeof dir, "%s/db", fuzz_tmpdir());
	snprintf(keys, sizeof keys, "%s/casq.keys", fuzz_tmpdir());
	keyring_mint("alpha", key_a, line_a);
	keyring_mint("beta", key_b, line_b);
	keyring_mint("gamma", key_c, line_c);
	if ((f = fopen(keys, "w")) == NULL)
		abort();
	/* no rate limits (app.rl NULL): they follow the real clock */
	fprintf(f, "# fuzz keys\n%s\n%s\n%s scope=read\n", line_a, line_b, line_c);
	fclose(f);
	if ((kr = keyring_load(keys, why, sizeof why)) == NULL ||
	    store_open(&cfg, &app.store, why, sizeof why) != 0) {
		fprintf(stderr, "fuzz_route: %s\n", why);
		abort();
	}
	app.keys = kr;
	/* Durability is not under test: no fsync per commit. */
	mdb_env_set_flags(app.store->env, MDB_NOSYNC, 1);
	app.idem_ttl_ms = 3600 * 1000;
	log_threshold = LOG_ERROR;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	return 0;
}

/* Empty every named database but the schema's, whatever tables exist. */
static void
store_reset(void)
{
	char names[64][128];
	size_t n = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_dbi main_dbi, dbi;
	MDB_val k, v;

	if (mdb_txn_begin(app.store->env, NULL, 0, &txn) != 0 ||
	    mdb_dbi_open(txn, NULL, 0, &main_dbi) != 0 ||
	    mdb_cursor_open(txn, main_dbi, &cur) != 0)
		abort();
	while (n < 64 && mdb_cursor_get(cur, &k, &v, n ? MDB_NEXT : MDB_FIRST) == 0)
		if (k.mv_size < sizeof names[0]) {
			memcpy(names[n], k.mv_data, k.mv_size);
			names[n++][k.mv_size] = '\0';
		}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], "meta") != 0 &&
		    mdb_dbi_open(txn, names[i], 0, &dbi) == 0 &&
		    mdb_drop(txn, dbi, 0) != 0)
			abort();
	if (mdb_txn_commit(txn) != 0)
		abort();
}

/* The next line of [*s, end): its text and length; *s moves past it. */
static bool
next_line(const char **s, const char *end, const char **line, size_t *len)
{
	const char *nl;

	if (*s >= end)
		return false;
	nl = memchr(*s, '\n', (size_t)(end - *s));
	*line = *s;
	*len = nl ? (size_t)(nl - *s) : (size_t)(end - *s);
	*s = nl ? nl + 1 : end;
	return true;
}

static char *
strdup_n(const char *s, size_t n)
{
	return xstrndup(s, n);
}

/* A 200 of /metrics: Prometheus text, every line a HELP, a TYPE or a
 * casq_ sample, none empty, the last without its newline (the worker
 * adds it as it sends every answer). */
static void
check_exposition(const struct request *req, const struct response *res)
{
	const char *s = res->body.data, *end = s + res->body.len, *line;
	size_t len;

	fuzz_check(res->status == 200 && strcmp(res->content_type, METRICS_CONTENT_TYPE) == 0,
	    "%s %s: %d with Content-Type %s", req->method, req->uri, res->status,
	    res->content_type);
	fuzz_check(res->body.len > 0 && end[-1] != '\n', "%s %s: the exposition's end",
	    req->method, req->uri);
	while (next_line(&s, end, &line, &len))
		fuzz_check(len > 0 && (strncmp(line, "# HELP ", 7) == 0 ||
		    strncmp(line, "# TYPE ", 7) == 0 || strncmp(line, "casq_", 5) == 0),
		    "%s %s: not an exposition line: %.*s", req->method, req->uri, (int)len, line);
}

static void
check_response(const struct request *req, const struct response *res)
{
	bool known = res->status == 200 && strcmp(res->reason, "OK") == 0;

	for (int e = 1; e < E__COUNT && !known; e++)
		known = err_status(e) == res->status && strcmp(err_reason(e), res->reason) == 0;
	fuzz_check(known, "%s %s: status %d %s is in no table row", req->method,
	    req->uri, res->status, res->reason ? res->reason : "(null)");
	fuzz_check(res->status != 500, "%s %s: 500 %s", req->method, req->uri, res->body.data);
	fuzz_check(res->pending == NULL, "%s %s: a write left pending", req->method, req->uri);
	if (res->content_type != NULL) {	/* /metrics: the exposition's lines */
		check_exposition(req, res);
		return;
	}
	fuzz_check(res->body.len > 1 && res->body.data[0] == '{' &&
	    res->body.data[res->body.len - 1] == '}' &&
	    memchr(res->body.data, '\n', res->body.len) == NULL &&
	    fuzz_json_valid(res->body.data, res->body.len),
	    "%s %s: answer is not one line of JSON: %s", req->method, req->uri,
	    res->body.data ? res->body.data : "(none)");
	fuzz_check((res->allow != NULL) == (res->status == 405), "Allow header with %d", res->status);
}

/*
 * Request ids: the first 200 answer of a write with a request id is the
 * answer of every retry within the id's lifetime (a retry that differs
 * in its parameters is 422, never 200). Remembered per input.
 */
static struct {
	char   *id;		/* "key-name/id", as route.c scopes it */
	char   *body;
	int64_t at;
} answers[REQUESTS_MAX];
static size_t nanswers;

static bool
path_is_write(const char *path)
{
	static const char *const writes[] = { "/enqueue", "/claim", "/pop",
	    "/ack", "/release", "/remove", "/set", "/delete", "/incr" };
	size_t n = strlen(path);

	if (strncmp(path, "/v1/once/", 9) == 0)
		return true;
	for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
		size_t w = strlen(writes[i]);

		if (n > w && strcmp(path + n - w, writes[i]) == 0)
			return true;
	}
	return false;
}

static void
check_replay(const struct request *req, const struct response *res)
{
	if (res->status != 200 || req->request_id == NULL || !path_is_write(req->path))
		return;
	for (size_t i = 0; i < nanswers; i++)
		if (strcmp(answers[i].id, req->request_id) == 0) {
			if (req->now - answers[i].at < app.idem_ttl_ms)
				fuzz_check(strcmp(answers[i].body, res->body.data) == 0,
				    "%s %s: request id %s answered %s, then %s", req->method,
				    req->uri, req->request_id, answers[i].body, res->body.data);
			return;
		}
	if (nanswers < REQUESTS_MAX) {
		answers[nanswers].id = xstrndup(req->request_id, strlen(req->request_id));
		answers[nanswers].body = xstrndup(res->body.data, res->body.len);
		answers[nanswers++].at = req->now;
	}
}

static void
answers_clear(void)
{
	for (size_t i = 0; i < nanswers; i++) {
		free(answers[i].id);
		free(answers[i].body);
	}
	nanswers = 0;
}

/* Run one request block [s, end) at *now. */
static void
run_one(const char *s, const char *end, int64_t *now)
{
	struct request req = { 0 };
	struct response res = { 0 };
	const char *line, *sp;
	char *method = NULL, *uri = NULL, *hdr[256] = { 0 };
	char bearer[96];
	size_t len, declared = 0;
	bool keyed = false, has_declared = false;

	if (!next_line(&s, end, &line, &len))
		return;
	sp = memchr(line, ' ', len);
	method = strdup_n(line, sp ? (size_t)(sp - line) : len);
	uri = sp ? strdup_n(sp + 1, len - (size_t)(sp + 1 - line)) : strdup_n("", 0);
	while (next_line(&s, end, &line, &len) && len > 0) {
		unsigned char c = (unsigned char)line[0];
		const char *val = len > 1 ? line + 2 : line + len;
		size_t vlen = len > 1 ? len - 2 : 0;

		free(hdr[c]);
		hdr[c] = strdup_n(val, vlen);
		if (c == 'k' || c == 'a')
			keyed = true;
	}
	req.method = method;
	req.uri = uri;
	req.content_type = hdr['c'];
	req.idempotency_key = hdr['i'];
	if (hdr['k'])
		req.api_key = strcmp(hdr['k'], "a") == 0 ? key_a :
		    strcmp(hdr['k'], "b") == 0 ? key_b :
		    strcmp(hdr['k'], "c") == 0 ? key_c :
		    strcmp(hdr['k'], "-") == 0 ? NULL : hdr['k'];
	else if (!keyed)
		req.api_key = key_a;
	if (hdr['a']) {
		if (strcmp(hdr['a'], "a") == 0 || strcmp(hdr['a'], "b") == 0 ||
		    strcmp(hdr['a'], "c") == 0) {
			snprintf(bearer, sizeof bearer, "Bearer %s", hdr['a'][0] == 'a' ? key_a :
			    hdr['a'][0] == 'b' ? key_b : key_c);
			req.authorization = bearer;
		} else {
			req.authorization = hdr['a'];
		}
	}
	if (hdr['t']) {
		long long t = strtoll(hdr['t'], NULL, 10);
		*now += (t > 0 && t < ADVANCE_MAX_S ? t : 0) * 1000;
	}
	if (hdr['l']) {
		long long l = strtoll(hdr['l'], NULL, 10);
		has_declared = l > 0;
		declared = l > 0 ? (size_t)(l < (1LL << 40) ? l : 1LL << 40) : 0;
	}
	req.now = *now;
	/* The body as read_body leaves it. */
	len = (size_t)(end - s);
	if (has_declared && declared > BODY_MAX) {
		req.body = xstrndup("", 0);
		req.body_len = declared;
	} else {
		if (has_declared && declared < len)
			len = declared;		/* what follows is not read */
		req.body = xstrndup(s, len);
		req.body_len = len;
		req.body_incomplete = has_declared && len < declared;
	}

	route_request(&app, &req, &res);
	if (verbose)
		fprintf(stderr, "%s %s -> %d %s\n", req.method, req.uri, res.status,
		    res.body.data ? res.body.data : "");
	check_response(&req, &res);
	check_replay(&req, &res);
	if (res.status == 200 || res.status == 409 || res.status == 422)
		fuzz_check_params(&req);
	response_free(&res);
	request_free(&req);
	free(req.body);
	for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++)
		free(hdr[i]);
	free(uri);
	free(method);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *s = (const char *)data, *end = s + size;
	int64_t now = T0;

	store_reset();
	for (int i = 0; i < REQUESTS_MAX && s < end; i++) {
		const char *sep = memmem(s, (size_t)(end - s), "\n=\n", 3);
		const char *stop = sep ? sep : end;

		run_one(s, stop, &now);
		s = sep ? sep + 3 : end;
	}
	answers_clear();
	return 0;
}
