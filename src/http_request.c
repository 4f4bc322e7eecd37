/*
 * http_request.c - parameters from the query string and the body.
 *
 * Marketo sends whatever its admin typed: JSON, form encoding, or raw
 * values, with a Content-Type nobody has confirmed. So the body format is
 * taken from Content-Type when that names one, else sniffed from the body.
 * A parameter may come from the query and the body at once; the same name
 * with two different values is refused rather than guessed.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "http.h"

/* Nesting deeper than this in a JSON value is refused: payloads are lead
 * data, and yajl's generator stops at 128 anyway. */
#define JSON_DEPTH_MAX	32

static int
hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

bool
url_decode(const char *s, size_t n, bool plus_is_space, struct buf *out)
{
	out->len = 0;
	buf_reserve(out, n);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return false;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		out->data[out->len++] = c;
	}
	out->data[out->len] = '\0';
	return true;
}

const struct param *
request_param(const struct request *req, const char *name)
{
	for (size_t i = 0; i < req->nparams; i++)
		if (strcmp(req->params[i].name, name) == 0)
			return &req->params[i];
	return NULL;
}

/* Add a parameter, or accept a repeat with the same value. */
static enum casq_err
param_add(struct request *req, const char *name, size_t nlen,
    const char *value, size_t vlen, enum param_kind kind)
{
	struct param *p;

	for (size_t i = 0; i < req->nparams; i++) {
		p = &req->params[i];
		if (strlen(p->name) == nlen && memcmp(p->name, name, nlen) == 0)
			return p->len == vlen && memcmp(p->value, value, vlen) == 0 ?
			    E_OK : E_CONFLICTING_PARAM;
	}
	req->params = xrealloc(req->params, (req->nparams + 1) * sizeof *p);
	p = &req->params[req->nparams++];
	p->name = xstrndup(name, nlen);
	p->value = xstrndup(value, vlen);
	p->len = vlen;
	p->kind = kind;
	return E_OK;
}

/* name=value&name=value, '+' as space, %XX escapes. */
static enum casq_err
parse_form(struct request *req, const char *s, size_t n)
{
	struct buf name = { 0 }, value = { 0 };
	enum casq_err err = E_OK;
	size_t i = 0;

	while (i < n && err == E_OK) {
		size_t end = i, eq;

		while (end < n && s[end] != '&')
			end++;
		for (eq = i; eq < end && s[eq] != '='; eq++)
			;
		if (end > i) {
			if (!url_decode(s + i, eq - i, true, &name) ||
			    !url_decode(s + eq + (eq < end), end - eq - (eq < end), true, &value))
				err = E_MALFORMED_FORM;
			else if (name.len > 0)
				err = param_add(req, name.data, name.len,
				    value.data, value.len, PARAM_STRING);
		}
		i = end + 1;
	}
	buf_free(&name);
	buf_free(&value);
	return err;
}

static bool json_gen_value(yajl_gen g, yajl_val v, int depth);

static bool
json_gen_object(yajl_gen g, yajl_val v, int depth)
{
	if (yajl_gen_map_open(g) != yajl_gen_status_ok)
		return false;
	for (size_t i = 0; i < v->u.object.len; i++) {
		const char *k = v->u.object.keys[i];
		if (yajl_gen_string(g, (const unsigned char *)k, strlen(k)) != yajl_gen_status_ok ||
		    !json_gen_value(g, v->u.object.values[i], depth + 1))
			return false;
	}
	return yajl_gen_map_close(g) == yajl_gen_status_ok;
}

/* Re-emit a parsed value compactly: the canonical text we store. */
static bool
json_gen_value(yajl_gen g, yajl_val v, int depth)
{
	if (depth > JSON_DEPTH_MAX)
		return false;
	switch (v->type) {
	case yajl_t_string:
		return yajl_gen_string(g, (const unsigned char *)v->u.string,
		    strlen(v->u.string)) == yajl_gen_status_ok;
	case yajl_t_number:
		return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r)) == yajl_gen_status_ok;
	case yajl_t_true:
	case yajl_t_false:
		return yajl_gen_bool(g, v->type == yajl_t_true) == yajl_gen_status_ok;
	case yajl_t_null:
		return yajl_gen_null(g) == yajl_gen_status_ok;
	case yajl_t_object:
		return json_gen_object(g, v, depth);
	case yajl_t_array:
		if (yajl_gen_array_open(g) != yajl_gen_status_ok)
			return false;
		for (size_t i = 0; i < v->u.array.len; i++)
			if (!json_gen_value(g, v->u.array.values[i], depth + 1))
				return false;
		return yajl_gen_array_close(g) == yajl_gen_status_ok;
	default:
		return false;
	}
}

