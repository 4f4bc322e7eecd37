/*
 * test_request.c - the HTTP layer without FastCGI: parameters from query
 * strings, form and JSON bodies (with Content-Type or sniffed), the
 * helpers under them (url_decode, utf8_valid, parse_seconds_ms), typed
 * parameters, the JSON writer, the error table, API keys, and whole
 * requests through route_request against a real store in a temp dir.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include "route.h"
#include "tap.h"

#define T0	1764194281000LL		/* 2025-11-26T21:58:01Z */
#define T0_ISO	"2025-11-26T21:58:01Z"

static char tmproot[] = "/tmp/casq-test-request.XXXXXX";

/* --- requests built by hand, as worker.c builds them --- */

static void
req_init(struct request *req, const char *method, const char *uri,
    const char *content_type, const char *body)
{
	size_t n = body ? strlen(body) : 0;

	memset(req, 0, sizeof *req);
	req->method = method;
	req->uri = uri;
	req->content_type = content_type;
	req->body = xstrndup(body ? body : "", n);	/* heap, NUL-terminated */
	req->body_len = n;
	req->now = T0;
}

static void
req_done(struct request *req)
{
	request_free(req);
	free(req->body);
	req->body = NULL;
}

static enum casq_err
parse(struct request *req, const char *uri, const char *ct, const char *body)
{
	req_init(req, "POST", uri, ct, body);
	return request_parse_params(req);
}

static const char *
pval(const struct request *req, const char *name)
{
	const struct param *p = request_param(req, name);

	return p ? p->value : NULL;
}

static int
pkind(const struct request *req, const char *name)
{
	const struct param *p = request_param(req, name);

	return p ? (int)p->kind : -1;
}

/* --- query strings and bodies --- */

static void
test_query(void)
{
	struct request req;

	is_int(parse(&req, "/x?a=1&b=hello+world&c=%41%42%2b%2F&d=&e", NULL, NULL), E_OK,
	    "request: query parses");
	is_str(pval(&req, "a"), "1", "request: query a=1");
	is_str(pval(&req, "b"), "hello world", "request: query '+' is a space");
	is_str(pval(&req, "c"), "AB+/", "request: query %%XX escapes, %%2b is a literal '+'");
	is_str(pval(&req, "d"), "", "request: query d= is an empty value");
	is_str(pval(&req, "e"), "", "request: query name without '=' is an empty value");
	is_str(pval(&req, "f"), NULL, "request: absent parameter is NULL");
	is_int(pkind(&req, "a"), PARAM_STRING, "request: query values are strings");
	is_int(req.nparams, 5, "request: query gives 5 parameters");
	req_done(&req);

	is_int(parse(&req, "/x?&a=1&&=v&", NULL, NULL), E_OK, "request: query with empty segments parses");
	is_int(req.nparams, 1, "request: empty segments and empty names are skipped");
	req_done(&req);

	is_int(parse(&req, "/x?na%6De=%E2%82%AC", NULL, NULL), E_OK, "request: query with escaped name");
	is_str(pval(&req, "name"), "\xe2\x82\xac", "request: escaped name and UTF-8 value decode");
	req_done(&req);

	is_int(parse(&req, "/x", NULL, NULL), E_OK, "request: no query, no body");
	is_int(req.nparams, 0, "request: ... gives no parameters");
	req_done(&req);

	is_int(parse(&req, "/x?a=%zz", NULL, NULL), E_MALFORMED_FORM, "request: query %%zz is malformed");
	req_done(&req);
	is_int(parse(&req, "/x?a=%4", NULL, NULL), E_MALFORMED_FORM, "request: query trailing %%4 is malformed");
	req_done(&req);
	is_int(parse(&req, "/x?a=1&b=%", NULL, NULL), E_MALFORMED_FORM, "request: query trailing %% is malformed");
	req_done(&req);
	is_int(parse(&req, "/x?%zz=1", NULL, NULL), E_MALFORMED_FORM, "request: bad escape in a name is malformed");
	req_done(&req);
}

static void
test_form(void)
{
	struct request req;
	const char *form = "application/x-www-form-urlencoded";

	is_int(parse(&req, "/x", form, "key=k1&payload=%7B%7D&claimant=a+b"), E_OK, "request: form body parses");
	is_str(pval(&req, "key"), "k1", "request: form key");
	is_str(pval(&req, "payload"), "{}", "request: form %%-escapes decode");
	is_str(pval(&req, "claimant"), "a b", "request: form '+' is a space");
	req_done(&req);

	is_int(parse(&req, "/x", "application/x-www-form-urlencoded; charset=UTF-8", "a=1"), E_OK,
	    "request: form Content-Type with charset parameter");
	is_str(pval(&req, "a"), "1", "request: ... parses the form");
	req_done(&req);

	is_int(parse(&req, "/x", form, "a=%g1"), E_MALFORMED_FORM, "request: form body %%g1 is malformed");
	req_done(&req);
	is_int(parse(&req, "/x", form, "a=1&b=%4"), E_MALFORMED_FORM, "request: form body trailing %%4 is malformed");
	req_done(&req);
	is_int(parse(&req, "/x", form, "a=%00"), E_OK, "request: form %%00 decodes (checked later per parameter)");
	is_int(request_param(&req, "a") ? (long long)request_param(&req, "a")->len : -1, 1,
	    "request: ... keeping its length 1");
	req_done(&req);
}

