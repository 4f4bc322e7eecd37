/*
 * route_history.c - what casq did with an item: its history in one queue
 * (/v1/queues/{queue}/history) or in every queue of the tenant
 * (/v1/history), oldest first, the last `limit` events. Read routes.
 */
#include <stdlib.h>
#include <string.h>

#include "route.h"

/* Events per answer when limit is not given, and at most: the cap an
 * item's history has (HISTORY_PER_ITEM). */
#define HISTORY_LIMIT_DEFAULT	100

enum history_route { HISTORY_ONE_QUEUE, HISTORY_EVERY_QUEUE };

struct history_call {
	const char *queue;	/* "tenant:name"; NULL: every queue */
	const char *tenant;
	const char *key;	/* borrowed from the request */
	size_t      limit;
	struct buf  events;	/* [{"at":...},...] */
	struct json j;
};

void
route_history_event(struct json *j, const struct history_event *ev, bool with_queue)
{
	json_obj_open(j, NULL);
	json_time_ms(j, "at", ev->at);
	json_str(j, "event", history_kind_name(ev->kind));
	if (with_queue)
		json_str(j, "queue", route_shown_name(ev->queue));
	if (ev->claimant_len > 0)
		json_strn(j, "claimant", ev->claimant, ev->claimant_len);
	if (ev->attempt > 0)
		json_int(j, "attempt", ev->attempt);
	if (ev->token != NULL)
		json_str(j, "token", ev->token);
	if (ev->request_id != NULL)
		json_str(j, "request_id", ev->request_id);
	if (ev->annotations_len > 0)	/* "x_campaign":"...", as sent */
		json_raw(j, NULL, ev->annotations, ev->annotations_len);
	json_obj_close(j);
}

static void
event_render(void *ctx, const struct history_event *ev)
{
	struct history_call *c = ctx;

	route_history_event(&c->j, ev, c->queue == NULL);
}

static enum casq_err
apply_history(struct store *st, MDB_txn *txn, void *arg)
{
	struct history_call *c = arg;
	enum casq_err err;

	c->events.len = 0;
	json_begin(&c->j, &c->events);
	json_arr_open(&c->j, NULL);
	err = c->queue ? history_list(st, txn, c->queue, c->key, c->limit, event_render, c) :
	    history_list_key(st, txn, c->tenant, c->key, c->limit, event_render, c);
	json_arr_close(&c->j);
	return err;
}

static void
render_history(void *arg, struct json *j)
{
	struct history_call *c = arg;

	json_obj_open(j, NULL);
	if (c->queue != NULL)
		json_str(j, "queue", route_shown_name(c->queue));
	json_str(j, "key", c->key);
	json_raw(j, "events", c->events.data, c->events.len);
	json_obj_close(j);
}

static void
history_call_free(void *arg)
{
	struct history_call *c = arg;

	buf_free(&c->events);
	free(c);
}

static void
route_history(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct history_call *c = xcalloc(1, sizeof *c);
	enum casq_err err;

	c->queue = route->kind == HISTORY_ONE_QUEUE ? req->scoped : NULL;
	c->tenant = req->tenant;
	if ((err = param_key(req, "key", &c->key)) != E_OK ||
	    (err = param_limit(req, HISTORY_LIMIT_DEFAULT, HISTORY_PER_ITEM, &c->limit)) != E_OK) {
		response_error(res, err);
		history_call_free(c);
		return;
	}
	route_exec(app, req, res, &(struct route_op){ .apply = apply_history,
	    .render = render_history, .free_op = history_call_free, .op = c });
}

const struct route_entry route_history_entry = {
	.pattern = "/v1/queues/*/history", .exec = route_history,
	.kind = HISTORY_ONE_QUEUE, .auth = true, .bad_name = E_BAD_QUEUE,
	.params = (const char *const[]){ "key", "limit", NULL },
};
const struct route_entry route_history_key_entry = {
	.pattern = "/v1/history", .exec = route_history,
	.kind = HISTORY_EVERY_QUEUE, .auth = true,
	.params = (const char *const[]){ "key", "limit", NULL },
};
