/*
 * route.c - the route table and the order of checks every request goes
 * through: route (404), method (405), API key (401), name (400), body
 * (413/415/400), request id (400), then the handler. Adding a route is
 * adding a row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "store.h"

#define REQUEST_ID_MAX	200	/* + key name fits LMDB's 511-byte keys */

struct route {
	const char   *pattern;	/* a "*" segment is the queue, namespace or scope */
	route_fn     *fn;
	bool          auth;
	enum casq_err bad_name;	/* the error for an invalid "*" segment */
};

static const struct route routes[] = {
	{ "/healthz",              route_healthz,     false, E_OK },
	{ "/v1/ping",              route_ping,        true,  E_OK },
	{ "/v1/queues",            route_queue_list,  true,  E_OK },
	{ "/v1/queues/*",          route_queue_stats, true,  E_BAD_QUEUE },
	{ "/v1/queues/*/enqueue",  route_enqueue,     true,  E_BAD_QUEUE },
	{ "/v1/queues/*/claim",    route_claim,       true,  E_BAD_QUEUE },
	{ "/v1/queues/*/ack",      route_ack,         true,  E_BAD_QUEUE },
	{ "/v1/queues/*/release",  route_release,     true,  E_BAD_QUEUE },
	{ "/v1/queues/*/remove",   route_remove,      true,  E_BAD_QUEUE },
	{ "/v1/queues/*/status",   route_status,      true,  E_BAD_QUEUE },
	{ "/v1/kv/*",              route_kv_stats,    true,  E_BAD_NAMESPACE },
	{ "/v1/kv/*/get",          route_kv_get,      true,  E_BAD_NAMESPACE },
	{ "/v1/kv/*/set",          route_kv_set,      true,  E_BAD_NAMESPACE },
	{ "/v1/kv/*/delete",       route_kv_delete,   true,  E_BAD_NAMESPACE },
	{ "/v1/kv/*/incr",         route_kv_incr,     true,  E_BAD_NAMESPACE },
	{ "/v1/once/*",            route_once,        true,  E_BAD_SCOPE },
};

static bool
name_valid(const char *s, size_t n)
{
	if (n == 0 || n > QUEUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || !strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789._-", s[i]))
			return false;
	return true;
}

/* Segment-by-segment match; *star gets the "*" segment. */
static bool
route_match(const char *pattern, const char *path, const char **star,
    size_t *star_len)
{
	while (*pattern && *path) {
		if (*pattern == '*') {
			size_t n = strcspn(path, "/");
			if (n == 0)
				return false;
			*star = path;
			*star_len = n;
			pattern++;
			path += n;
		} else if (*pattern++ != *path++) {
			return false;
		}
	}
	return *pattern == '\0' && *path == '\0';
}

/* The path part of REQUEST_URI without one trailing slash. */
static bool
request_path(struct request *req)
{
	const char *uri = req->uri ? req->uri : "";
	size_t n = strcspn(uri, "?");

	if (n >= sizeof req->path)
		return false;
	if (n > 1 && uri[n - 1] == '/')
		n--;
	memcpy(req->path, uri, n);
	req->path[n] = '\0';
	return true;
}

static const struct route *
route_find(struct request *req, enum casq_err *name_err)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const char *star = NULL;
		size_t star_len = 0;

		if (!route_match(routes[i].pattern, req->path, &star, &star_len))
			continue;
		*name_err = E_OK;
		if (star != NULL && !name_valid(star, star_len))
			*name_err = routes[i].bad_name;
		else if (star != NULL) {
			memcpy(req->name, star, star_len);
			req->name[star_len] = '\0';
		}
		return &routes[i];
	}
	return NULL;
}

static int
param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

/* What makes two requests "the same" for a request id: the path and every
 * parameter except request_id itself, in name order. */
static void
request_fingerprint(struct request *req)
{
	struct buf b = { 0 };

	qsort(req->params, req->nparams, sizeof *req->params, param_cmp);
	buf_append(&b, req->path, strlen(req->path) + 1);
	for (size_t i = 0; i < req->nparams; i++) {
		if (strcmp(req->params[i].name, "request_id") == 0)
			continue;
		buf_append(&b, req->params[i].name, strlen(req->params[i].name) + 1);
		buf_append(&b, req->params[i].value, req->params[i].len + 1);
	}
	sha256(b.data, b.len, req->fingerprint);
	buf_free(&b);
}

/* request_id and Idempotency-Key name the same thing; ids are scoped by
 * the API key's name so tenants never collide. */