static void
test_json(void)
{
	struct request req;
	const char *json = "application/json";
	enum casq_err err;

	is_int(parse(&req, "/x", json,
	    "{\"s\":\"str\",\"n\":-1.5e3,\"i\":42,\"t\":true,\"f\":false,"
	    "\"o\":{\"a\": [1, 2]},\"arr\":[ \"x\" , {\"b\":null} ],\"e\":\"a\\\"b\\\\c\\u00e9\\n\"}"),
	    E_OK, "request: JSON body parses");
	is_str(pval(&req, "s"), "str", "request: JSON string value");
	is_int(pkind(&req, "s"), PARAM_STRING, "request: JSON string is PARAM_STRING");
	is_str(pval(&req, "n"), "-1.5e3", "request: JSON number keeps its text");
	is_int(pkind(&req, "n"), PARAM_NUMBER, "request: JSON number is PARAM_NUMBER");
	is_str(pval(&req, "i"), "42", "request: JSON integer");
	is_str(pval(&req, "t"), "true", "request: JSON true");
	is_str(pval(&req, "f"), "false", "request: JSON false");
	is_int(pkind(&req, "f"), PARAM_BOOL, "request: JSON bool is PARAM_BOOL");
	is_str(pval(&req, "o"), "{\"a\":[1,2]}", "request: JSON object re-emitted compactly");
	is_int(pkind(&req, "o"), PARAM_JSON, "request: JSON object is PARAM_JSON");
	is_str(pval(&req, "arr"), "[\"x\",{\"b\":null}]", "request: JSON array re-emitted compactly");
	is_str(pval(&req, "e"), "a\"b\\c\xc3\xa9\n", "request: JSON string escapes decode");
	req_done(&req);

	/* null is refused, naming the member, never taken as "not given". */
	is_int(parse(&req, "/x", json, "{\"key\":\"a\",\"cas\":null}"), E_NULL_PARAM,
	    "request: a null member is E_NULL_PARAM");
	is_str(req.err_param, "cas", "request: ... naming it");
	req_done(&req);
	is_int(parse(&req, "/x", json, "{\"key\":\"a\",\"x_note\":null}"), E_OK,
	    "request: a null x_ annotation is ignored");
	is_str(pval(&req, "x_note"), NULL, "request: ... and not a parameter");
	req_done(&req);

	is_int(parse(&req, "/x", json, "{\"o\":{\"q\":\"a\\\"b\",\"u\":\"\\u00e9\"}}"), E_OK,
	    "request: JSON object with escapes parses");
	is_str(pval(&req, "o"), "{\"q\":\"a\\\"b\",\"u\":\"\xc3\xa9\"}",
	    "request: re-emitted object keeps escapes valid and UTF-8 raw");
	req_done(&req);

	is_int(parse(&req, "/x", "application/json; charset=utf-8", "{\"a\":\"1\"}"), E_OK,
	    "request: JSON Content-Type with charset parameter");
	is_str(pval(&req, "a"), "1", "request: ... parses the JSON");
	req_done(&req);
	is_int(parse(&req, "/x", "Application/JSON;charset=UTF-8", "{\"a\":\"1\"}"), E_OK,
	    "request: media type matched case-insensitively");
	is_str(pval(&req, "a"), "1", "request: ... parses the JSON");
	req_done(&req);

	/* A NUL inside \u escapes: yajl_tree keeps no string length. */
	err = parse(&req, "/x", json, "{\"key\":\"a\\u0000b\"}");
	ok(err != E_OK || param_key(&req, "key", &(const char *){ NULL }) == E_BAD_KEY,
	    "request: a JSON key with \\u0000 is refused, not cut at the NUL (parse %s, key '%s')",
	    err_code(err), pval(&req, "key") ? pval(&req, "key") : "(none)");
	req_done(&req);
	err = parse(&req, "/x", json, "{\"o\":{\"s\":\"x\\u0000y\"}}");
	ok(err != E_OK || (pval(&req, "o") && strcmp(pval(&req, "o"), "{\"s\":\"x\\u0000y\"}") == 0),
	    "request: \\u0000 inside a JSON object is refused or kept, not cut (parse %s, value %s)",
	    err_code(err), pval(&req, "o") ? pval(&req, "o") : "(none)");
	req_done(&req);
}

static void
test_sniffing(void)
{
	struct request req;

	is_int(parse(&req, "/x", NULL, "{\"a\":\"j\"}"), E_OK, "request: no Content-Type, JSON body");
	is_str(pval(&req, "a"), "j", "request: JSON sniffed without Content-Type");
	req_done(&req);
	is_int(parse(&req, "/x", NULL, "a=f"), E_OK, "request: no Content-Type, form body");
	is_str(pval(&req, "a"), "f", "request: form sniffed without Content-Type");
	req_done(&req);
	is_int(parse(&req, "/x", "text/plain", " \n{\"a\":\"j\"}"), E_OK, "request: text/plain, JSON body after whitespace");
	is_str(pval(&req, "a"), "j", "request: JSON sniffed under text/plain");
	req_done(&req);
	is_int(parse(&req, "/x", "text/plain; charset=utf-8", "a=f"), E_OK, "request: text/plain, form body");
	is_str(pval(&req, "a"), "f", "request: form sniffed under text/plain");
	req_done(&req);
	is_int(parse(&req, "/x", "application/octet-stream", "{\"a\":\"j\"}"), E_OK,
	    "request: octet-stream is sniffed too");
	is_str(pval(&req, "a"), "j", "request: JSON sniffed under octet-stream");
	req_done(&req);
	is_int(parse(&req, "/x", NULL, "[1]"), E_MALFORMED_JSON, "request: sniffed JSON array is not an object");
	req_done(&req);
	is_int(parse(&req, "/x", "application/json", " \r\n "), E_OK, "request: whitespace-only body is no body");
	is_int(req.nparams, 0, "request: ... and gives no parameters");
	req_done(&req);

	is_int(parse(&req, "/x", "application/xml", "<a/>"), E_UNSUPPORTED_BODY, "request: application/xml is unsupported");
	req_done(&req);
	is_int(parse(&req, "/x", "multipart/form-data; boundary=x", "--x"), E_UNSUPPORTED_BODY,
	    "request: multipart is unsupported");
	req_done(&req);
	is_int(parse(&req, "/x", "application/jsonx", "{}"), E_UNSUPPORTED_BODY,
	    "request: a media type that only starts with application/json is unsupported");
	req_done(&req);
	is_int(parse(&req, "/x", "application/xml", ""), E_OK, "request: an unsupported type with no body is fine");
	req_done(&req);
}

static void
test_malformed_json(void)
{
	static const char *const bad[] = {
		"{\"a\":", "[1,2]", "\"str\"", "42", "{\"a\":1} x", "{\"a\":1}{\"b\":2}",
		"{a:1}", "{\"a\":1,}", "{\"a\":'x'}",
	};
	struct request req;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		is_int(parse(&req, "/x", "application/json", bad[i]), E_MALFORMED_JSON,
		    "request: malformed JSON refused (%s)", bad[i]);
		req_done(&req);
	}
	req_init(&req, "POST", "/x", "application/json", NULL);
	free(req.body);
	req.body = xmalloc(16);
	memcpy(req.body, "{\"a\":1}\0xx", 11);
	req.body_len = 10;
	is_int(request_parse_params(&req), E_MALFORMED_JSON, "request: a NUL inside a JSON body is malformed");
	req_done(&req);
}

static void
test_conflicts(void)
{
	struct request req;
	const char *form = "application/x-www-form-urlencoded";

	is_int(parse(&req, "/x?a=1&a=1", NULL, NULL), E_OK, "request: same query parameter twice, same value");
	is_int(req.nparams, 1, "request: ... kept once");
	req_done(&req);
	is_int(parse(&req, "/x?a=1", form, "a=1"), E_OK, "request: query and form body agree");
	req_done(&req);
	is_int(parse(&req, "/x?a=1", "application/json", "{\"a\":1}"), E_OK, "request: query \"1\" and JSON 1 agree");
	req_done(&req);
	is_int(parse(&req, "/x?a=1&a=2", NULL, NULL), E_CONFLICTING_PARAM, "request: query a=1&a=2 conflicts");
	req_done(&req);
	is_int(parse(&req, "/x?a=1", form, "a=2"), E_CONFLICTING_PARAM, "request: query vs form body conflict");
	req_done(&req);
	is_int(parse(&req, "/x?a=1", "application/json", "{\"a\":\"2\"}"), E_CONFLICTING_PARAM,
	    "request: query vs JSON body conflict");
	req_done(&req);
	is_int(parse(&req, "/x", form, "a=1&a=2"), E_CONFLICTING_PARAM, "request: conflict within one form body");
	req_done(&req);
	is_int(parse(&req, "/x", "application/json", "{\"a\":\"x\",\"a\":\"y\"}"), E_CONFLICTING_PARAM,
	    "request: conflict within one JSON body");
	req_done(&req);
}

