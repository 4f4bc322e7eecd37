/*
 * test_store_deadwriter.c - a writer process killed after its meta page
 * was written but before LMDB published the transaction's id in the lock
 * file (SIGKILL during the O_DSYNC meta write: the write completes, the
 * thread dies on its way back). Its commit is on disk; a read started in
 * another process afterwards must see it, although no writer has taken
 * the lock (and repaired the id) since. test_linear found the stale read
 * this was: a get after a set's 503 answered the old value.
 *
 * The kill is a pwrite of this program's own, which LMDB's calls reach
 * (the executable's definition comes first), armed in the child only.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_fixture.h"

#define NS	"t:ns"

static int kill_after_meta;	/* the child's: die after a meta page write */

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	ssize_t r;

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	r = real(fd, buf, n, off);
	if (kill_after_meta && r == (ssize_t)n && off < 2 * sysconf(_SC_PAGESIZE))
		raise(SIGKILL);	/* pages 0 and 1 are the meta pages */
	return r;
}

static enum casq_err
kv(enum kv_op_kind kind, const char *json, struct kv_op *out)
{
	struct kv_op op = { .kind = kind, .now = T0, .ns = NS, .key = "k" };
	enum casq_err err;

	if (json != NULL) {
		op.value = json;
		op.value_len = strlen(json);
	}
	err = store_run(st, kv_op_writes(&op), op.now, kv_apply, &op);
	*out = op;
	return err;
}

static bool
value_is(const struct kv_op *op, const char *want)
{
	return op->res.ok && op->res.value.len == strlen(want) &&
	    memcmp(op->res.value.data, want, op->res.value.len) == 0;
}

int
main(void)
{
	char dir[256], why[256];
	struct store_config cfg = { .dir = dir, .map_size = MAP_DEFAULT };
	struct kv_op op;
	int status = 0;
	pid_t pid;

	fixture_start();
	section("deadwriter", MAP_DEFAULT);
	snprintf(dir, sizeof dir, "%s/deadwriter", fixture_root);
	is_int(kv(KV_SET, "1", &op), E_OK, "deadwriter: the first value is set");
	kv_result_free(&op.res);

	fflush(NULL);
	if ((pid = fork()) < 0)
		bail_out("fork");
	if (pid == 0) {
		struct store *mine;	/* never an environment across fork */

		if (store_open(&cfg, &mine, why, sizeof why) != 0)
			_exit(3);
		st = mine;
		kill_after_meta = 1;
		kv(KV_SET, "2", &op);
		_exit(4);		/* the kill did not come */
	}
	while (waitpid(pid, &status, 0) < 0)
		;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "deadwriter: the writer died after its meta write (status %#x)", status);

	is_int(kv(KV_GET, NULL, &op), E_OK, "deadwriter: a read runs");
	ok(value_is(&op, "2") && op.res.version == 2,
	    "deadwriter: the read sees the dead writer's commit (value %.*s, version %llu)",
	    (int)op.res.value.len, op.res.value.data ? op.res.value.data : "",
	    (unsigned long long)op.res.version);
	kv_result_free(&op.res);

	is_int(kv(KV_SET, "3", &op), E_OK, "deadwriter: the next write runs");
	ok(op.res.version == 3, "deadwriter: ... on top of the dead writer's commit (version %llu)",
	    (unsigned long long)op.res.version);
	kv_result_free(&op.res);

	fixture_end();
	return done_testing();
}
