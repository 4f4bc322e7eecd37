/*
 * fuzz_csv.c - casqctl's CSV reader (src/ctl_csv.c), which reads the
 * lists operators import: any bytes, as a file.
 *
 * Checks: every field is NUL-terminated at its length; no record holds
 * more field bytes than the input has; line numbers never go back and
 * never pass the input's line count; and a record read without a fault,
 * written again with every field quoted (quotes doubled), reads back as
 * the same fields.
 */
#include "fuzz.h"
#include "ctl.h"

/* The record as RFC 4180 would write it: "a","b""c"\r\n */
static void
quote_record(const struct csv_record *rec, struct buf *out)
{
	out->len = 0;
	for (size_t i = 0; i < rec->nfields; i++) {
		buf_append(out, i ? ",\"" : "\"", i ? 2 : 1);
		for (size_t k = 0; k < rec->lens[i]; k++) {
			if (rec->fields[i][k] == '"')
				buf_append(out, "\"", 1);
			buf_append(out, &rec->fields[i][k], 1);
		}
		buf_append(out, "\"", 1);
	}
	buf_append(out, "\r\n", 2);
}

/* The written record reads back as one record of the same fields. */
static void
check_round_trip(const struct csv_record *rec)
{
	struct buf text = { 0 };
	struct csv_record back;
	struct csv *r;
	FILE *f;

	quote_record(rec, &text);
	if ((f = fmemopen(text.data, text.len, "r")) == NULL)
		abort();
	r = csv_open(f);
	fuzz_check(csv_next(r, &back), "a written record reads as none");
	fuzz_check(back.error == NULL, "a written record reads with a fault: %s", back.error);
	fuzz_check(back.nfields == rec->nfields, "%zu fields written, %zu read",
	    rec->nfields, back.nfields);
	for (size_t i = 0; i < back.nfields; i++)
		fuzz_check(back.lens[i] == rec->lens[i] &&
		    memcmp(back.fields[i], rec->fields[i], back.lens[i]) == 0,
		    "field %zu reads back otherwise", i);
	fuzz_check(!csv_next(r, &back), "a written record reads as two");
	csv_close(r);
	fclose(f);
	buf_free(&text);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	unsigned long lines = 1, last = 0;
	struct csv_record rec;
	struct csv *r;
	FILE *f;

	if (size == 0)
		return 0;	/* fmemopen wants a buffer */
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if ((f = fmemopen((void *)data, size, "r")) == NULL)
		abort();
	r = csv_open(f);
	while (csv_next(r, &rec)) {
		size_t bytes = 0;

		fuzz_check(rec.line >= last && rec.line <= lines, "record at line %lu after %lu, of %lu",
		    rec.line, last, lines);
		last = rec.line;
		fuzz_check(rec.nfields >= 1, "a record of no fields");
		for (size_t i = 0; i < rec.nfields; i++) {
			fuzz_check(rec.fields[i][rec.lens[i]] == '\0', "field %zu not terminated", i);
			bytes += rec.lens[i];
		}
		fuzz_check(bytes <= size, "%zu field bytes from %zu", bytes, size);
		if (rec.error == NULL)
			check_round_trip(&rec);
	}
	csv_close(r);
	fclose(f);
	return 0;
}
