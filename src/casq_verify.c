/*
 * casq_verify.c - casq-verify DIR: run the consistency walk
 * (store_verify.c) on the database in DIR and print what it finds, one
 * problem a line, then a count. Safe on a live database: it only reads,
 * in one LMDB read transaction beside casqd's writer.
 *
 * Exit status: 0 consistent, 1 problems found, 2 could not open or read.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

static void
print_problem(void *ctx, const char *problem)
{
	printf("problem: %s\n", problem);
}

int
main(int argc, char **argv)
{
	/* The smallest map casqd accepts; a larger one recorded in the
	 * database is adopted by store_open. */
	struct store_config cfg = { .map_size = 256 << 10 };
	struct store *st;
	size_t problems = 0;
	enum casq_err err;
	char why[512];

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: casq-verify DIR   (the --data directory of casqd)\n");
		return 2;
	}
	cfg.dir = argv[1];
	log_threshold = LOG_WARN;
	if (store_open(&cfg, &st, why, sizeof why) != 0) {
		fprintf(stderr, "casq-verify: %s\n", why);
		return 2;
	}
	err = store_verify(st, print_problem, NULL, &problems);
	store_close(st);
	if (err != E_OK) {
		fprintf(stderr, "casq-verify: %s: the walk could not read everything "
		    "(%zu problem(s) before it stopped)\n", argv[1], problems);
		return 2;
	}
	printf("%s: %zu problem(s)\n", argv[1], problems);
	return problems == 0 ? 0 : 1;
}
