/*
 * casqctl.c - casqctl [--data DIR] [--json] [--tenant T] COMMAND [ARGS]:
 * the command table, the options every command shares, opening the
 * database beside a running casqd, and the output helpers (tables for
 * people, one JSON document for scripts). The commands are in ctl_*.c.
 *
 * Exit status: 0 done, 1 a check failed or what was asked for does not
 * exist, 2 a usage or environment error (no database, another schema).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* casqd's default --data (main.c), so both find the same database. */
#define CTL_DEFAULT_DATA	"/var/lib/casq"
/* Room for a command's own options beside the shared ones. */
#define CTL_OPTIONS_MAX		16
/* The widest table a command prints. */
#define CTL_TABLE_COLS		16

static const struct ctl_cmd *const commands[] = {
	&ctl_status_cmd,
	&ctl_queues_cmd,
	&ctl_items_cmd,
	&ctl_show_cmd,
	&ctl_backup_cmd,
	&ctl_verify_cmd,
	&ctl_export_cmd,
	&ctl_import_cmd,
};

enum { OPT_DATA = 1000, OPT_JSON, OPT_TENANT, OPT_HELP, OPT_VERSION };

static const struct option shared_options[] = {
	{ "data",   required_argument, NULL, OPT_DATA },
	{ "json",   no_argument,       NULL, OPT_JSON },
	{ "tenant", required_argument, NULL, OPT_TENANT },
};
#define NSHARED	(sizeof shared_options / sizeof shared_options[0])

int
ctl_fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("casqctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

int
ctl_usage(const struct ctl_cmd *cmd)
{
	fprintf(stderr, "usage: casqctl [--data DIR] [--json] [--tenant T] %s%s%s\n",
	    cmd->name, *cmd->args ? " " : "", cmd->args);
	return CTL_USAGE;
}

/* Apply a shared option; false for a tenant name the API would refuse. */
static bool
shared_option(struct ctl *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_DATA:
		c->data = arg;
		return true;
	case OPT_JSON:
		c->json = true;
		return true;
	case OPT_TENANT:
		if (!name_valid(arg, strlen(arg), TENANT_NAME_MAX)) {
			ctl_fail(CTL_USAGE, "bad tenant '%s': 1-%d of A-Z a-z 0-9 . _ -",
			    arg, TENANT_NAME_MAX);
			return false;
		}
		c->tenant = arg;
		c->tenant_given = true;
		return true;
	}
	return false;
}

/* getopt_long over own's options and the shared ones, applying these. */
static int
getopt_shared(struct ctl *c, int argc, char **argv, const struct option *own,
    const char *optstring)
{
	struct option all[CTL_OPTIONS_MAX + NSHARED + 1];
	size_t n = 0;
	int opt;

	for (; own && own[n].name; n++) {
		if (n == CTL_OPTIONS_MAX)
			fatal("a command with more than %d options", CTL_OPTIONS_MAX);
		all[n] = own[n];
	}
	memcpy(all + n, shared_options, sizeof shared_options);
	memset(all + n + NSHARED, 0, sizeof all[0]);
	while ((opt = getopt_long(argc, argv, optstring, all, NULL)) >= OPT_DATA &&
	    opt <= OPT_TENANT)
		if (!shared_option(c, opt, optarg))
			return '?';
	return opt;
}

int
ctl_getopt(struct ctl *c, int argc, char **argv, const struct option *own)
{
	return getopt_shared(c, argc, argv, own, "");
}

int
ctl_open(struct ctl *c, const char *dir)
{
	/* The smallest map casqd accepts; store_open adopts the size the
	 * database records, which is casqd's. */
	struct store_config cfg = { .dir = dir ? dir : c->data,
	    .map_size = 256 << 10, .existing_only = true };
	char why[512];

	if (store_open(&cfg, &c->st, why, sizeof why) != 0)
		return ctl_fail(CTL_USAGE, "%s", why);
	return CTL_OK;
}

void
ctl_close(struct ctl *c)
{
	store_close(c->st);
	c->st = NULL;
}

