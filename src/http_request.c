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


#include "http.h"

#define PARAMS_MAX	64


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

enum casq_err
request_param_add(struct request *req, const char *name, size_t nlen,
    const char *value, size_t vlen, enum param_kind kind)
{
	struct param *p;

	if (memchr(name, '\0', nlen) != NULL)
		return E_BAD_PARAM;	/* a name cut short would be another name */
	/* Every route takes a handful; more is abuse, and the duplicate
	 * check below is quadratic in the count. */
	if (req->nparams >= PARAMS_MAX)
		return E_BAD_PARAM;
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
				err = request_param_add(req, name.data, name.len,
				    value.data, value.len, PARAM_STRING);
		}
		i = end + 1;
	}
	buf_free(&name);
	buf_free(&value);
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
	/* A JSON template sent with a form type (Marketo's Content-Type is
	 * not documented) still reads as JSON: no form body starts with '{'. */
	if (media_type_is(ct, "application/x-www-form-urlencoded"))
		return req->body[i] == '{' ? BODY_JSON : BODY_FORM;
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
		err = json_body_parse(req);
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
	free(req->err_param);
	req->params = NULL;
	req->request_id = NULL;
	req->err_param = NULL;
	req->nparams = 0;
}