static enum casq_err
request_id_parse(struct request *req)
{
	const char *id = NULL, *hdr = req->idempotency_key;
	enum casq_err err;
	size_t n;

	if ((err = param_text(req, "request_id", REQUEST_ID_MAX, E_BAD_REQUEST_ID, &id)) != E_OK)
		return err;
	if (hdr != NULL && *hdr != '\0') {
		if (id != NULL && strcmp(id, hdr) != 0)
			return E_BAD_REQUEST_ID;
		if (strlen(hdr) > REQUEST_ID_MAX || !utf8_valid(hdr, strlen(hdr)))
			return E_BAD_REQUEST_ID;
		id = hdr;
	}
	if (id == NULL)
		return E_OK;
	if (*id == '\0')
		return E_BAD_REQUEST_ID;
	n = strlen(req->key_name) + 1 + strlen(id) + 1;
	req->request_id = xmalloc(n);
	snprintf(req->request_id, n, "%s/%s", req->key_name, id);
	request_fingerprint(req);
	return E_OK;
}

void
route_request(struct app *app, struct request *req, struct response *res)
{
	const struct route *r;
	enum casq_err err = E_NO_ROUTE, name_err = E_OK;

	if (!request_path(req) || (r = route_find(req, &name_err)) == NULL)
		goto fail;
	err = E_METHOD;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0)
		goto fail;
	if (r->auth && (err = request_authenticate(req, app->keys)) != E_OK)
		goto fail;
	if ((err = name_err) != E_OK)
		goto fail;
	if (req->body_len > BODY_MAX) {
		err = E_BODY_TOO_LARGE;
		goto fail;
	}
	if (req->body_incomplete) {	/* never act on a cut payload */
		err = E_INCOMPLETE_BODY;
		goto fail;
	}
	if ((err = request_parse_params(req)) != E_OK ||
	    (r->auth && (err = request_id_parse(req)) != E_OK))
		goto fail;
	r->fn(app, req, res);
	return;
fail:
	response_error(res, err);
}

/* An operation on its way through storage. A write with a request id
 * goes through the stored-response table: its answer is rendered inside
 * the transaction and stored in the same commit as its effect. */
struct route_call {
	struct route_op ro;
	bool            idempotent;
	bool            replayed;	/* a stored answer was found */
	struct idem_op  io;
	struct buf      body;		/* the answer rendered in the transaction */
};

/* The transaction body of an idempotent write: replay, refuse, or run the
 * op and store its answer. */
static enum casq_err
idem_apply(struct store *st, MDB_txn *txn, struct route_call *c)
{
	enum casq_err err;
	struct json j;

	c->replayed = false;	/* group commit may apply this twice */
	c->body.len = 0;
	if ((err = idem_lookup(st, txn, &c->io)) != E_OK)
		return err;
	if (c->io.mismatch)
		return E_REQUEST_ID_REUSED;
	if (c->io.found) {
		c->replayed = true;
		return E_OK;
	}
	if ((err = c->ro.apply(st, txn, c->ro.op)) != E_OK)
		return err;
	json_begin(&j, &c->body);
	c->ro.render(c->ro.op, &j);
	return idem_save(st, txn, &c->io, 200, c->body.data, c->body.len);
}

enum casq_err
route_call_apply(struct store *st, MDB_txn *txn, void *arg)
{
	struct route_call *c = arg;

	return c->idempotent ? idem_apply(st, txn, c) : c->ro.apply(st, txn, c->ro.op);
}

void
route_exec(struct app *app, struct request *req, struct response *res,
    const struct route_op *ro)
{
	struct route_call *c = xcalloc(1, sizeof *c);

	c->ro = *ro;
	if (ro->write && req->request_id != NULL) {
		c->idempotent = true;
		c->io.id = req->request_id;
		c->io.now = req->now;
		c->io.ttl_ms = app->idem_ttl_ms;
		memcpy(c->io.fingerprint, req->fingerprint, sizeof c->io.fingerprint);
	}
	res->pending = c;
	if (ro->write && app->defer_writes)
		return;		/* the worker hands it to the committer */
	route_finish(res, store_run(app->store, ro->write, req->now,
	    route_call_apply, c));
}

void
route_finish(struct response *res, enum casq_err err)
{
	struct route_call *c = res->pending;
	struct json j;

	res->pending = NULL;
	if (err != E_OK) {
		response_error(res, err);
	} else if (c->replayed) {
		res->status = c->io.status;
		res->reason = "OK";
		res->body.len = 0;
		buf_append(&res->body, c->io.body.data, c->io.body.len);
	} else if (c->idempotent) {
		response_ok(res);
		buf_free(&res->body);
		res->body = c->body;
		c->body = (struct buf){ 0 };
	} else {
		response_ok(res);
		json_begin(&j, &res->body);
		c->ro.render(c->ro.op, &j);
	}
	buf_free(&c->io.body);
	buf_free(&c->body);
	c->ro.free_op(c->ro.op);
	free(c);
}
