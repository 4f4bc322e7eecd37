/*
 * route_once.c - /v1/once/{scope}: "have I seen this id within the
 * window?", answered atomically across all workers.
 */
#include <stdlib.h>

#include "route.h"

/* A day: covers webhook retries and duplicate form fills alike. */
#define ONCE_TTL_DEFAULT_MS	(86400LL * 1000)
#define ONCE_TTL_MAX_MS		(31536000LL * 1000)

static void
render_once(void *arg, struct json *j)
{
	const struct once_op *op = arg;

	json_obj_open(j, NULL);
	json_bool(j, "first", op->first);
	json_str(j, "scope", route_shown_name(op->scope));
	json_str(j, "id", op->id);
	if (!op->first) {
		json_time(j, "first_seen", op->first_seen);
		json_int(j, "count", (long long)op->count);
	}
	json_time(j, "expires_at", op->expires_at);
	json_obj_close(j);
}

static void
route_once(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct once_op *op = xcalloc(1, sizeof *op);
	enum casq_err err;

	*op = (struct once_op){ .now = req->now, .scope = req->scoped,
	    .max_items = route_max_items(app, req),
	    .ttl_ms = ONCE_TTL_DEFAULT_MS };
	if ((err = param_text(req, "id", ITEM_KEY_MAX, E_BAD_ID, &op->id)) == E_OK &&
	    op->id == NULL)
		err = E_MISSING_ID;
	if (err == E_OK && *op->id == '\0')
		err = E_BAD_ID;
	if (err == E_OK)
		err = param_seconds(req, "ttl", true, ONCE_TTL_MAX_MS, E_BAD_TTL, &op->ttl_ms);
	if (err != E_OK) {
		response_error(res, err);
		free(op);
		return;
	}
	route_exec(app, req, res, &(struct route_op){ .write = true,
	    .apply = once_apply, .render = render_once, .free_op = free, .op = op,
	    .now = &op->now });
}

const struct route_entry route_once_entry = {
	.pattern = "/v1/once/*", .exec = route_once, .auth = true,
	.bad_name = E_BAD_SCOPE,
	.params = (const char *const[]){ "id", "ttl", NULL },
};