/* A JSON body {"p": <depth nested arrays around inner>}. */
static char *
nested(int depth, const char *inner)
{
	struct buf b = { 0 };

	buf_puts(&b, "{\"p\":");
	for (int i = 0; i < depth; i++)
		buf_puts(&b, "[");
	buf_puts(&b, inner);
	for (int i = 0; i < depth; i++)
		buf_puts(&b, "]");
	buf_puts(&b, "}");
	return b.data;
}

static void
test_depth(void)
{
	struct request req;
	char *body;

	body = nested(40, "1");
	is_int(parse(&req, "/x", "application/json", body), E_JSON_TOO_DEEP, "request: JSON nested 40 deep is refused");
	req_done(&req);
	free(body);
	body = nested(33, "");
	is_int(parse(&req, "/x", "application/json", body), E_JSON_TOO_DEEP, "request: JSON value nested 33 deep is refused");
	req_done(&req);
	free(body);
	body = nested(32, "");
	is_int(parse(&req, "/x", "application/json", body), E_OK, "request: JSON value nested 32 deep (empty) is accepted");
	req_done(&req);
	free(body);
	body = nested(31, "1");
	is_int(parse(&req, "/x", "application/json", body), E_OK, "request: JSON value nested 31 deep around 1 is accepted");
	req_done(&req);
	free(body);
	/* "nested at most 32 deep" (E_JSON_TOO_DEEP): 32 arrays
	 * around a number are 32 deep, as 32 around nothing are. */
	body = nested(32, "1");
	is_int(parse(&req, "/x", "application/json", body), E_OK, "request: JSON value nested 32 deep around 1 is accepted");
	req_done(&req);
	free(body);

	/* Brackets inside strings do not nest. */
	body = nested(0, "\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"");
	is_int(parse(&req, "/x", "application/json", body), E_OK, "request: brackets inside a string do not count as depth");
	req_done(&req);
	free(body);

	/* 60000 '[' would make yajl recurse: refused before parsing. */
	{
		struct buf b = { 0 };
		buf_puts(&b, "{\"p\":");
		for (int i = 0; i < 60000; i++)
			buf_puts(&b, "[");
		is_int(parse(&req, "/x", "application/json", b.data), E_JSON_TOO_DEEP,
		    "request: 60000 open brackets refused as too deep");
		req_done(&req);
		buf_free(&b);
	}
}

/* --- helpers under the parser --- */

static const char *
decode(const char *s, size_t n, bool plus)
{
	static char out[64];
	struct buf b = { 0 };

	if (!url_decode(s, n, plus, &b))
		snprintf(out, sizeof out, "(false)");
	else
		snprintf(out, sizeof out, "%s|%zu", b.data, b.len);
	buf_free(&b);
	return out;
}

static void
test_url_decode(void)
{
	is_str(decode("a%20b", 5, false), "a b|3", "url_decode: %%20");
	is_str(decode("a+b", 3, false), "a+b|3", "url_decode: '+' kept when not a space");
	is_str(decode("a+b", 3, true), "a b|3", "url_decode: '+' as space");
	is_str(decode("%4a%4A", 6, true), "JJ|2", "url_decode: hex digits in either case");
	is_str(decode("", 0, true), "|0", "url_decode: empty input");
	is_str(decode("%00", 3, true), "|1", "url_decode: %%00 gives one NUL byte");
	is_str(decode("%", 1, true), "(false)", "url_decode: lone %%");
	is_str(decode("%4", 2, true), "(false)", "url_decode: %% with one digit");
	is_str(decode("ab%", 3, true), "(false)", "url_decode: trailing %%");
	is_str(decode("%zz", 3, true), "(false)", "url_decode: %%zz");
	is_str(decode("%0g", 3, true), "(false)", "url_decode: %%0g");
	is_str(decode("abc", 2, true), "ab|2", "url_decode: stops at n");
	is_str(decode("%41", 2, true), "(false)", "url_decode: an escape cut by n is malformed");
	is_str(decode("%41", 3, true), "A|1", "url_decode: escape ending exactly at n");
}

static void
test_utf8(void)
{
	static const struct { const char *s; size_t n; bool want; const char *what; } cases[] = {
		{ "", 0, true, "empty" },
		{ "abc", 3, true, "ASCII" },
		{ "\xc3\xa9", 2, true, "2-byte e-acute" },
		{ "\xe2\x82\xac", 3, true, "3-byte euro" },
		{ "\xf0\x9f\x98\x80", 4, true, "4-byte emoji" },
		{ "\xf4\x8f\xbf\xbf", 4, true, "U+10FFFF" },
		{ "\xed\x9f\xbf", 3, true, "U+D7FF, just below the surrogates" },
		{ "\xc0\x80", 2, false, "overlong NUL C0 80" },
		{ "\xc1\xbf", 2, false, "overlong C1 BF" },
		{ "\xe0\x80\x80", 3, false, "overlong 3-byte" },
		{ "\xf0\x80\x80\x80", 4, false, "overlong 4-byte" },
		{ "\xed\xa0\x80", 3, false, "surrogate U+D800" },
		{ "\xed\xbf\xbf", 3, false, "surrogate U+DFFF" },
		{ "\xf4\x90\x80\x80", 4, false, "above U+10FFFF" },
		{ "\xf5\x80\x80\x80", 4, false, "lead byte F5" },
		{ "\xff", 1, false, "byte FF" },
		{ "\x80", 1, false, "bare continuation byte" },
		{ "\xc3", 1, false, "truncated 2-byte" },
		{ "\xe2\x82", 2, false, "truncated 3-byte" },
		{ "\xf0\x9f\x98", 3, false, "truncated 4-byte" },
		{ "a\xc3\xa9", 2, false, "truncated by n" },
		{ "\xc3\x28", 2, false, "bad continuation byte" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		is_int(utf8_valid(cases[i].s, cases[i].n), cases[i].want, "utf8_valid: %s", cases[i].what);
}

static void
test_seconds(void)
{
	static const struct { const char *s; bool ok; int64_t ms; } cases[] = {
		{ "1", true, 1000 }, { "1.5", true, 1500 }, { "0.001", true, 1 },
		{ "0", true, 0 }, { "12", true, 12000 }, { "1.000", true, 1000 },
		{ "1.50", true, 1500 }, { "31536000", true, 31536000000LL },
		{ "1.0001", false, 0 }, { "0.0005", false, 0 }, { "", false, 0 },
		{ "-1", false, 0 }, { "+1", false, 0 }, { "1e3", false, 0 },
		{ "1.", false, 0 }, { ".5", false, 0 }, { " 1", false, 0 },
		{ "1 ", false, 0 }, { "99999999999999999999", false, 0 },
		{ "9223372036854776", false, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t ms = -7;
		bool got = parse_seconds_ms(cases[i].s, &ms);

		if (cases[i].ok)
			ok(got && ms == cases[i].ms, "parse_seconds_ms: \"%s\" is %lld ms (got %s, %lld)",
			    cases[i].s, (long long)cases[i].ms, got ? "true" : "false", (long long)ms);
		else
			ok(!got, "parse_seconds_ms: \"%s\" is refused", cases[i].s);
	}
}

/* --- typed parameters (route_params.c) --- */

static void
test_typed_params(void)
{
	struct request req;
	const char *key;
	char *uri;
	int64_t ms;
	struct buf b = { 0 };
	bool given;
	int64_t v;

	parse(&req, "/x", NULL, NULL);
	is_int(param_key(&req, "key", &key), E_MISSING_KEY, "param_key: absent is E_MISSING_KEY");
	req_done(&req);
	parse(&req, "/x?key=", NULL, NULL);
	is_int(param_key(&req, "key", &key), E_BAD_KEY, "param_key: empty is E_BAD_KEY");
	req_done(&req);
	parse(&req, "/x?key=a%00b", NULL, NULL);
	is_int(param_key(&req, "key", &key), E_BAD_KEY, "param_key: NUL inside is E_BAD_KEY");
	req_done(&req);
	parse(&req, "/x?key=%C3%28", NULL, NULL);
	is_int(param_key(&req, "key", &key), E_BAD_KEY, "param_key: invalid UTF-8 is E_BAD_KEY");
	req_done(&req);
	parse(&req, "/x", "application/json", "{\"key\":{\"a\":1}}");
	is_int(param_key(&req, "key", &key), E_BAD_KEY, "param_key: a JSON object is E_BAD_KEY");
	req_done(&req);
	parse(&req, "/x", "application/json", "{\"key\":null}");
	is_int(param_key(&req, "key", &key), E_MISSING_KEY, "param_key: JSON null is E_MISSING_KEY");
	req_done(&req);

	uri = xmalloc(8 + 258);
	strcpy(uri, "/x?key=");
	memset(uri + 7, 'k', 256);
	uri[7 + 256] = '\0';
	parse(&req, uri, NULL, NULL);
	is_int(param_key(&req, "key", &key), E_OK, "param_key: 256 bytes is fine");
	req_done(&req);
	strcat(uri, "k");
	parse(&req, uri, NULL, NULL);
	is_int(param_key(&req, "key", &key), E_BAD_KEY, "param_key: 257 bytes is E_BAD_KEY");
	req_done(&req);
	free(uri);

	ms = -1;
	parse(&req, "/x?lease=1.5", NULL, NULL);
	is_int(param_seconds(&req, "lease", true, 604800000, E_BAD_LEASE, &ms), E_OK, "param_seconds: 1.5 parses");
	is_int(ms, 1500, "param_seconds: 1.5 is 1500 ms");
	is_int(param_seconds(&req, "nope", true, 604800000, E_BAD_LEASE, &ms), E_OK, "param_seconds: absent is fine");
	is_int(ms, 1500, "param_seconds: absent leaves the value alone");
	req_done(&req);
	parse(&req, "/x?lease=0", NULL, NULL);
	is_int(param_seconds(&req, "lease", true, 604800000, E_BAD_LEASE, &ms), E_BAD_LEASE, "param_seconds: 0 refused when positive");
	is_int(param_seconds(&req, "lease", false, 604800000, E_BAD_LEASE, &ms), E_OK, "param_seconds: 0 accepted otherwise");
	req_done(&req);
	parse(&req, "/x?lease=604801", NULL, NULL);
	is_int(param_seconds(&req, "lease", true, 604800000, E_BAD_LEASE, &ms), E_BAD_LEASE, "param_seconds: above max refused");
	req_done(&req);
	parse(&req, "/x", "application/json", "{\"lease\":2,\"b\":true}");
	is_int(param_seconds(&req, "lease", true, 604800000, E_BAD_LEASE, &ms), E_OK, "param_seconds: JSON number accepted");
	is_int(ms, 2000, "param_seconds: JSON 2 is 2000 ms");
	is_int(param_seconds(&req, "b", true, 604800000, E_BAD_LEASE, &ms), E_BAD_LEASE, "param_seconds: JSON bool refused");
	req_done(&req);

	parse(&req, "/x?payload=he%22llo", NULL, NULL);
	is_int(param_json_value(&req, "payload", E_BAD_PAYLOAD, E_PAYLOAD_TOO_LARGE, &b), E_OK, "param_json_value: text parses");
	is_str(b.data, "\"he\\\"llo\"", "param_json_value: text becomes a JSON string");
	req_done(&req);
	buf_free(&b);
	parse(&req, "/x", "application/json", "{\"payload\":{\"a\": 1},\"n\":12}");
	is_int(param_json_value(&req, "payload", E_BAD_PAYLOAD, E_PAYLOAD_TOO_LARGE, &b), E_OK, "param_json_value: object parses");
	is_str(b.data, "{\"a\":1}", "param_json_value: JSON object kept compact");
	buf_free(&b);
	param_json_value(&req, "n", E_BAD_PAYLOAD, E_PAYLOAD_TOO_LARGE, &b);
	is_str(b.data, "12", "param_json_value: JSON number kept as a number");
	buf_free(&b);
	req_done(&req);
	{
		struct buf body = { 0 };
		buf_puts(&body, "payload=");
		for (int i = 0; i < PAYLOAD_MAX - 2; i++)
			buf_puts(&body, "x");
		parse(&req, "/x", "application/x-www-form-urlencoded", body.data);
		is_int(param_json_value(&req, "payload", E_BAD_PAYLOAD, E_PAYLOAD_TOO_LARGE, &b), E_OK,
		    "param_json_value: a payload of exactly PAYLOAD_MAX bytes as JSON fits");
		buf_free(&b);
		req_done(&req);
		buf_puts(&body, "x");
		parse(&req, "/x", "application/x-www-form-urlencoded", body.data);
		is_int(param_json_value(&req, "payload", E_BAD_PAYLOAD, E_PAYLOAD_TOO_LARGE, &b), E_PAYLOAD_TOO_LARGE,
		    "param_json_value: one byte more is too large");
		buf_free(&b);
		req_done(&req);
		buf_free(&body);
	}

	parse(&req, "/x?n=12&m=1x&e=&neg=-5", NULL, NULL);
	is_int(param_int(&req, "n", 0, 100, E_BAD_PARAM, &given, &v), E_OK, "param_int: 12 parses");
	ok(given && v == 12, "param_int: 12 is given as 12");
	is_int(param_int(&req, "m", 0, 100, E_BAD_PARAM, &given, &v), E_BAD_PARAM, "param_int: 1x refused");
	is_int(param_int(&req, "e", 0, 100, E_BAD_PARAM, &given, &v), E_BAD_PARAM, "param_int: empty refused");
	is_int(param_int(&req, "neg", 0, 100, E_BAD_PARAM, &given, &v), E_BAD_PARAM, "param_int: below min refused");
	is_int(param_int(&req, "n", 0, 11, E_BAD_PARAM, &given, &v), E_BAD_PARAM, "param_int: above max refused");
	is_int(param_int(&req, "none", 0, 100, E_BAD_PARAM, &given, &v), E_OK, "param_int: absent is fine");
	ok(!given, "param_int: absent is not given");
	req_done(&req);
}

/* --- the JSON writer --- */

static void
test_json_writer(void)
{
	struct buf b = { 0 };
	struct json j;

	json_begin(&j, &b);
	json_obj_open(&j, NULL);
	json_str(&j, "z", "x");
	json_int(&j, "a", -3);
	json_bool(&j, "m", true);
	json_bool(&j, "f", false);
	json_raw(&j, "r", "[1]", 3);
	json_obj_close(&j);
	is_str(b.data, "{\"z\":\"x\",\"a\":-3,\"m\":true,\"f\":false,\"r\":[1]}", "json: keys in the order written");
	buf_free(&b);

	json_begin(&j, &b);
	json_obj_open(&j, NULL);
	json_str(&j, "s", "q\"b\\s/\n\t\x01\x1f\x7f\xc3\xa9");
	json_str(&j, "k\"ey", "");
	json_strn(&j, "n", "a\0b", 3);
	json_obj_close(&j);
	is_str(b.data, "{\"s\":\"q\\\"b\\\\s/\\u000a\\u0009\\u0001\\u001f\x7f\xc3\xa9\",\"k\\\"ey\":\"\",\"n\":\"a\\u0000b\"}",
	    "json: quotes, backslashes and control characters escaped, UTF-8 raw");
	buf_free(&b);

	json_begin(&j, &b);
	json_obj_open(&j, NULL);
	json_arr_open(&j, "a");
	json_int(&j, NULL, 1);
	json_int(&j, NULL, 2);
	json_obj_open(&j, NULL);
	json_arr_open(&j, "b");
	json_arr_close(&j);
	json_obj_close(&j);
	json_arr_open(&j, NULL);
	json_arr_close(&j);
	json_arr_close(&j);
	json_obj_open(&j, "c");
	json_obj_close(&j);
	json_int(&j, "d", LLONG_MIN);
	json_obj_close(&j);
	is_str(b.data, "{\"a\":[1,2,{\"b\":[]},[]],\"c\":{},\"d\":-9223372036854775808}",
	    "json: nested arrays and objects with commas right");
	buf_free(&b);

	json_begin(&j, &b);
	json_arr_open(&j, NULL);
	json_str(&j, NULL, "x");
	json_time(&j, NULL, 0);
	json_time(&j, NULL, T0 + 999);
	json_arr_close(&j);
	is_str(b.data, "[\"x\",\"1970-01-01T00:00:00Z\",\"" T0_ISO "\"]", "json: top-level array, times in ISO 8601 UTC");
	buf_free(&b);
}

/* --- the error table --- */

static void
test_errors(void)
{
	struct response res = { 0 };
	int missing = 0, dup = 0;

	is_int(err_status(E_MISSING_KEY), 400, "err_status(E_MISSING_KEY)");
	is_str(err_reason(E_MISSING_KEY), "Missing Key", "err_reason(E_MISSING_KEY)");
	is_str(err_code(E_MISSING_KEY), "missing_key", "err_code(E_MISSING_KEY)");
	is_int(err_status(E_STORAGE_FULL), 507, "err_status(E_STORAGE_FULL)");
	is_str(err_code(E_STORAGE_FULL), "storage_full", "err_code(E_STORAGE_FULL)");
	is_int(err_status(E_NO_QUEUE), 404, "err_status(E_NO_QUEUE)");
	is_int(err_status(E_UNSUPPORTED_BODY), 415, "err_status(E_UNSUPPORTED_BODY)");
	is_int(err_status(E_BODY_TOO_LARGE), 413, "err_status(E_BODY_TOO_LARGE)");
	is_int(err_status(E_INVALID_API_KEY), 401, "err_status(E_INVALID_API_KEY)");
	is_int(err_status(E_OK), 200, "err_status(E_OK)");
	for (int e = 0; e < E__COUNT; e++) {
		if (err_reason(e) == NULL || err_code(e) == NULL || err_status(e) < 200) {
			diag("error %d has no table row", e);
			missing++;
			continue;
		}
		for (int f = 0; f < e; f++)
			if (err_code(f) && strcmp(err_code(e), err_code(f)) == 0 &&
			    !(f == E_STORAGE_FULL && e == E_SPACE_REFUSED)) {
				diag("errors %d and %d share code %s", f, e, err_code(e));
				dup++;
			}
	}
	is_int(missing, 0, "err_table: every error has a status, reason and code");
	is_int(dup, 0, "err_table: every code is distinct (a space refusal is storage_full)");
	ok(err_status(E_SPACE_REFUSED) == 507 && strcmp(err_reason(E_SPACE_REFUSED), "Storage Full") == 0,
	    "err_table: a space refusal answers 507 Storage Full");

	response_error(&res, E_MISSING_KEY);
	is_int(res.status, 400, "response_error: status");
	is_str(res.body.data, "{\"error\":\"missing_key\",\"message\":\"parameter 'key' is required\"}",
	    "response_error: body is error code and message");
	ok(res.allow == NULL, "response_error: no Allow header for a 400");
	response_free(&res);
	memset(&res, 0, sizeof res);
	response_error(&res, E_METHOD);
	is_str(res.allow, "GET, POST", "response_error: 405 sets Allow");
	response_free(&res);
}

/* --- API keys --- */

static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", tmproot, name);
	if ((f = fopen(path, "w")) == NULL)
		bail_out("cannot write %s", path);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Every row of the error table appears in docs/api.md's table as
 * "| status | reason | `code` | `message` |" (a name placeholder written
 * <name>): a doc that disagrees with the code is a bug. */
static void
test_errors_documented(void)
{
	const char *src = getenv("CASQ_SRCDIR");
	char path[4096], row[1024], msg[512];
	struct buf doc = { 0 };
	FILE *f;
	size_t n;
	int undocumented = 0;

	snprintf(path, sizeof path, "%s/docs/api.md", src ? src : ".");
	if ((f = fopen(path, "r")) == NULL) {
		ok(false, "errors documented: cannot read %s", path);
		return;
	}
	while ((n = fread(row, 1, sizeof row, f)) > 0)
		buf_append(&doc, row, n);
	fclose(f);
	buf_append(&doc, "", 1);
	for (int e = 1; e < E__COUNT; e++) {
		const char *m = err_message(e), *ph = strstr(m, "%s");

		if (ph != NULL)
			snprintf(msg, sizeof msg, "%.*s<name>%s", (int)(ph - m), m, ph + 2);
		else
			snprintf(msg, sizeof msg, "%s", m);
		snprintf(row, sizeof row, "| %d | %s | `%s` | `%s` |", err_status(e),
		    err_reason(e), err_code(e), msg);
		if (strstr(doc.data, row) == NULL) {
			diag("not in docs/api.md: %s", row);
			undocumented++;
		}
	}
	is_int(undocumented, 0, "errors documented: every error's status, phrase, code and message is in docs/api.md");
	buf_free(&doc);
}

static void
test_keyring_load(void)
{
	static const char hash[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF";
	static const struct { const char *text; const char *where; const char *what; } bad[] = {
		{ "good:%s\nbad line\n", ":2:", "a line without a colon" },
		{ "short:0123\n", ":1:", "a short hash" },
		{ "# comment\n\nhex:%.63sg\n", ":3:", "a non-hex digit (after a comment and a blank line)" },
		{ ":%s\n", ":1:", "an empty name" },
		{ "n:%s extra\n", ":1:", "junk after the hash" },
		{ "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn:%s\n", ":1:", "a 65-byte name" },
		{ "a/b:%s\n", ":1:", "a name with '/'" },
		{ "a:%1$s\nb:%1$s\na:%1$s\n", ":3:", "a name used twice" },
		{ "n:%s scope=root\n", ":1:", "an unknown scope" },
		{ "n:%s rate=0\n", ":1:", "rate=0" },
		{ "n:%s rate=+5\n", ":1:", "rate=+5" },
		{ "n:%s rate=1000001\n", ":1:", "a rate over 1000000" },
		{ "n:%s colour=blue\n", ":1:", "an unknown attribute" },
		{ "n:%s scope\n", ":1:", "an attribute without a value" },
		{ "n:%s tenant=a/b\n", ":1:", "a tenant name with '/'" },
		{ "n:%s tenant=\n", ":1:", "an empty tenant" },
		{ "n:%s\ntenant t max_items=5\ntenant t max_items=6\n", ":3:", "a tenant's second quota line" },
		{ "n:%s\ntenant t max_items=0\n", ":2:", "max_items=0" },
		{ "n:%s\ntenant t\n", ":2:", "a tenant line without max_items" },
		{ "n:%s\ntenant t max_items=5 rate=3\n", ":2:", "a tenant line with another attribute" },
	};
	const struct api_key *k;
	char text[512], why[256], key[80], line[256];
	struct keyring *kr;
	const char *path;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, bad[i].text, hash);
		path = write_file("bad.keys", text);
		why[0] = '\0';
		kr = keyring_load(path, why, sizeof why);
		ok(kr == NULL && strstr(why, bad[i].where) != NULL,
		    "keyring_load: refuses %s, naming the line (%s)", bad[i].what, why);
		keyring_free(kr);
	}
	path = write_file("empty.keys", "# only a comment\n\n");
	kr = keyring_load(path, why, sizeof why);
	ok(kr == NULL && strstr(why, "no key") != NULL, "keyring_load: refuses a file with no key (%s)", why);
	keyring_free(kr);
	kr = keyring_load("/nonexistent/casq.keys", why, sizeof why);
	ok(kr == NULL && strstr(why, "cannot read") != NULL, "keyring_load: refuses a missing file (%s)", why);
	keyring_free(kr);

	keyring_mint("ops", key, line);
	ok(strncmp(key, "casq_", 5) == 0 && strlen(key) == 5 + 64, "keyring_mint: key is casq_ + 64 hex (%s)", key);
	ok(strncmp(line, "ops:", 4) == 0 && strlen(line) == 4 + 64, "keyring_mint: line is name:hash");
	snprintf(text, sizeof text, "  # keys\r\n%s \r\n", line);
	path = write_file("crlf.keys", text);
	kr = keyring_load(path, why, sizeof why);
	ok(kr != NULL, "keyring_load: accepts CRLF, trailing blanks and indented comments (%s)", kr ? "" : why);
	if (kr) {
		k = keyring_match(kr, key);
		is_str(k ? k->name : NULL, "ops", "keyring_match: the minted key matches its name");
		ok(k && k->scope == SCOPE_WRITE && k->rate == 0, "keyring_match: default scope write, no rate");
		ok(keyring_match(kr, "casq_wrong") == NULL, "keyring_match: another key matches nothing");
	}
	keyring_free(kr);
	snprintf(text, sizeof text, "%s\tscope=read   rate=20\n", line);
	path = write_file("attrs.keys", text);
	kr = keyring_load(path, why, sizeof why);
	k = kr ? keyring_match(kr, key) : NULL;
	ok(k && k->scope == SCOPE_READ && k->rate == 20, "keyring_load: scope=read rate=20 (%s)", kr ? "" : why);
	ok(k && strcmp(k->tenant, "default") == 0, "keyring_load: a key without tenant= is tenant default's");
	keyring_free(kr);
	snprintf(text, sizeof text, "%s tenant=acme scope=admin\ntenant acme max_items=100\n", line);
	path = write_file("tenant.keys", text);
	kr = keyring_load(path, why, sizeof why);
	k = kr ? keyring_match(kr, key) : NULL;
	ok(k && strcmp(k->tenant, "acme") == 0 && k->scope == SCOPE_ADMIN,
	    "keyring_load: tenant=acme scope=admin (%s)", kr ? "" : why);
	ok(kr && keyring_max_items(kr, "acme") == 100 && keyring_max_items(kr, "other") == 0,
	    "keyring_load: a tenant line sets that tenant's quota only");
	ok(kr && keyring_tenant_count(kr) == 1 && strcmp(keyring_tenant(kr, 0), "acme") == 0,
	    "keyring_load: the tenants named, once each");
	keyring_free(kr);
}

/* --- whole requests through route_request --- */

static struct app app;
static char key_a[80], key_b[80];
static struct {
	int         status;
	const char *reason, *allow;
	char        body[4096];
} R;

static void
call_full(const char *method, const char *uri, const char *ct,
    const char *body, size_t body_len, const char *api_key, const char *authz)
{
	struct request req;
	struct response res = { 0 };

	req_init(&req, method, uri, ct, body);
	if (body_len)
		req.body_len = body_len;
	req.api_key = api_key;
	req.authorization = authz;
	route_request(&app, &req, &res);
	R.status = res.status;
	R.reason = res.reason;
	R.allow = res.allow;
	snprintf(R.body, sizeof R.body, "%s", res.body.data ? res.body.data : "");
	response_free(&res);
	req_done(&req);
}

static void
call(const char *method, const char *uri, const char *ct, const char *body, const char *api_key)
{
	call_full(method, uri, ct, body, 0, api_key, NULL);
}

static bool
has(const char *needle)
{
	return strstr(R.body, needle) != NULL;
}

/* A write routed as a worker routes it (app.defer_writes): its op waits
 * in res->pending, as it does in the committer's queue. */
static void
route_deferred(struct request *req, struct response *res, const char *uri,
    int64_t now)
{
	req_init(req, "POST", uri, NULL, NULL);
	req->now = now;
	req->api_key = key_a;
	memset(res, 0, sizeof *res);
	route_request(&app, req, res);
}

/* Apply and answer it, as the committer and the completer do. */
static void
apply_deferred(struct request *req, struct response *res)
{
	if (res->pending != NULL)
		route_finish(res, store_run(app.store, true, req->now,
		    route_call_apply, res->pending));
	R.status = res->status;
	snprintf(R.body, sizeof R.body, "%s", res->body.data ? res->body.data : "");
	response_free(res);
	req_done(req);
}

static int64_t fake_now;

static int64_t
fake_clock(void)
{
	return fake_now;
}

/* An op's time is the time it is applied (app.clock), not the time its
 * request was read: a claim read before an enqueue of its item but applied
 * after it (the enqueue went to another worker, or came first into the
 * committer's queue) finds the item ready. With the request's time it
 * found it "not_ready", though enqueued without a delay: what
 * test_linear caught. */
static void
test_apply_time(void)
{
	struct request rc, re;
	struct response sc, se;

	app.defer_writes = true;
	fake_now = T0 + 12000;

	app.clock = NULL;
	route_deferred(&rc, &sc, "/v1/queues/tq0/claim?key=a&claimant=w&lease=30", T0 + 10000);
	route_deferred(&re, &se, "/v1/queues/tq0/enqueue?key=a", T0 + 11000);
	apply_deferred(&re, &se);
	apply_deferred(&rc, &sc);
	ok(R.status == 200 && has("\"reason\":\"not_ready\""),
	    "apply time: with the request's time, a claim applied after the enqueue "
	    "it was read before finds the item not ready (%s)", R.body);

	app.clock = fake_clock;
	route_deferred(&rc, &sc, "/v1/queues/tq1/claim?key=a&claimant=w&lease=30", T0 + 10000);
	route_deferred(&re, &se, "/v1/queues/tq1/enqueue?key=a", T0 + 11000);
	apply_deferred(&re, &se);
	is_str(R.body, "{\"enqueued\":true,\"queue\":\"tq1\",\"key\":\"a\",\"state\":\"ready\","
	    "\"ready_at\":\"2025-11-26T21:58:13Z\"}",
	    "apply time: with app.clock, the enqueue is ready from when it was applied");
	fake_now++;
	apply_deferred(&rc, &sc);
	ok(R.status == 200 && has("\"claimed\":true") && has("\"lease_expires_at\":\"2025-11-26T21:58:43Z\""),
	    "apply time: ... and the claim applied after it wins, its lease counted from "
	    "when it was applied (%s)", R.body);

	/* A read takes its time once its snapshot is taken: read at T0, run
	 * when the 30 s lease has run out, it reports the item ready. */
	fake_now = T0 + 12001 + 30000;
	call("GET", "/v1/queues/tq1/status?key=a", NULL, NULL, key_a);
	ok(has("\"state\":\"ready\""), "apply time: a read applied after the lease "
	    "ran out sees the item ready (%s)", R.body);

	app.clock = NULL;
	app.defer_writes = false;
}

static void
test_routes(void)
{
	char why[256], line_a[256], line_b[256], text[600], dir[300];
	struct store_config cfg = { .dir = dir, .map_size = 16UL << 20 };
	const char *form = "application/x-www-form-urlencoded";
	char token[TOKEN_HEX_LEN + 1] = "", first[4096];
	const char *p;

	snprintf(dir, sizeof dir, "%s/db", tmproot);
	if (store_open(&cfg, &app.store, why, sizeof why) != 0)
		bail_out("store_open: %s", why);
	keyring_mint("alpha", key_a, line_a);
	keyring_mint("beta", key_b, line_b);
	snprintf(text, sizeof text, "# test keys\n%s\n%s\n", line_a, line_b);
	if ((app.keys = keyring_load(write_file("casq.keys", text), why, sizeof why)) == NULL)
		bail_out("keyring_load: %s", why);
	app.idem_ttl_ms = 3600 * 1000;

	call("GET", "/healthz", NULL, NULL, NULL);
	is_int(R.status, 200, "route: /healthz is 200 without a key");
	is_str(R.body, "{\"ok\":true}", "route: /healthz body");
	call("GET", "/v1/ping", NULL, NULL, NULL);
	is_int(R.status, 401, "route: /v1/ping without a key is 401");
	ok(has("\"error\":\"missing_api_key\""), "route: ... with error missing_api_key (%s)", R.body);
	is_str(R.reason, "Missing API Key", "route: ... reason phrase Missing API Key");
	call("GET", "/v1/ping", NULL, NULL, "casq_wrong");
	ok(R.status == 401 && has("\"invalid_api_key\""), "route: a wrong key is 401 invalid_api_key (%d %s)", R.status, R.body);
	call("GET", "/v1/ping", NULL, NULL, key_a);
	is_int(R.status, 200, "route: X-Api-Key works");
	is_str(R.body, "{\"pong\":true}", "route: /v1/ping body");
	call("GET", "/v1/ping", NULL, NULL, key_b);
	is_int(R.status, 200, "route: the second key of the file works too");
	snprintf(text, sizeof text, "bearer  %s", key_a);
	call_full("GET", "/v1/ping", NULL, NULL, 0, NULL, text);
	is_int(R.status, 200, "route: Authorization: bearer (any case, extra spaces) works");
	call_full("GET", "/v1/ping", NULL, NULL, 0, NULL, "Basic dXNlcjpwdw==");
	ok(R.status == 401 && has("missing_api_key"), "route: Basic auth is a missing key (%d)", R.status);
	call("GET", "/v1/ping/", NULL, NULL, key_a);
	is_int(R.status, 200, "route: one trailing slash is ignored");

	call("PUT", "/v1/ping", NULL, NULL, NULL);
	is_int(R.status, 405, "route: PUT is 405");
	is_str(R.allow, "GET, POST", "route: 405 sets Allow");
	call("GET", "/v1/nope", NULL, NULL, key_a);
	ok(R.status == 404 && has("no_such_route"), "route: /v1/nope is 404 no_such_route (%d)", R.status);
	call("GET", "/v1/queues/q/bogus", NULL, NULL, key_a);
	is_int(R.status, 404, "route: an unknown queue action is 404");
	call("POST", "/v1/queues/bad!name/claim", NULL, NULL, key_a);
	is_int(R.status, 400, "route: /v1/queues/bad!name/claim is 400");
	is_str(R.reason, "Bad Queue Name", "route: ... reason Bad Queue Name");
	call("POST", "/v1/queues/bad!name/claim", NULL, NULL, NULL);
	is_int(R.status, 401, "route: the key is checked before the name");
	snprintf(text, sizeof text, "/v1/queues/%065d/claim", 0);
	call("POST", text, NULL, NULL, key_a);
	is_int(R.status, 400, "route: a 65-byte queue name is 400");
	snprintf(text, sizeof text, "/v1/queues/%064d/pop", 0);
	call("POST", text, NULL, NULL, key_a);
	is_int(R.status, 200, "route: a 64-byte queue name is fine");

	call("POST", "/v1/queues/q/enqueue", "application/json", "{\"key\":\"k\",\"payload\":{\"a\": [1, 2]}}", key_a);
	is_int(R.status, 200, "route: enqueue is 200");
	is_str(R.body, "{\"enqueued\":true,\"queue\":\"q\",\"key\":\"k\",\"state\":\"ready\",\"ready_at\":\"" T0_ISO "\"}",
	    "route: enqueue body, exact");
	call("POST", "/v1/queues/q/enqueue?key=k", NULL, NULL, key_a);
	is_str(R.body, "{\"enqueued\":false,\"queue\":\"q\",\"key\":\"k\",\"state\":\"ready\",\"ready_at\":\"" T0_ISO "\"}",
	    "route: enqueue again body, exact");
	call("POST", "/v1/queues/q/enqueue", form, "payload=x", key_a);
	ok(R.status == 400 && !strcmp(R.reason, "Missing Key"), "route: enqueue without key is 400 Missing Key (%d)", R.status);

	call("POST", "/v1/queues/q/pop?claimant=w1", form, "lease=30", key_a);
	is_int(R.status, 200, "route: claim is 200");
	p = "{\"claimed\":true,\"queue\":\"q\",\"key\":\"k\",\"owner\":\"w1\",\"token\":\"";
	ok(strncmp(R.body, p, strlen(p)) == 0, "route: claim body starts right (%s)", R.body);
	if (strlen(R.body) > strlen(p) + TOKEN_HEX_LEN) {
		memcpy(token, R.body + strlen(p), TOKEN_HEX_LEN);
		token[TOKEN_HEX_LEN] = '\0';
	}
	is_str(R.body + (strlen(R.body) > strlen(p) + TOKEN_HEX_LEN ? strlen(p) + TOKEN_HEX_LEN : 0),
	    "\",\"attempt\":1,\"payload\":{\"a\":[1,2]},\"lease_expires_at\":\"2025-11-26T21:58:31Z\"}",
	    "route: claim body ends with attempt, compact payload and lease end");
	call("POST", "/v1/queues/q/claim?key=k&claimant=w2", NULL, NULL, key_a);
	is_str(R.body, "{\"claimed\":false,\"queue\":\"q\",\"key\":\"k\",\"reason\":\"claimed\",\"owner\":\"w1\"}",
	    "route: losing claim body names the owner");
	call("POST", "/v1/queues/q/pop", NULL, NULL, key_a);
	is_str(R.body, "{\"claimed\":false,\"queue\":\"q\",\"key\":\"\",\"reason\":\"empty\"}", "route: pop on empty body");
	call("POST", "/v1/queues/q/claim", NULL, NULL, key_a);
	ok(R.status == 400 && !strcmp(R.reason, "Missing Key"), "route: claim without key is 400 Missing Key (%d)", R.status);
	snprintf(text, sizeof text, "key=k&token=%s", token);
	call("POST", "/v1/queues/q/ack", form, text, key_a);
	is_str(R.body, "{\"acked\":true,\"queue\":\"q\",\"key\":\"k\"}", "route: ack body");
	call("POST", "/v1/queues/q/ack", form, text, key_a);
	is_str(R.body, "{\"acked\":false,\"queue\":\"q\",\"key\":\"k\",\"reason\":\"not_leased\"}", "route: second ack body");
	call("POST", "/v1/queues/q/ack?key=k", NULL, NULL, key_a);
	ok(R.status == 400 && has("missing_token"), "route: ack without token is 400 missing_token (%d)", R.status);
	call("GET", "/v1/queues/q/status?key=k", NULL, NULL, key_a);
	is_str(R.body, "{\"queued\":false,\"queue\":\"q\",\"key\":\"k\",\"state\":\"claimed\",\"attempts\":1,"
	    "\"owner\":\"w1\",\"claimed_at\":\"" T0_ISO "\"}", "route: status of an acked item");
	call("GET", "/v1/queues/q", NULL, NULL, key_a);
	is_str(R.body, "{\"queue\":\"q\",\"ready\":0,\"leased\":0,\"oldest_ready_age\":0,\"enqueued\":1,"
	    "\"claimed\":1,\"acked\":1,\"released\":0,\"removed\":0,\"expired\":0,\"dead\":0,"
	    "\"redriven\":0,\"lease\":0,\"max_attempts\":0,\"bind_days\":365,\"claims_per_minute\":["
	    "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
	    "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1]}", "route: queue stats body");
	call("GET", "/v1/queues/none", NULL, NULL, key_a);
	ok(R.status == 404 && has("no_such_queue"), "route: stats of an unknown queue is 404 (%d)", R.status);
	call("GET", "/v1/queues", NULL, NULL, key_a);
	is_str(R.body, "{\"queues\":[{\"queue\":\"q\",\"ready\":0,\"leased\":0}]}", "route: queue list body");

	call_full("POST", "/v1/queues/q/enqueue", form, NULL, BODY_MAX + 1, key_a, NULL);
	ok(R.status == 413 && !strcmp(R.reason, "Body Too Large"), "route: body_len > BODY_MAX is 413 (%d)", R.status);
	call("POST", "/v1/queues/q/enqueue", "application/xml", "<k/>", key_a);
	is_int(R.status, 415, "route: an unsupported body is 415");
	call("POST", "/v1/queues/q/enqueue?key=a", form, "key=b", key_a);
	ok(R.status == 400 && has("conflicting_parameter"), "route: conflicting key is 400 (%d)", R.status);

	/* A retried write with a request id gets the first answer again. */
	call("POST", "/v1/queues/q/enqueue?request_id=r1", form, "key=k2", key_a);
	snprintf(first, sizeof first, "%s", R.body);
	ok(R.status == 200 && has("\"enqueued\":true"), "route: enqueue with request_id (%s)", R.body);
	call("POST", "/v1/queues/q/enqueue?request_id=r1", form, "key=k2", key_a);
	is_str(R.body, first, "route: the retry replays the first answer");
	call("POST", "/v1/queues/q/enqueue?request_id=r1", form, "key=k3", key_a);
	is_int(R.status, 422, "route: the same request_id with other parameters is 422");
	call("POST", "/v1/queues/q/enqueue?request_id=r1", form, "key=k3", key_b);
	is_int(R.status, 200, "route: request ids are scoped by API key");

	test_apply_time();

	store_close(app.store);
	keyring_free(app.keys);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

int
main(void)
{
	if (mkdtemp(tmproot) == NULL)
		bail_out("mkdtemp %s", tmproot);
	test_query();
	test_form();
	test_json();
	test_sniffing();
	test_malformed_json();
	test_conflicts();
	test_depth();
	test_url_decode();
	test_utf8();
	test_seconds();
	test_typed_params();
	test_json_writer();
	test_errors();
	test_errors_documented();
	test_keyring_load();
	test_routes();
	nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
