/*
 * fuzz_params.c - query strings and bodies into parameters
 * (request_parse_params: form decoding, Content-Type matching and
 * sniffing, and through it the JSON reader), and url_decode alone.
 *
 * Input: "CONTENT-TYPE\nREQUEST-URI\nBODY" (a missing line is empty;
 * an empty Content-Type is none, as when nginx sends none). The whole
 * input is also url_decoded, '+' as a space when its first byte is odd.
 *
 * Checks: the parameter invariants of fuzz.h; url_decode's output is no
 * longer than its input, NUL-terminated, and every byte %XX-escaped
 * decodes back to the same bytes.
 */
#include "fuzz.h"

static void
check_url_decode(const unsigned char *data, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	struct buf out = { 0 }, esc = { 0 }, back = { 0 };
	bool plus = size > 0 && (data[0] & 1);

	if (!url_decode((const char *)data, size, plus, &out)) {
		buf_free(&out);
		return;
	}
	fuzz_check(out.len <= size, "decoded %zu bytes from %zu", out.len, size);
	fuzz_check(out.data[out.len] == '\0', "decoded text not terminated");
	for (size_t i = 0; i < out.len; i++) {
		unsigned char c = (unsigned char)out.data[i];
		char e[3] = { '%', hex[c >> 4], hex[c & 15] };

		buf_append(&esc, e, 3);
	}
	fuzz_check(url_decode(esc.data ? esc.data : "", esc.len, plus, &back),
	    "its own escaping does not decode");
	fuzz_check(back.len == out.len && memcmp(back.data, out.data, out.len) == 0,
	    "escaped and decoded again differs");
	buf_free(&out);
	buf_free(&esc);
	buf_free(&back);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *s = (const char *)data, *end = s + size, *nl;
	char *ct, *uri;
	struct request req = { 0 };

	check_url_decode(data, size);

	nl = memchr(s, '\n', size);
	ct = xstrndup(s, nl ? (size_t)(nl - s) : size);
	s = nl ? nl + 1 : end;
	nl = memchr(s, '\n', (size_t)(end - s));
	uri = xstrndup(s, nl ? (size_t)(nl - s) : (size_t)(end - s));
	s = nl ? nl + 1 : end;

	req.method = "POST";
	req.uri = uri;
	req.content_type = *ct ? ct : NULL;
	req.body = xstrndup(s, (size_t)(end - s));	/* heap and NUL-terminated, as read_body */
	req.body_len = (size_t)(end - s);
	(void)request_parse_params(&req);
	fuzz_check_params(&req);

	request_free(&req);
	free(req.body);
	free(uri);
	free(ct);
	return 0;
}
