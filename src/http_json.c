/*
 * http_json.c - a JSON request body into parameters, in one streaming
 * pass of yajl's callback parser: the root object's scalar members become
 * parameters as they are; a member that is an object or array is re-emitted
 * compactly by a yajl generator (the canonical text casq stores). Nothing
 * recurses, and string lengths are kept, so "\u0000" in a key is seen (and
 * refused as a Bad Key) rather than silently cutting the key short. A
 * member that is null is refused (Null Parameter), never dropped.
 */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "http.h"

/* Values nested deeper than this are refused: they are lead data, not
 * documents, and yajl's generator stops at 128 anyway. */
#define JSON_DEPTH_MAX	32

struct json_body {
	struct request *req;
	int             depth;	/* 0: outside; 1: in the root object */
	struct buf      name;	/* the root member being read */
	yajl_gen        gen;	/* re-emits the member's nested value */
	enum casq_err   err;
};

static int
fail(struct json_body *jb, enum casq_err err)
{
	jb->err = err;
	return 0;
}

static int
add(struct json_body *jb, const void *v, size_t n, enum param_kind kind)
{
	enum casq_err err = request_param_add(jb->req, jb->name.data,
	    jb->name.len, v, n, kind);

	return err == E_OK ? 1 : fail(jb, err);
}

/* Run a generator call for a nested value; 0 stops the parse. */
static int
gen(struct json_body *jb, yajl_gen_status st)
{
	return st == yajl_gen_status_ok ? 1 : fail(jb, E_MALFORMED_JSON);
}

/* A root member that is null. It is never "not given": {"cas":null}
 * would turn a compare-and-swap into a blind write, {"key":null} a claim
 * into a pop. Annotations (x_...) are ignored whatever their value. */
static int
root_null(struct json_body *jb)
{
	const char *name = jb->name.data ? jb->name.data : "";

	if (jb->name.len >= 2 && memcmp(name, "x_", 2) == 0)
		return 1;
	if (memchr(name, '\0', jb->name.len) != NULL)
		return fail(jb, E_BAD_PARAM);
	free(jb->req->err_param);
	jb->req->err_param = xstrndup(name, jb->name.len);
	return fail(jb, E_NULL_PARAM);
}

static int
on_null(void *ctx)
{
	struct json_body *jb = ctx;

	if (jb->depth == 0)
		return fail(jb, E_MALFORMED_JSON);
	if (jb->depth == 1)
		return root_null(jb);
	return gen(jb, yajl_gen_null(jb->gen));
}

static int
on_boolean(void *ctx, int v)
{
	struct json_body *jb = ctx;

	if (jb->depth == 0)
		return fail(jb, E_MALFORMED_JSON);
	if (jb->depth == 1)
		return add(jb, v ? "true" : "false", v ? 4 : 5, PARAM_BOOL);
	return gen(jb, yajl_gen_bool(jb->gen, v));
}

static int
on_number(void *ctx, const char *s, size_t n)
{
	struct json_body *jb = ctx;

	if (jb->depth == 0)
		return fail(jb, E_MALFORMED_JSON);
	if (jb->depth == 1)
		return add(jb, s, n, PARAM_NUMBER);
	return gen(jb, yajl_gen_number(jb->gen, s, n));
}

static int
on_string(void *ctx, const unsigned char *s, size_t n)
{
	struct json_body *jb = ctx;

	if (jb->depth == 0)
		return fail(jb, E_MALFORMED_JSON);
	if (jb->depth == 1)
		return add(jb, s, n, PARAM_STRING);
	return gen(jb, yajl_gen_string(jb->gen, s, n));
}

static int
on_map_key(void *ctx, const unsigned char *s, size_t n)
{
	struct json_body *jb = ctx;

	if (jb->depth > 1)
		return gen(jb, yajl_gen_string(jb->gen, s, n));
	jb->name.len = 0;
	buf_append(&jb->name, s, n);
	return 1;
}

/* An object or array opens: the root, or a level of a nested value. */
static int
on_open(struct json_body *jb, bool map)
{
	if (jb->depth == 0) {
		if (!map)
			return fail(jb, E_MALFORMED_JSON);
		jb->depth = 1;
		return 1;
	}
	if (jb->depth > JSON_DEPTH_MAX)
		return fail(jb, E_JSON_TOO_DEEP);
	if (jb->depth++ == 1)
		jb->gen = yajl_gen_alloc(NULL);
	return gen(jb, map ? yajl_gen_map_open(jb->gen) : yajl_gen_array_open(jb->gen));
}

/* An object or array closes; back at the root, the member is complete. */
static int
on_close(struct json_body *jb, bool map)
{
	const unsigned char *out;
	size_t len;
	int rc;

	if (--jb->depth == 0)
		return 1;
	if (!gen(jb, map ? yajl_gen_map_close(jb->gen) : yajl_gen_array_close(jb->gen)))
		return 0;
	if (jb->depth > 1)
		return 1;
	yajl_gen_get_buf(jb->gen, &out, &len);
	rc = add(jb, out, len, PARAM_JSON);
	yajl_gen_free(jb->gen);
	jb->gen = NULL;
	return rc;
}

static int on_start_map(void *ctx)   { return on_open(ctx, true); }
static int on_end_map(void *ctx)     { return on_close(ctx, true); }
static int on_start_array(void *ctx) { return on_open(ctx, false); }
static int on_end_array(void *ctx)   { return on_close(ctx, false); }

static const yajl_callbacks json_body_callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_number = on_number,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_map_key,
	.yajl_end_map = on_end_map,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end_array,
};

enum casq_err
json_body_parse(struct request *req)
{
	struct json_body jb = { .req = req, .err = E_OK };
	yajl_handle h = yajl_alloc(&json_body_callbacks, NULL, &jb);
	yajl_status st;

	st = yajl_parse(h, (const unsigned char *)req->body, req->body_len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	if (jb.gen)
		yajl_gen_free(jb.gen);
	buf_free(&jb.name);
	if (jb.err != E_OK)
		return jb.err;
	return st == yajl_status_ok ? E_OK : E_MALFORMED_JSON;
}