bool
ctl_scoped(const struct ctl *c, const char *name, char out[static QUEUE_NAME_MAX + 1])
{
	if (!name_valid(name, strlen(name), PATH_NAME_MAX)) {
		ctl_fail(CTL_USAGE, "bad name '%s': 1-%d of A-Z a-z 0-9 . _ -", name,
		    PATH_NAME_MAX);
		return false;
	}
	snprintf(out, QUEUE_NAME_MAX + 1, "%s:%s", c->tenant, name);
	return true;
}

const char *
ctl_prefix(const struct ctl *c, char out[static TENANT_NAME_MAX + 2])
{
	if (!c->tenant_given)
		return "";
	snprintf(out, TENANT_NAME_MAX + 2, "%s:", c->tenant);
	return out;
}

void
ctl_print_json(struct buf *b)
{
	fwrite(b->data, 1, b->len, stdout);
	putchar('\n');
	b->len = 0;
}

const char *
ctl_time(int64_t ms, char out[static 32])
{
	if (ms == 0)
		return strcpy(out, "-");
	iso8601(ms, out);
	return out;
}

/* --- tables --- */

void
ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *head)
{
	*t = (struct ctl_table){ .ncols = ncols };
	for (size_t i = 0; i < ncols; i++)
		ctl_cell(t, "%s", head[i]);
}

void
ctl_cell(struct ctl_table *t, const char *fmt, ...)
{
	va_list ap;
	char *cell;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	cell = xmalloc(n < 0 ? 1 : (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(cell, n < 0 ? 1 : (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->cells = xrealloc(t->cells, (t->ncells + 1) * sizeof *t->cells);
	t->cells[t->ncells++] = cell;
}

void
ctl_table_print(struct ctl_table *t)
{
	size_t width[CTL_TABLE_COLS] = { 0 };

	if (t->ncols > CTL_TABLE_COLS)
		fatal("a table of %zu columns", t->ncols);
	for (size_t i = 0; i < t->ncells; i++) {
		size_t n = strlen(t->cells[i]);

		if (n > width[i % t->ncols])
			width[i % t->ncols] = n;
	}
	if (t->ncells == t->ncols)
		printf("(none)\n");
	for (size_t i = 0; t->ncells > t->ncols && i < t->ncells; i++) {
		size_t col = i % t->ncols;

		if (col == t->ncols - 1)
			printf("%s\n", t->cells[i]);
		else
			printf("%-*s  ", (int)width[col], t->cells[i]);
	}
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	*t = (struct ctl_table){ 0 };
}

/* --- main --- */

static void
help(FILE *f)
{
	fprintf(f, "usage: casqctl [--data DIR] [--json] [--tenant T] COMMAND [ARGS]\n"
	    "  --data DIR    casqd's data directory (default " CTL_DEFAULT_DATA ")\n"
	    "  --json        one JSON document (export: NDJSON) instead of tables\n"
	    "  --tenant T    the tenant of QUEUE names (default " DEFAULT_TENANT
	    ", as keys without tenant=);\n"
	    "                lists show every tenant unless it is given\n"
	    "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %s %s\n      %s\n", commands[i]->name, commands[i]->args,
		    commands[i]->about);
	fprintf(f, "exit status: 0 ok, 1 check failed or not found, 2 usage or environment error\n");
}

int
main(int argc, char **argv)
{
	static const struct option top[] = {
		{ "help",    no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .data = CTL_DEFAULT_DATA, .tenant = DEFAULT_TENANT };
	int opt;

	log_threshold = LOG_WARN;
	/* "+": the shared options before COMMAND; the command reads the rest */
	/* "+": the shared options may come before COMMAND too; what follows
	 * it is the command's */
	if ((opt = getopt_shared(&c, argc, argv, top, "+")) == OPT_HELP) {
		help(stdout);
		return CTL_OK;
	} else if (opt == OPT_VERSION) {
		printf("casqctl %s\n", PACKAGE_VERSION);
		return CTL_OK;
	} else if (opt != -1) {
		help(stderr);
		return CTL_USAGE;
	}
	if (optind >= argc) {
		help(stderr);
		return CTL_USAGE;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[optind], commands[i]->name) == 0) {
			int first = optind;

			optind = 0;	/* getopt starts again on the command's argv */
			return commands[i]->exec(&c, argc - first, argv + first);
		}
	ctl_fail(CTL_USAGE, "unknown command '%s'", argv[optind]);
	help(stderr);
	return CTL_USAGE;
}
