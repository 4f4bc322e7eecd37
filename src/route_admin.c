/*
 * route_admin.c - routes about the service rather than one queue:
 * health, the no-storage ping (the benchmark's ceiling), the queue list.
 */
#include <stdlib.h>
#include <string.h>

#include "route.h"

/* One page of /v1/queues; "after" continues from the last name seen. */
#define QUEUE_LIST_MAX	1000

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

/* One page of the queue list: the entries are written as a JSON array
 * while the read transaction is open, and rendered into the answer. */
struct list_call {
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

static enum casq_err
apply_list(struct store *st, MDB_txn *txn, void *arg)
{
	struct list_call *c = arg;
	enum casq_err err;

	c->items.len = 0;
	json_begin(&c->j, &c->items);
	json_arr_open(&c->j, NULL);
	err = queue_list(st, txn, c->after, QUEUE_LIST_MAX, queue_list_visit, &c->j);
	json_arr_close(&c->j);
	return err;
}

static void
render_list(void *arg, struct json *j)
{
	struct list_call *c = arg;

	json_obj_open(j, NULL);
	json_raw(j, "queues", c->items.data, c->items.len);
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
route_queue_list(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	const struct param *after = request_param(req, "after");
	struct list_call *c;

	if (after != NULL && (after->kind != PARAM_STRING || strlen(after->value) != after->len)) {
		response_error(res, E_BAD_PARAM);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->after = after ? after->value : NULL;
	route_exec(app, req, res, &(struct route_op){ .apply = apply_list,
	    .render = render_list, .free_op = list_call_free, .op = c });
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
	.pattern = "/v1/queues", .exec = route_queue_list, .auth = true,
	.params = (const char *const[]){ "after", NULL },
};
