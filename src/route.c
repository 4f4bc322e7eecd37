/*
 * route.c - the route table and the order of checks every request goes
 * through: route (404), method (405), API key (401), rate (429), name
 * (400), body (413/415/400), parameter names (400), request id (400),
 * then the handler; a read-only key's write is refused (403) once its
 * parameters are read. Rows are declared next to their handlers in route_*.c; adding
 * a route is adding a row there and a pointer here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

#define REQUEST_ID_MAX	200	/* + key name fits LMDB's 511-byte keys */
_Static_assert(REQUEST_ID_MAX <= HISTORY_REQUEST_ID_MAX, "an item's history keeps every request id");

static const struct route_entry *const routes[] = {
	&route_healthz_entry,
	&route_ping_entry,
	&route_queue_list_entry,
	&route_queue_stats_entry,
	&route_enqueue_entry,
	&route_claim_entry,
	&route_pop_entry,
	&route_ack_entry,
	&route_release_entry,
	&route_remove_entry,
	&route_status_entry,
	&route_history_entry,
	&route_items_entry,
	&route_history_key_entry,
	&route_redrive_entry,
	&route_queue_config_entry,
	&route_kv_list_entry,
	&route_kv_stats_entry,
	&route_kv_get_entry,
	&route_kv_set_entry,
	&route_kv_delete_entry,
	&route_kv_incr_entry,
	&route_once_list_entry,
	&route_once_entry,
	&route_tenant_entry,
	&route_tenants_entry,
	&route_metrics_entry,
};
#define ROUTE_COUNT	(sizeof routes / sizeof routes[0])
_Static_assert(ROUTE_COUNT < METRICS_ROUTES,
    "metrics.c counts requests by route: raise METRICS_ROUTES");

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

static const struct route_entry *
route_find(struct request *req, enum casq_err *name_err)
{
	for (size_t i = 0; i < ROUTE_COUNT; i++) {
		const struct route_entry *r = routes[i];
		const char *star = NULL;
		size_t star_len = 0;

		if (!route_match(r->pattern, req->path, &star, &star_len))
			continue;
		req->route = (unsigned)i + 1;
		*name_err = E_OK;
		if (star != NULL && !name_valid(star, star_len, PATH_NAME_MAX))
			*name_err = r->bad_name;
		else if (star != NULL) {
			memcpy(req->name, star, star_len);
			req->name[star_len] = '\0';
		}
		return r;
	}
	return NULL;
}

/* Annotations: any x_ name is taken by every route and ignored, so admins
 * can label calls (x_campaign={{campaign.name}}). */
static bool
param_is_annotation(const char *name)
{
	return strncmp(name, "x_", 2) == 0;
}

static bool
route_takes(const struct route_entry *r, const char *name)
{
	if (param_is_annotation(name) || (r->auth && strcmp(name, "request_id") == 0))
		return true;
	for (const char *const *p = r->params; *p != NULL; p++)
		if (strcmp(*p, name) == 0)
			return true;
	return false;
}

/* Every parameter must be one the route takes: a misspelled or
 * mis-cased name (Key=lead3) is refused, never ignored into another
 * operation. */
static enum casq_err
params_check_names(const struct route_entry *r, struct request *req)
{
	for (size_t i = 0; i < req->nparams; i++)
		if (!route_takes(r, req->params[i].name)) {
			req->err_param = xstrndup(req->params[i].name,
			    strlen(req->params[i].name));
			return E_UNKNOWN_PARAM;
		}
	return E_OK;
}

static int
param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;

	return strcmp(x->name, y->name);	/* names are unique in a request */
}

/* A length-prefixed field: no two sequences of fields encode alike. */
static void
fingerprint_field(struct buf *b, const void *p, size_t n)
{
	uint64_t len = n;

	buf_append(b, &len, sizeof len);
	buf_append(b, p, n);
}

/* What makes two requests "the same" for a request id: the path (route
 * and queue, namespace or scope) and every parameter but request_id and
 * the annotations, in name order, each as name, JSON type and exact
 * bytes. The encoding is injective, so two calls that would do different
 * things (a string payload and an object payload of the same text, a
 * value with a NUL) never share a fingerprint. */
static void
request_fingerprint(struct request *req)
{
	struct buf b = { 0 };

	if (req->nparams > 1)	/* qsort's array may not be NULL, even for 0 */
		qsort(req->params, req->nparams, sizeof *req->params, param_cmp);
	fingerprint_field(&b, req->path, strlen(req->path));
	for (size_t i = 0; i < req->nparams; i++) {
		const struct param *p = &req->params[i];
		unsigned char kind = (unsigned char)p->kind;

		if (strcmp(p->name, "request_id") == 0 || param_is_annotation(p->name))
			continue;
		fingerprint_field(&b, p->name, strlen(p->name));
		fingerprint_field(&b, &kind, 1);
		fingerprint_field(&b, p->value, p->len);
	}
	sha256(b.data, b.len, req->fingerprint);
	buf_free(&b);
}

