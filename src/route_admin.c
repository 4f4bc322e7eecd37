/*
 * route_admin.c - routes about the service rather than one queue:
 * health, the no-storage ping (the benchmark's ceiling), the queue and
 * namespace and once scope lists, the tenants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

/* One page of /v1/queues, /v1/kv or /v1/once; "after" continues from the last name
 * seen. */
#define LIST_MAX	1000

/* A read transaction that reads nothing: can the database be opened? */
static enum casq_err
read_nothing(struct store *st, MDB_txn *txn, void *op)
{
	return E_OK;
}

static void
route_healthz(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct json j;

	if (store_run(app->store, false, req->now, read_nothing, NULL) != E_OK) {
		response_error(res, E_UNAVAILABLE);
		return;
	}
	response_ok(res);
	json_begin(&j, &res->body);
	json_obj_open(&j, NULL);
	json_bool(&j, "ok", true);
	json_obj_close(&j);
}

static void
route_ping(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct json j;

	response_ok(res);
	json_begin(&j, &res->body);
	json_obj_open(&j, NULL);
	json_bool(&j, "pong", true);
	json_obj_close(&j);
}

enum list_kind { LIST_QUEUES, LIST_NAMESPACES, LIST_SCOPES };

/* One page of the queue, namespace or scope list: the entries are written as a
 * JSON array while the read transaction is open, and rendered into the
 * answer. */
struct list_call {
	enum list_kind kind;
	char        prefix[TENANT_NAME_MAX + 2];	/* "tenant:" */
	const char *after;	/* borrowed from the request */
	struct buf  items;	/* [{"queue":...},...] */
	struct json j;
};

static void
queue_list_visit(void *ctx, const char *name, size_t len,
    const struct queue_stats *s)
{
	struct json *j = ctx;

	json_obj_open(j, NULL);
	json_strn(j, "queue", name, len);
	json_int(j, "ready", (long long)s->ready);
	json_int(j, "leased", (long long)s->leased);
	json_obj_close(j);
}

static void
ns_list_visit(void *ctx, const char *name, size_t len, const struct kv_stats *s)
{
	struct json *j = ctx;

	json_obj_open(j, NULL);
	json_strn(j, "namespace", name, len);
	json_int(j, "keys", (long long)s->keys);
	json_int(j, "sets", (long long)s->sets);
	json_int(j, "deletes", (long long)s->deletes);
	json_int(j, "incrs", (long long)s->incrs);
	json_int(j, "cas_failures", (long long)s->cas_failures);
	json_int(j, "expired", (long long)s->expired);
	json_obj_close(j);
}

static void
scope_list_visit(void *ctx, const char *name, size_t len,
    const struct once_stats *s)
{
	struct json *j = ctx;

	json_obj_open(j, NULL);
	json_strn(j, "scope", name, len);
	json_int(j, "windows", (long long)s->windows);
	json_int(j, "opened", (long long)s->opened);
	json_int(j, "expired", (long long)s->expired);
	json_time(j, "created_at", s->created_at);
	json_obj_close(j);
}

static const char *const list_field[] = {
	[LIST_QUEUES] = "queues", [LIST_NAMESPACES] = "namespaces",
	[LIST_SCOPES] = "scopes",
};

static enum casq_err
apply_list(struct store *st, MDB_txn *txn, void *arg)
{
	struct list_call *c = arg;
	enum casq_err err;

	c->items.len = 0;
	json_begin(&c->j, &c->items);
	json_arr_open(&c->j, NULL);
	if (c->kind == LIST_QUEUES)
		err = queue_list(st, txn, c->prefix, c->after, LIST_MAX, queue_list_visit, &c->j);
	else if (c->kind == LIST_NAMESPACES)
		err = kv_ns_list(st, txn, c->prefix, c->after, LIST_MAX, ns_list_visit, &c->j);
	else
		err = once_scope_list(st, txn, c->prefix, c->after, LIST_MAX, scope_list_visit, &c->j);
	json_arr_close(&c->j);
	return err;
}

static void
render_list(void *arg, struct json *j)
{
	struct list_call *c = arg;

	json_obj_open(j, NULL);
	json_raw(j, list_field[c->kind], c->items.data, c->items.len);
	json_obj_close(j);
}

static void
list_call_free(void *arg)
{
	struct list_call *c = arg;

	buf_free(&c->items);
	free(c);
}

static void
route_list(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	const struct param *after = request_param(req, "after");
	struct list_call *c;

	if (after != NULL && (after->kind != PARAM_STRING || strlen(after->value) != after->len)) {
		response_error(res, E_BAD_PARAM);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->kind = route->kind;
	c->after = after ? after->value : NULL;
	snprintf(c->prefix, sizeof c->prefix, "%s:", req->tenant);
	route_exec(app, req, res, &(struct route_op){ .apply = apply_list,
	    .render = render_list, .free_op = list_call_free, .op = c });
}

enum tenants_kind { TENANTS_OWN, TENANTS_ALL };

/* /v1/tenant (the caller's tenant) and /v1/tenants (every tenant the keys
 * file names or the store holds data for; admin keys): counts from the
 * store, keys by name and scope from the keys file, never a hash. */
struct tenant_call {
	const struct keyring *keys;
	const struct api_key *key;	/* the caller: /v1/tenant only */
	bool                 all;
	char               (*names)[TENANT_NAME_MAX + 1];
	struct tenant_view  *views;
	size_t               n;
};

static void
tenant_add(struct tenant_call *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->names[i], name) == 0)
			return;
	c->names = xrealloc(c->names, (c->n + 1) * sizeof *c->names);
	snprintf(c->names[c->n++], sizeof c->names[0], "%s", name);
}

