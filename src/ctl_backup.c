/*
 * ctl_backup.c - casqctl backup DEST and verify [DIR]. A backup is
 * LMDB's compacting copy (mdb_env_copy2, MDB_CP_COMPACT): it walks one
 * read transaction, so it is a consistent snapshot taken while casqd goes
 * on writing, and it takes no writer lock. The copy is then opened and
 * put through the consistency walk (store_verify, the same as verify).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

struct walk {
	struct ctl  *c;
	struct json *j;
};

static void
report(void *arg, const char *problem)
{
	struct walk *w = arg;

	if (w->c->json)
		json_str(w->j, NULL, problem);
	else
		printf("problem: %s\n", problem);
}

/* The consistency walk of the database in dir; its problems go to
 * stdout, or into j's open array. CTL_USAGE when it could not be read. */
static int
walk_dir(struct ctl *c, const char *dir, struct json *j, size_t *problems)
{
	struct walk w = { c, j };
	enum casq_err err;
	int rc;

	if ((rc = ctl_open(c, dir)) != CTL_OK)
		return rc;
	err = store_verify(c->st, report, &w, problems);
	ctl_close(c);
	if (err != E_OK)
		return ctl_fail(CTL_USAGE, "%s: the walk could not read everything "
		    "(%zu problem(s) before it stopped)", dir, *problems);
	return CTL_OK;
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
json_seconds(struct json *j, const char *key, double s)
{
	char num[32];

	json_raw(j, key, num, (size_t)snprintf(num, sizeof num, "%.3f", s));
}

static int
verify_exec(struct ctl *c, int argc, char **argv)
{
	struct buf b = { 0 };
	struct json j;
	size_t problems = 0;
	const char *dir;
	int rc;

	if (ctl_getopt(c, argc, argv, NULL) != -1 || optind < argc - 1)
		return ctl_usage(&ctl_verify_cmd);
	dir = optind < argc ? argv[optind] : c->data;
	json_begin(&j, &b);
	json_obj_open(&j, NULL);
	json_str(&j, "data", dir);
	json_arr_open(&j, "problems");
	if ((rc = walk_dir(c, dir, &j, &problems)) != CTL_OK) {
		buf_free(&b);
		return rc;
	}
	json_arr_close(&j);
	json_int(&j, "count", (long long)problems);
	json_obj_close(&j);
	if (c->json)
		ctl_print_json(&b);
	else
		printf("%s: %zu problem(s)\n", dir, problems);
	buf_free(&b);
	return problems == 0 ? CTL_OK : CTL_FAILED;
}

const struct ctl_cmd ctl_verify_cmd = {
	.name = "verify", .args = "[DIR]", .exec = verify_exec,
	.about = "the consistency walk (indexes, counters, expiry entries); one line a problem",
};

/* DEST as an empty place for the copy: made if missing, and never
 * holding a database already (a backup overwrites nothing). */
static int
backup_dest(const char *dest)
{
	char path[4096];
	struct stat sb;

	if (mkdir(dest, 0700) != 0 && errno != EEXIST)
		return ctl_fail(CTL_USAGE, "cannot create %s: %s", dest, strerror(errno));
	snprintf(path, sizeof path, "%s/data.mdb", dest);
	if (stat(path, &sb) == 0)
		return ctl_fail(CTL_USAGE, "%s holds a database already", dest);
	return CTL_OK;
}

static int
backup_exec(struct ctl *c, int argc, char **argv)
{
	struct timespec t0;
	double copy_s, verify_s;
	struct buf b = { 0 };
	struct json j;
	size_t problems = 0;
	char path[4096];
	struct stat sb;
	const char *dest;
	int rc;

	if (ctl_getopt(c, argc, argv, NULL) != -1 || optind != argc - 1)
		return ctl_usage(&ctl_backup_cmd);
	dest = argv[optind];
	if ((rc = backup_dest(dest)) != CTL_OK || (rc = ctl_open(c, NULL)) != CTL_OK)
		return rc;
	/* LMDB creates the copy 0666 less the umask; it holds casqd's leads,
	 * for casqd's user alone, as in --data */
	umask(077);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mdb_env_copy2(c->st->env, dest, MDB_CP_COMPACT);
	copy_s = seconds_since(&t0);
	ctl_close(c);
	if (rc != 0)
		return ctl_fail(CTL_USAGE, "copy to %s: %s", dest, mdb_strerror(rc));
	snprintf(path, sizeof path, "%s/data.mdb", dest);
	if (stat(path, &sb) != 0)
		return ctl_fail(CTL_USAGE, "%s: %s", path, strerror(errno));
	json_begin(&j, &b);
	json_obj_open(&j, NULL);
	json_str(&j, "backup", dest);
	json_int(&j, "bytes", (long long)sb.st_size);
	json_arr_open(&j, "problems");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = walk_dir(c, dest, &j, &problems);
	verify_s = seconds_since(&t0);
	/* the copy's lock file is the walk's, not part of the backup */
	snprintf(path, sizeof path, "%s/lock.mdb", dest);
	unlink(path);
	if (rc != CTL_OK) {
		buf_free(&b);
		return rc;
	}
	json_arr_close(&j);
	json_int(&j, "count", (long long)problems);
	json_seconds(&j, "copy_seconds", copy_s);
	json_seconds(&j, "verify_seconds", verify_s);
	json_obj_close(&j);
	if (c->json)
		ctl_print_json(&b);
	else
		printf("%s: %lld bytes, copied in %.3f s, verified in %.3f s: %zu problem(s)\n",
		    dest, (long long)sb.st_size, copy_s, verify_s, problems);
	buf_free(&b);
	return problems == 0 ? CTL_OK : CTL_FAILED;
}

const struct ctl_cmd ctl_backup_cmd = {
	.name = "backup", .args = "DEST", .exec = backup_exec,
	.about = "a consistent compacted copy into directory DEST while casqd serves, then verified",
};
