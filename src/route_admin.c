/*
 * route_admin.c - routes about the service rather than one queue:
 * health, the no-storage ping (the benchmark's ceiling), the queue list.
 */
#include <stdlib.h>
#include <string.h>

#include "route.h"

/* One page of /v1/queues; "after" continues from the last name seen. */
#define QUEUE_LIST_MAX	1000

static void
route_healthz(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	MDB_txn *txn;
	struct json j;

	if (store_begin(app->store, false, &txn) != E_OK) {
		response_error(res, E_UNAVAILABLE);
		return;
	}
	mdb_txn_abort(txn);
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
route_queue_list(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	const struct param *after = request_param(req, "after");
	MDB_txn *txn;
	enum casq_err err;
	struct json j;

	if (after != NULL && (after->kind != PARAM_STRING || strlen(after->value) != after->len)) {
		response_error(res, E_BAD_PARAM);
		return;
	}
	if ((err = store_begin(app->store, false, &txn)) != E_OK) {
		response_error(res, err);
		return;
	}
	json_begin(&j, &res->body);
	json_obj_open(&j, NULL);
	json_arr_open(&j, "queues");
	err = queue_list(app->store, txn, after ? after->value : NULL,
	    QUEUE_LIST_MAX, queue_list_visit, &j);
	mdb_txn_abort(txn);
	json_arr_close(&j);
	json_obj_close(&j);
	if (err != E_OK)
		response_error(res, err);
	else
		response_ok(res);
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