static enum casq_err
param_add_json(struct request *req, const char *name, yajl_val v)
{
	const unsigned char *out;
	size_t outlen;
	enum casq_err err;
	yajl_gen g;

	switch (v->type) {
	case yajl_t_string:
		return param_add(req, name, strlen(name), v->u.string,
		    strlen(v->u.string), PARAM_STRING);
	case yajl_t_number:
		return param_add(req, name, strlen(name), v->u.number.r,
		    strlen(v->u.number.r), PARAM_NUMBER);
	case yajl_t_true:
		return param_add(req, name, strlen(name), "true", 4, PARAM_BOOL);
	case yajl_t_false:
		return param_add(req, name, strlen(name), "false", 5, PARAM_BOOL);
	case yajl_t_null:
		return E_OK;	/* null means "not given" */
	default:
		break;
	}
	g = yajl_gen_alloc(NULL);
	if (!json_gen_value(g, v, 1)) {
		yajl_gen_free(g);
		return E_BAD_PAYLOAD;
	}
	yajl_gen_get_buf(g, &out, &outlen);
	err = param_add(req, name, strlen(name), (const char *)out, outlen, PARAM_JSON);
	yajl_gen_free(g);
	return err;
}

/* Nesting depth of a JSON text, strings skipped. yajl frees its tree
 * recursively, so a body of 60,000 '[' must be refused before parsing. */
static int
json_depth(const char *s, size_t n)
{
	int depth = 0, max = 0;
	bool in_string = false;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return max;
}

static enum casq_err
parse_json(struct request *req)
{
	char errbuf[128];
	yajl_val root;
	enum casq_err err = E_OK;

	/* the worker NUL-terminates the body; a NUL inside is not JSON */
	if (strlen(req->body) != req->body_len)
		return E_MALFORMED_JSON;
	if (json_depth(req->body, req->body_len) > JSON_DEPTH_MAX + 1)
		return E_BAD_PAYLOAD;
	root = yajl_tree_parse(req->body, errbuf, sizeof errbuf);
	if (root == NULL || root->type != yajl_t_object) {
		yajl_tree_free(root);
		return E_MALFORMED_JSON;
	}
	for (size_t i = 0; i < root->u.object.len && err == E_OK; i++)
		err = param_add_json(req, root->u.object.keys[i], root->u.object.values[i]);
	yajl_tree_free(root);
	return err;
}

enum body_format { BODY_NONE, BODY_JSON, BODY_FORM, BODY_UNSUPPORTED };

static bool
media_type_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return strncasecmp(ct, want, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static enum body_format
body_format(const struct request *req)
{
	const char *ct = req->content_type ? req->content_type : "";
	size_t i = 0;

	while (i < req->body_len && isspace((unsigned char)req->body[i]))
		i++;
	if (i == req->body_len)
		return BODY_NONE;
	if (media_type_is(ct, "application/json"))
		return BODY_JSON;
	if (media_type_is(ct, "application/x-www-form-urlencoded"))
		return BODY_FORM;
	/* No usable Content-Type: trust the body's first character. */
	if (*ct == '\0' || media_type_is(ct, "text/plain") ||
	    media_type_is(ct, "application/octet-stream"))
		return req->body[i] == '{' || req->body[i] == '[' ? BODY_JSON : BODY_FORM;
	return BODY_UNSUPPORTED;
}

enum casq_err
request_parse_params(struct request *req)
{
	const char *q = strchr(req->uri ? req->uri : "", '?');
	enum casq_err err = E_OK;

	if (q != NULL && (err = parse_form(req, q + 1, strlen(q + 1))) != E_OK)
		return err;
	switch (body_format(req)) {
	case BODY_NONE:
		break;
	case BODY_JSON:
		err = parse_json(req);
		break;
	case BODY_FORM:
		err = parse_form(req, req->body, req->body_len);
		break;
	case BODY_UNSUPPORTED:
		err = E_UNSUPPORTED_BODY;
		break;
	}
	return err;
}

void
request_free(struct request *req)
{
	for (size_t i = 0; i < req->nparams; i++) {
		free(req->params[i].name);
		free(req->params[i].value);
	}
	free(req->params);
	free(req->request_id);
	req->params = NULL;
	req->request_id = NULL;
	req->nparams = 0;
}