static void
tenant_visit(void *ctx, const char *name)
{
	tenant_add(ctx, name);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static enum casq_err
apply_tenants(struct store *st, MDB_txn *txn, void *arg)
{
	struct tenant_call *c = arg;
	enum casq_err err = E_OK;

	if (c->all) {
		for (size_t i = 0; i < keyring_tenant_count(c->keys); i++)
			tenant_add(c, keyring_tenant(c->keys, i));
		if ((err = tenant_list(st, txn, tenant_visit, c)) != E_OK)
			return err;
		qsort(c->names, c->n, sizeof *c->names, name_cmp);
	}
	c->views = xcalloc(c->n, sizeof *c->views);
	for (size_t i = 0; i < c->n && err == E_OK; i++)
		err = tenant_view(st, txn, c->names[i], &c->views[i]);
	return err;
}

static void
render_counts(struct json *j, const struct tenant_call *c, size_t i)
{
	const struct tenant_view *v = &c->views[i];
	uint64_t max = keyring_max_items(c->keys, c->names[i]);

	json_int(j, "items", (long long)v->usage.items);
	json_int(j, "values", (long long)v->usage.values);
	json_int(j, "windows", (long long)v->usage.windows);
	if (max > 0)
		json_int(j, "max_items", (long long)max);
	json_int(j, "queues", (long long)v->queues);
	json_int(j, "namespaces", (long long)v->namespaces);
}

static void
render_keys(struct json *j, const struct tenant_call *c, const char *tenant)
{
	json_arr_open(j, "keys");
	for (size_t i = 0; i < keyring_count(c->keys); i++) {
		const struct api_key *k = keyring_key(c->keys, i);

		if (strcmp(k->tenant, tenant) != 0)
			continue;
		json_obj_open(j, NULL);
		json_str(j, "name", k->name);
		json_str(j, "scope", key_scope_name(k->scope));
		json_obj_close(j);
	}
	json_arr_close(j);
}

static void
render_tenants(void *arg, struct json *j)
{
	struct tenant_call *c = arg;

	json_obj_open(j, NULL);
	if (!c->all) {
		json_str(j, "tenant", c->names[0]);
		json_str(j, "key", c->key->name);
		json_str(j, "scope", key_scope_name(c->key->scope));
		render_counts(j, c, 0);
	} else {
		json_arr_open(j, "tenants");
		for (size_t i = 0; i < c->n; i++) {
			json_obj_open(j, NULL);
			json_str(j, "tenant", c->names[i]);
			render_counts(j, c, i);
			render_keys(j, c, c->names[i]);
			json_obj_close(j);
		}
		json_arr_close(j);
	}
	json_obj_close(j);
}

static void
tenant_call_free(void *arg)
{
	struct tenant_call *c = arg;

	free(c->names);
	free(c->views);
	free(c);
}

static void
route_tenants(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct tenant_call *c;

	if (route->kind == TENANTS_ALL && req->key->scope != SCOPE_ADMIN) {
		response_error(res, E_FORBIDDEN);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->keys = app->keys;
	c->key = req->key;
	c->all = route->kind == TENANTS_ALL;
	if (!c->all)
		tenant_add(c, req->tenant);
	route_exec(app, req, res, &(struct route_op){ .apply = apply_tenants,
	    .render = render_tenants, .free_op = tenant_call_free, .op = c });
}

const struct route_entry route_healthz_entry = {
	.pattern = "/healthz", .exec = route_healthz,
	.params = (const char *const[]){ NULL },
};
const struct route_entry route_ping_entry = {
	.pattern = "/v1/ping", .exec = route_ping, .auth = true,
	.params = (const char *const[]){ NULL },
};
const struct route_entry route_queue_list_entry = {
	.pattern = "/v1/queues", .exec = route_list, .kind = LIST_QUEUES, .auth = true,
	.params = (const char *const[]){ "after", NULL },
};
const struct route_entry route_kv_list_entry = {
	.pattern = "/v1/kv", .exec = route_list, .kind = LIST_NAMESPACES, .auth = true,
	.params = (const char *const[]){ "after", NULL },
};
const struct route_entry route_once_list_entry = {
	.pattern = "/v1/once", .exec = route_list, .kind = LIST_SCOPES, .auth = true,
	.params = (const char *const[]){ "after", NULL },
};
const struct route_entry route_tenant_entry = {
	.pattern = "/v1/tenant", .exec = route_tenants, .kind = TENANTS_OWN, .auth = true,
	.params = (const char *const[]){ NULL },
};
const struct route_entry route_tenants_entry = {
	.pattern = "/v1/tenants", .exec = route_tenants, .kind = TENANTS_ALL, .auth = true,
	.params = (const char *const[]){ NULL },
};
