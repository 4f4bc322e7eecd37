/*
 * route_params.c - typed parameters shared by the routes: text, keys,
 * seconds, integers and JSON values, each with its own error. Numbers
 * are read whole and strictly: a NUL, a space, a '+' or trailing text is
 * refused, never cut off (lease=5%00junk is not a 5 s lease).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

enum casq_err
param_text(const struct request *req, const char *name, size_t max,
    enum casq_err bad, const char **out)
{
	const struct param *p = request_param(req, name);

	*out = NULL;
	if (p == NULL)
		return E_OK;
	if (p->kind == PARAM_JSON || p->len > max || strlen(p->value) != p->len ||
	    !utf8_valid(p->value, p->len))
		return bad;
	*out = p->value;
	return E_OK;
}

enum casq_err
param_key(const struct request *req, const char *name, const char **key)
{
	enum casq_err err = param_text(req, name, ITEM_KEY_MAX, E_BAD_KEY, key);

	if (err == E_OK && *key == NULL)
		return E_MISSING_KEY;
	if (err == E_OK && **key == '\0')
		return E_BAD_KEY;
	return err;
}

/* A number's text: from a query, a form or a JSON string or number,
 * whole (no NUL inside); NULL for anything else. */
static const char *
number_text(const struct param *p)
{
	if ((p->kind != PARAM_STRING && p->kind != PARAM_NUMBER) ||
	    strlen(p->value) != p->len)
		return NULL;
	return p->value;
}

enum casq_err
param_seconds(const struct request *req, const char *name, bool positive,
    int64_t max_ms, enum casq_err bad, int64_t *ms)
{
	const struct param *p = request_param(req, name);
	const char *text;
	int64_t v;

	if (p == NULL)
		return E_OK;
	if ((text = number_text(p)) == NULL || !parse_seconds_ms(text, &v) ||
	    v > max_ms || (positive && v == 0))
		return bad;
	*ms = v;
	return E_OK;
}

enum casq_err
param_json_value(const struct request *req, const char *name,
    enum casq_err bad, enum casq_err too_large, struct buf *out)
{
	const struct param *p = request_param(req, name);
	struct json j;

	if (p == NULL)
		return E_OK;
	if (p->kind == PARAM_STRING) {
		if (strlen(p->value) != p->len || !utf8_valid(p->value, p->len))
			return bad;
		json_begin(&j, out);
		json_strn(&j, NULL, p->value, p->len);
	} else {
		buf_append(out, p->value, p->len);
	}
	return out->len > PAYLOAD_MAX ? too_large : E_OK;
}

/* Digits, with one leading '-' when negatives are allowed; no sign,
 * space or other character anywhere else (strtoll would skip leading
 * spaces and take a '+'). */
static bool
int_text_valid(const char *s, bool negative_ok)
{
	if (*s == '-' && negative_ok)
		s++;
	if (*s == '\0')
		return false;
	return strspn(s, "0123456789") == strlen(s);
}

enum casq_err
param_int(const struct request *req, const char *name, int64_t min,
    int64_t max, enum casq_err bad, bool *given, int64_t *out)
{
	const struct param *p = request_param(req, name);
	const char *text;
	char *end;
	long long v;

	*given = false;
	if (p == NULL)
		return E_OK;
	if ((text = number_text(p)) == NULL || !int_text_valid(text, min < 0))
		return bad;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return bad;
	*given = true;
	*out = (int64_t)v;
	return E_OK;
}

enum casq_err
param_limit(const struct request *req, size_t def, size_t max, size_t *limit)
{
	enum casq_err err;
	int64_t v;
	bool given;

	*limit = def;
	if ((err = param_int(req, "limit", 1, (int64_t)max, E_BAD_LIMIT, &given, &v)) == E_OK &&
	    given)
		*limit = (size_t)v;
	return err;
}

enum casq_err
param_annotations(const struct request *req, struct buf *out)
{
	struct json j;

	json_begin(&j, out);
	for (size_t i = 0; i < req->nparams; i++) {
		const struct param *p = &req->params[i];

		if (strncmp(p->name, "x_", 2) != 0)
			continue;
		if (!utf8_valid(p->name, strlen(p->name)))
			return E_BAD_ANNOTATION;
		if (p->kind == PARAM_JSON || p->kind == PARAM_NUMBER || p->kind == PARAM_BOOL) {
			json_raw(&j, p->name, p->value, p->len);
		} else {
			if (strlen(p->value) != p->len || !utf8_valid(p->value, p->len))
				return E_BAD_ANNOTATION;
			json_strn(&j, p->name, p->value, p->len);
		}
	}
	return out->len > HISTORY_ANNOTATIONS_MAX ? E_BAD_ANNOTATION : E_OK;
}

enum casq_err
param_bool(const struct request *req, const char *name, enum casq_err bad,
    bool *out)
{
	const struct param *p = request_param(req, name);

	if (p == NULL)
		return E_OK;
	if ((p->kind != PARAM_STRING && p->kind != PARAM_BOOL) ||
	    strlen(p->value) != p->len)
		return bad;
	if (strcmp(p->value, "true") == 0)
		*out = true;
	else if (strcmp(p->value, "false") == 0)
		*out = false;
	else
		return bad;
	return E_OK;
}
