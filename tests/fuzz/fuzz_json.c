/*
 * fuzz_json.c - JSON bodies into parameters (json_body_parse), and
 * casq's JSON writer against yajl.
 *
 * Input: the body, as read_body hands it over (heap, NUL-terminated).
 *
 * Checks, beyond the parameter invariants of fuzz.h:
 * - a nested value (PARAM_JSON) is canonical: sent again as the value of
 *   a member it reads back as the same text;
 * - a string (PARAM_STRING) written by casq's JSON writer (json_strn, as
 *   answers carry keys, owners and payloads) reads back as the same bytes;
 * - a number keeps yajl's text, which is valid JSON by itself.
 */
#include "fuzz.h"

/* Parse body as a JSON body and return the parameter "v" (or NULL). */
static const struct param *
reparse(struct request *req, struct buf *body)
{
	memset(req, 0, sizeof *req);
	req->body = body->data;
	req->body_len = body->len;
	if (json_body_parse(req) != E_OK)
		return NULL;
	return request_param(req, "v");
}

static void
check_roundtrip(const struct param *p)
{
	struct buf body = { 0 };
	struct request again;
	const struct param *q;
	struct json j;

	json_begin(&j, &body);
	json_obj_open(&j, NULL);
	if (p->kind == PARAM_STRING)
		json_strn(&j, "v", p->value, p->len);
	else
		json_raw(&j, "v", p->value, p->len);
	json_obj_close(&j);

	q = reparse(&again, &body);
	fuzz_check(q != NULL, "'%s' (kind %d) written as %s does not read back",
	    p->name, p->kind, body.data);
	fuzz_check(q->kind == p->kind && q->len == p->len &&
	    memcmp(q->value, p->value, p->len) == 0,
	    "'%s' (kind %d, %zu bytes) reads back as kind %d, %zu bytes: %s",
	    p->name, p->kind, p->len, q->kind, q->len, body.data);
	request_free(&again);
	buf_free(&body);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct request req = { 0 };
	enum casq_err err;

	req.method = "POST";
	req.uri = "/";
	req.content_type = "application/json";
	req.body = xstrndup((const char *)data, size);
	req.body_len = size;
	err = json_body_parse(&req);
	fuzz_check_params(&req);
	fuzz_check(err == E_OK || err_status(err) == 400, "error %s", err_code(err));
	if (err == E_OK) {
		fuzz_check(size > 0, "an empty body parsed");
		for (size_t i = 0; i < req.nparams; i++) {
			const struct param *p = &req.params[i];

			if (p->kind == PARAM_NUMBER)
				fuzz_check(fuzz_json_valid(p->value, p->len),
				    "number '%s' is not JSON", p->value);
			if (p->kind == PARAM_STRING || p->kind == PARAM_JSON)
				check_roundtrip(p);
		}
	}
	request_free(&req);
	free(req.body);
	return 0;
}