/* request_id and Idempotency-Key name the same thing; ids are scoped by
 * the tenant and the API key's name, "tenant:name/id": neither name
 * contains ':' or '/' (auth.c refuses them), so two keys never share a
 * stored answer. */
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
	n = strlen(req->tenant) + 1 + strlen(req->key->name) + 1 + strlen(id) + 1;
	req->request_id = xmalloc(n);
	snprintf(req->request_id, n, "%s:%s/%s", req->tenant, req->key->name, id);
	request_fingerprint(req);
	return E_OK;
}

unsigned
route_count(void)
{
	return ROUTE_COUNT;
}

const char *
route_pattern(unsigned route)
{
	return route >= 1 && route <= ROUTE_COUNT ? routes[route - 1]->pattern : NULL;
}

const char *
route_request_id(const struct request *req)
{
	return req->request_id ? strchr(req->request_id, '/') + 1 : NULL;
}

const char *
route_shown_name(const char *scoped)
{
	const char *colon = strchr(scoped, ':');

	return colon ? colon + 1 : scoped;
}

uint64_t
route_max_items(const struct app *app, const struct request *req)
{
	return req->tenant ? keyring_max_items(app->keys, req->tenant) : 0;
}

void
route_request(struct app *app, struct request *req, struct response *res)
{
	const struct route_entry *r;
	enum casq_err err = E_NO_ROUTE, name_err = E_OK;

	if (!request_path(req) || (r = route_find(req, &name_err)) == NULL)
		goto fail;
	err = E_METHOD;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0)
		goto fail;
	if (r->auth && (err = request_authenticate(req, app->keys)) != E_OK)
		goto fail;
	if (r->auth && !ratelimit_take(app->rl, req->key, &res->retry_after)) {
		err = E_RATE_LIMITED;
		goto fail;
	}
	if ((err = name_err) != E_OK)
		goto fail;
	if (r->auth)	/* the tenant's own name for the path's queue, namespace or scope */
		snprintf(req->scoped, sizeof req->scoped, "%s:%s", req->tenant, req->name);
	if (req->body_len > BODY_MAX) {
		err = E_BODY_TOO_LARGE;
		goto fail;
	}
	if (req->body_incomplete) {	/* never act on a cut payload */
		err = E_INCOMPLETE_BODY;
		goto fail;
	}
	if ((err = request_parse_params(req)) != E_OK ||
	    (err = params_check_names(r, req)) != E_OK ||
	    (r->auth && (err = request_id_parse(req)) != E_OK))
		goto fail;
	r->exec(app, req, res, r);
	return;
fail:
	if (req->err_param != NULL)
		response_error_param(res, err, req->err_param);
	else
		response_error(res, err);
}

/* An operation on its way through storage. A write with a request id
 * goes through the stored-response table: its answer is rendered inside
 * the transaction and stored in the same commit as its effect. */
struct route_call {
	struct route_op ro;
	int64_t       (*clock)(void);	/* app->clock */
	bool            idempotent;
	bool            replayed;	/* a stored answer was found */
	struct idem_op  io;
	struct buf      body;		/* the answer rendered in the transaction */
};

/* The transaction body of an idempotent write: replay, refuse, or run the
 * op and store its answer. While space is low a stored answer is new
 * data, so it is refused before anything is written, except for writes
 * that free data (drains must keep working); a drain that freed nothing
 * then runs without storing its answer, so retries of it run again. */
static enum casq_err
idem_apply(struct store *st, MDB_txn *txn, struct route_call *c)
{
	enum casq_err err;
	bool low;
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
	if ((low = store_space_low(st)) && c->ro.drained == NULL)
		return E_SPACE_REFUSED;
	if ((err = c->ro.apply(st, txn, c->ro.op)) != E_OK)
		return err;
	json_begin(&j, &c->body);
	c->ro.render(c->ro.op, &j);
	if (low && !c->ro.drained(c->ro.op))
		return E_OK;
	return idem_save(st, txn, &c->io, 200, c->body.data, c->body.len);
}

enum casq_err
route_call_apply(struct store *st, MDB_txn *txn, void *arg)
{
	struct route_call *c = arg;

	if (c->clock != NULL) {		/* the op runs now (see struct app) */
		int64_t now = c->clock();

		if (c->ro.now != NULL && now > *c->ro.now)
			*c->ro.now = now;
		if (c->idempotent && now > c->io.now)
			c->io.now = now;
	}
	return c->idempotent ? idem_apply(st, txn, c) : c->ro.apply(st, txn, c->ro.op);
}

void
route_exec(struct app *app, struct request *req, struct response *res,
    const struct route_op *ro)
{
	struct route_call *c = xcalloc(1, sizeof *c);

	if (ro->write && req->key != NULL && req->key->scope < SCOPE_WRITE) {
		response_error(res, E_READ_ONLY_KEY);
		ro->free_op(ro->op);
		free(c);
		return;
	}
	c->ro = *ro;
	c->clock = app->clock;
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
