/*
 * ctl.h - casqctl, the operator's tool, beside a running casqd: one file
 * per command family (ctl_status.c, ctl_items.c, ctl_backup.c, ctl_io.c
 * with its CSV reader ctl_csv.c), each declaring its rows next to their
 * exec functions as tmux's cmd_entry does; casqctl.c holds the table,
 * the options every command shares, opening the database, and output.
 * It goes through the store layer like casqd (store.h) and validates
 * what it writes with the routes' own parameter readers (route.h).
 */
#ifndef CASQ_CTL_H
#define CASQ_CTL_H

#include <getopt.h>

#include "route.h"

/* Exit statuses, the same for every command. */
enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

struct ctl {
	const char   *data;		/* --data DIR */
	const char   *tenant;		/* --tenant T, else DEFAULT_TENANT */
	bool          tenant_given;	/* lists show every tenant without it */
	bool          json;		/* --json: one JSON document on stdout */
	struct store *st;		/* ctl_open's */
};

struct ctl_cmd {
	const char *name;
	const char *args;		/* usage after the name */
	const char *about;		/* one line of casqctl --help */
	int       (*exec)(struct ctl *c, int argc, char **argv);
};

/* The rows, each in its family's file; casqctl.c's table points at them. */
extern const struct ctl_cmd ctl_status_cmd, ctl_queues_cmd, ctl_items_cmd,
	ctl_show_cmd, ctl_backup_cmd, ctl_verify_cmd, ctl_export_cmd,
	ctl_import_cmd;

/* --- casqctl.c --- */
/* The next option of a command's argv (argv[0] its name) that is not a
 * shared one (--data, --json, --tenant, applied to c): getopt_long's
 * return value; -1 at the end, with optind at the first operand. */
int  ctl_getopt(struct ctl *c, int argc, char **argv, const struct option *own);
/* "casqctl: <message>" on stderr; returns status (for `return ctl_fail(...)`). */
int  ctl_fail(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The usage line of cmd on stderr; returns CTL_USAGE. */
int  ctl_usage(const struct ctl_cmd *cmd);
/* Open the database in dir (NULL: --data) as it is, beside casqd: into
 * c->st, or a message and CTL_USAGE. */
int  ctl_open(struct ctl *c, const char *dir);
void ctl_close(struct ctl *c);
/* "tenant:name" of a queue or namespace name given on the command line,
 * in --tenant's tenant; false (with a message) for a name the API
 * would refuse. */
bool ctl_scoped(const struct ctl *c, const char *name,
	char out[static QUEUE_NAME_MAX + 1]);
/* The prefix of the stored names a list shows: "T:" of --tenant, or ""
 * (every tenant) when it was not given. */
const char *ctl_prefix(const struct ctl *c, char out[static TENANT_NAME_MAX + 2]);
/* Print b as one line on stdout, and empty it. */
void ctl_print_json(struct buf *b);
/* A time as the API shows it, "-" for 0. */
const char *ctl_time(int64_t ms, char out[static 32]);

/* A human table: cells added row by row, printed in aligned columns. */
struct ctl_table {
	size_t ncols, ncells;
	char **cells;			/* row-major; the first row the heading */
};
void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *head);
void ctl_cell(struct ctl_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print ("(none)" for no rows) and free. */
void ctl_table_print(struct ctl_table *t);

/* --- ctl_csv.c: RFC 4180 records, for import --csv --- */
struct csv;
struct csv_record {
	size_t   nfields;
	char   **fields;		/* NUL-terminated copies; may hold a NUL */
	size_t  *lens;
	unsigned long line;		/* the line it starts on, from 1 */
	const char *error;		/* a quoting fault in it, or NULL */
};
/* A reader over f; a UTF-8 byte order mark at the start is skipped. */
struct csv *csv_open(FILE *f);
/* The next record into rec (valid until the next call): true, or false
 * at the end of the input. */
bool csv_next(struct csv *r, struct csv_record *rec);
void csv_close(struct csv *r);

#endif
