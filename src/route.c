/*
 * route.c - the route table and the order of checks every request goes
 * through: route (404), method (405), API key (401), body (413/415/400),
 * then the handler. Adding a route is adding a row.
 */
#include <string.h>

#include "http.h"
#include "store.h"

struct route {
	const char *pattern;	/* a "*" segment is the queue name */
	route_fn   *fn;
	bool        auth;
};

static const struct route routes[] = {
	{ "/healthz",              route_healthz,     false },
	{ "/v1/ping",              route_ping,        true },
	{ "/v1/queues",            route_queue_list,  true },
	{ "/v1/queues/*",          route_queue_stats, true },
	{ "/v1/queues/*/enqueue",  route_enqueue,     true },
	{ "/v1/queues/*/claim",    route_claim,       true },
	{ "/v1/queues/*/ack",      route_ack,         true },
	{ "/v1/queues/*/release",  route_release,     true },
	{ "/v1/queues/*/remove",   route_remove,      true },
	{ "/v1/queues/*/status",   route_status,      true },
};

static bool
queue_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > QUEUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789._-", s[i]) || s[i] == '\0')
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
route_find(struct request *req, enum casq_err *err)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const char *star = NULL;
		size_t star_len = 0;

		if (!route_match(routes[i].pattern, req->path, &star, &star_len))
			continue;
		if (star != NULL) {
			if (!queue_name_valid(star, star_len)) {
				*err = E_BAD_QUEUE;
				return &routes[i];
			}
			memcpy(req->queue, star, star_len);
			req->queue[star_len] = '\0';
		}
		*err = E_OK;
		return &routes[i];
	}
	*err = E_NO_ROUTE;
	return NULL;
}

void
route_request(struct app *app, struct request *req, struct response *res)
{
	const struct route *r;
	enum casq_err err = E_NO_ROUTE, queue_err;

	if (!request_path(req) || (r = route_find(req, &queue_err)) == NULL)
		goto fail;
	err = E_METHOD;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0)
		goto fail;
	if (r->auth && (err = request_authenticate(req, app->keys)) != E_OK)
		goto fail;
	if ((err = queue_err) != E_OK)
		goto fail;
	if (req->body_len > BODY_MAX) {
		err = E_BODY_TOO_LARGE;
		goto fail;
	}
	if ((err = request_parse_params(req)) != E_OK)
		goto fail;
	r->fn(app, req, res);
	return;
fail:
	response_error(res, err);
}
