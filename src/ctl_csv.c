/*
 * ctl_csv.c - CSV records as RFC 4180 has them, as Marketo exports a
 * list: fields separated by commas, a field in double quotes may hold
 * commas, line breaks and doubled quotes (""), records end in CRLF or LF
 * (or a lone CR, as old Mac exports), and the file may start with a UTF-8
 * byte order mark. A blank line is
 * no record. A quote in an unquoted field, text after a closing quote or
 * a quote left open at the end is a fault of that record (rec->error):
 * guessing what was meant could import a key nobody exported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct csv {
	FILE         *f;
	unsigned long line;		/* the line being read, from 1 */
	bool          started;		/* the byte order mark was looked for */
	int           back[3];		/* bytes read ahead, given back */
	int           nback;
	struct buf    text;		/* the record's fields, each NUL-terminated */
	size_t       *offs;		/* where each field starts in text */
	size_t        cap;
	char        **fields;
	size_t       *lens;
};

struct csv *
csv_open(FILE *f)
{
	struct csv *r = xcalloc(1, sizeof *r);

	r->f = f;
	r->line = 1;
	r->cap = 16;
	r->offs = xmalloc((r->cap + 1) * sizeof *r->offs);
	r->fields = xmalloc(r->cap * sizeof *r->fields);
	r->lens = xmalloc(r->cap * sizeof *r->lens);
	return r;
}

void
csv_close(struct csv *r)
{
	buf_free(&r->text);
	free(r->offs);
	free(r->fields);
	free(r->lens);
	free(r);
}

static int
next_byte(struct csv *r)
{
	int ch;

	if (r->nback > 0)
		return r->back[--r->nback];
	ch = getc_unlocked(r->f);
	if (ch == '\n')
		r->line++;
	return ch;
}

static void
give_back(struct csv *r, int ch)
{
	if (ch == '\n')
		r->line--;	/* counted again when read again */
	r->back[r->nback++] = ch;
}

/* Skip "\xEF\xBB\xBF" at the very start; anything else is given back. */
static void
skip_bom(struct csv *r)
{
	int a = next_byte(r), b, c;

	if (a != 0xEF) {
		give_back(r, a);
		return;
	}
	b = next_byte(r);
	c = b == 0xBB ? next_byte(r) : EOF;
	if (b == 0xBB && c == 0xBF)
		return;
	if (b == 0xBB)
		give_back(r, c);
	give_back(r, b);
	give_back(r, a);
}

/* One byte of a field: the hot loop of an import, so no buf_append call
 * per byte. */
static inline void
text_put(struct csv *r, int ch)
{
	if (r->text.len + 1 >= r->text.cap)
		buf_reserve(&r->text, 1);
	r->text.data[r->text.len++] = (char)ch;
}

static void
field_end(struct csv *r, size_t *n)
{
	if (*n == r->cap) {
		r->cap *= 2;
		r->offs = xrealloc(r->offs, (r->cap + 1) * sizeof *r->offs);
		r->fields = xrealloc(r->fields, r->cap * sizeof *r->fields);
		r->lens = xrealloc(r->lens, r->cap * sizeof *r->lens);
	}
	text_put(r, '\0');
	r->offs[++*n] = r->text.len;
}

/* A line break ends the record: LF, or CR with or without its LF. */
static bool
end_of_line(struct csv *r, int ch)
{
	int lf;

	if (ch == '\n')
		return true;
	if (ch != '\r')
		return false;
	if ((lf = next_byte(r)) != '\n')
		give_back(r, lf);
	return true;
}

/* A quoted field's text after its opening quote, through its closing
 * one; the byte after it, or EOF with *error set when it never closes. */
static int
quoted(struct csv *r, const char **error)
{
	int ch;

	for (;;) {
		if ((ch = next_byte(r)) == EOF) {
			*error = "a quoted field is not closed before the end of the file";
			return EOF;
		}
		if (ch == '"' && (ch = next_byte(r)) != '"')
			return ch;
		text_put(r, ch);
	}
}

bool
csv_next(struct csv *r, struct csv_record *rec)
{
	size_t n = 0;
	bool at_start = true;	/* of a field */
	int ch;

	if (!r->started) {
		r->started = true;
		skip_bom(r);
	}
	do {			/* blank lines are no records */
		rec->line = r->line;
		ch = next_byte(r);
	} while (end_of_line(r, ch));
	if (ch == EOF)
		return false;
	rec->error = NULL;
	r->text.len = 0;
	r->offs[0] = 0;
	for (;; ch = next_byte(r)) {
		if (ch == '"' && at_start) {
			ch = quoted(r, &rec->error);
			if (ch != ',' && ch != EOF && ch != '\n' && ch != '\r' && !rec->error)
				rec->error = "text after a closing quote";
		}
		if (ch == ',' || ch == EOF || end_of_line(r, ch)) {
			field_end(r, &n);
			if (ch != ',')
				break;
			at_start = true;
			continue;
		}
		if (ch == '"' && !rec->error)
			rec->error = "a quote inside a field that does not start with one";
		at_start = false;
		text_put(r, ch);
	}
	for (size_t i = 0; i < n; i++) {
		r->fields[i] = r->text.data + r->offs[i];
		r->lens[i] = r->offs[i + 1] - r->offs[i] - 1;
	}
	rec->nfields = n;
	rec->fields = r->fields;
	rec->lens = r->lens;
	return true;
}
