/*
 * route_items.c - /v1/queues/{queue}/items: a queue's items of one state,
 * in key order, a page at a time (after, next). A read route.
 */
#include <stdlib.h>
#include <string.h>

#include "route.h"

#define ITEMS_LIMIT_DEFAULT	100
#define ITEMS_LIMIT_MAX		1000

struct items_call {
	const char     *queue;	/* "tenant:name" */
	enum item_state state;
	const char     *after;	/* borrowed from the request; NULL: from the first */
	size_t          limit;
	int64_t         now;
	struct buf      items;	/* [{"key":...},...] */
	struct json     j;
	char            next[ITEM_KEY_MAX + 1];	/* "": the last page */
};

/* The states a listing takes, as the API spells them. */
static enum casq_err
param_state(const struct request *req, enum item_state *state)
{
	static const enum item_state listed[] = { ITEM_READY, ITEM_LEASED, ITEM_DEAD };
	const char *s;
	enum casq_err err = param_text(req, "state", 16, E_BAD_STATE, &s);

	if (err != E_OK)
		return err;
	if (s == NULL)
		return E_MISSING_STATE;
	for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
		if (strcmp(s, item_state_name(listed[i])) == 0) {
			*state = listed[i];
			return E_OK;
		}
	return E_BAD_STATE;
}

/* An item key to list after: 1-256 bytes of UTF-8, NULL when absent. */
static enum casq_err
param_after(const struct request *req, const char **after)
{
	enum casq_err err = param_text(req, "after", ITEM_KEY_MAX, E_BAD_AFTER, after);

	return err == E_OK && *after != NULL && **after == '\0' ? E_BAD_AFTER : err;
}

static void
item_render(void *ctx, const char *key, size_t len, uint32_t attempts,
    int64_t since)
{
	struct json *j = &((struct items_call *)ctx)->j;

	json_obj_open(j, NULL);
	json_strn(j, "key", key, len);
	json_int(j, "attempts", attempts);
	if (since != 0)
		json_time(j, "since", since);
	json_obj_close(j);
}

static enum casq_err
apply_items(struct store *st, MDB_txn *txn, void *arg)
{
	struct items_call *c = arg;
	enum casq_err err;

	c->items.len = 0;
	json_begin(&c->j, &c->items);
	json_arr_open(&c->j, NULL);
	err = queue_items(st, txn, c->queue, c->state, c->after, c->limit, c->now,
	    item_render, c, c->next);
	json_arr_close(&c->j);
	return err;
}

static void
render_items(void *arg, struct json *j)
{
	struct items_call *c = arg;

	json_obj_open(j, NULL);
	json_str(j, "queue", route_shown_name(c->queue));
	json_str(j, "state", item_state_name(c->state));
	json_raw(j, "items", c->items.data, c->items.len);
	if (*c->next)
		json_str(j, "next", c->next);
	json_obj_close(j);
}

static void
items_call_free(void *arg)
{
	struct items_call *c = arg;

	buf_free(&c->items);
	free(c);
}

static void
route_items(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct items_call *c = xcalloc(1, sizeof *c);
	enum casq_err err;

	c->queue = req->scoped;
	c->now = req->now;
	if ((err = param_state(req, &c->state)) != E_OK ||
	    (err = param_after(req, &c->after)) != E_OK ||
	    (err = param_limit(req, ITEMS_LIMIT_DEFAULT, ITEMS_LIMIT_MAX, &c->limit)) != E_OK) {
		response_error(res, err);
		items_call_free(c);
		return;
	}
	route_exec(app, req, res, &(struct route_op){ .apply = apply_items,
	    .render = render_items, .free_op = items_call_free, .op = c,
	    .now = &c->now });
}

const struct route_entry route_items_entry = {
	.pattern = "/v1/queues/*/items", .exec = route_items, .auth = true,
	.bad_name = E_BAD_QUEUE,
	.params = (const char *const[]){ "state", "after", "limit", NULL },
};
