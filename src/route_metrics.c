/*
 * route_metrics.c - GET /metrics, for Prometheus: the text
 * metrics_render.c writes, in a read transaction on the serving thread
 * (a scrape never waits for the committer). Any key may scrape (a read key is enough); what it sees:
 *   - the service's series (requests, commits, the environment, the
 *     workers), which name no tenant, queue or key;
 *   - the queues of its tenant; an admin key's, those of every tenant,
 *     or of the one its X-Casq-Tenant names.
 * Every queue series carries a tenant label, so a series is the same
 * whichever key scraped it.
 */
#include "route.h"

static void
route_metrics(struct app *app, struct request *req, struct response *res,
    const struct route_entry *route)
{
	struct metrics_scrape sc = { .out = &res->body };
	enum casq_err err;

	if (req->key->scope != SCOPE_ADMIN || req->tenant_header != NULL)
		sc.tenant = req->tenant;
	if ((err = store_run(app->store, false, req->now, metrics_render, &sc)) != E_OK) {
		response_error(res, err);
		return;
	}
	/* worker_reply_render ends every answer with its newline */
	if (res->body.len > 0 && res->body.data[res->body.len - 1] == '\n')
		res->body.len--;
	response_ok(res);
	res->content_type = METRICS_CONTENT_TYPE;
}

const struct route_entry route_metrics_entry = {
	.pattern = "/metrics", .exec = route_metrics, .auth = true,
	.params = (const char *const[]){ NULL },
};
