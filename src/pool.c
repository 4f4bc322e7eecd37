/*
 * pool.c - the master process: pre-forks the workers, replaces one that
 * dies (backing off only when it keeps failing before it is ready),
 * has each reload its keys in place on SIGHUP, and stops them gracefully on
 * SIGTERM/SIGINT. Signal handlers only set flags; the loop below reacts.
 *
 * Restart policy, as php-fpm's and nginx's masters do: a worker that had
 * become ready (store open, keys read, threads serving) is replaced at
 * once, however it died: the OOM killer or an operator's kill is not a
 * crash loop, and Marketo does not retry a webhook that fails meanwhile.
 * Only a worker that dies before it is ready backs off, from 100 ms
 * doubling to 30 s: its successor would most likely fail the same way (a
 * broken keys file, a store that cannot open). Such a loop is logged once
 * when it begins and once when the slot is ready again; the failures in
 * between only at debug level.
 *
 * The ready signal is one byte on a pipe per worker, written by the worker
 * once its threads serve (worker_main). The simplest robust way: a byte
 * in a pipe outlives its writer, so at the reap the master still reads it
 * from a worker that died right after writing it, and "died after ready"
 * is told from "never ready" without a race. A signal could be lost in a
 * coalesced pair or arrive after the SIGCHLD; shared memory would need
 * mapping and locking. The master sleeps in pselect on the pipes of the
 * workers not yet ready, so it sees readiness at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "daemon.h"
#include "http.h"

/* Back-off of a worker that fails before it is ready: the first restart
 * after 100 ms (a transient failure, e.g. a full reader table, clears
 * fast), doubling up to 30 s (a broken keys file costs a fork and a log
 * line at debug level twice a minute, and is picked up within 30 s of the
 * fix). */
#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		30000

struct slot {
	pid_t   pid;		/* 0: not running */
	int     ready_fd;	/* read end of the running worker's ready pipe; -1: none */
	bool    ready;		/* the running worker said it serves */
	int64_t restart_at;	/* when to start it again, if not running */
	int     backoff_ms;	/* 0: not failing */
	int     failed_starts;	/* since the slot last had a ready worker */
};

static volatile sig_atomic_t got_term, got_child, got_hup;

static void on_term(int sig)  { got_term = 1; }
static void on_child(int sig) { got_child = 1; }
static void on_hup(int sig)   { got_hup = 1; }

struct pool {
	const struct config *cfg;
	struct listener     *listener;
	struct slot         *slots;
	sigset_t             waitmask;
};

/* The slot's worker failed before it was ready (or could not be forked):
 * start it again after the back-off, which doubles at each failure. */
static void
slot_failed(struct slot *s, int i, const char *how)
{
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
	s->restart_at = clock_now_ms() + s->backoff_ms;
	if (s->failed_starts++ == 0)
		log_warn("worker %d is failing before it is ready (%s): restarting it "
		    "with back-off, %d ms doubling to %d s; not logged again until it "
		    "is ready", i, how, BACKOFF_MIN_MS, BACKOFF_MAX_MS / 1000);
	else
		log_debug("worker %d failed before it was ready again (%s): next "
		    "start in %d ms", i, how, s->backoff_ms);
}

/* The worker's side of the ready pipe is fd; every other descriptor of the
 * master's pipes is closed, so each pipe has one writer. Never returns. */
static _Noreturn void
worker_child(struct pool *p, int i, int fd)
{
#ifdef __linux__
	prctl(PR_SET_PDEATHSIG, SIGTERM);	/* die with the master */
#endif
	for (int j = 0; j < p->cfg->workers; j++)
		if (p->slots[j].ready_fd >= 0)
			close(p->slots[j].ready_fd);
	/* Signals stay blocked: worker_main installs its handlers first, so
	 * a SIGTERM sent right after the fork waits for them. A slot that is
	 * failing logs why only the first time (the master said it loops). */
	metrics_attach(p->cfg->metrics, i);	/* before any thread */
	_exit(worker_main(p->cfg, p->listener->fd, fd, p->slots[i].failed_starts > 0));
}

static void
slot_spawn(struct pool *p, int i)
{
	struct slot *s = &p->slots[i];
	int fds[2];
	pid_t pid;

	if (pipe(fds) != 0) {
		log_error("worker %d: pipe: %s", i, strerror(errno));
		slot_failed(s, i, "no pipe");
		return;
	}
	if ((pid = fork()) < 0) {
		log_error("worker %d: fork: %s", i, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		slot_failed(s, i, "no fork");
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		worker_child(p, i, fds[1]);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	s->ready_fd = fds[0];
	s->ready = false;
	s->pid = pid;
	log_msg(s->failed_starts ? LOG_DEBUG : LOG_INFO, "worker %d started (pid %ld)",
	    i, (long)pid);
}

/* Read the slot's ready pipe, if still open: the byte (ready), or EOF
 * (the worker is gone without it), or nothing yet. */
static void
slot_poll_ready(struct slot *s, int i)
{
	char c;
	ssize_t n;

	if (s->ready_fd < 0)
		return;
	while ((n = read(s->ready_fd, &c, 1)) < 0 && errno == EINTR)
		;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	close(s->ready_fd);
	s->ready_fd = -1;
	if (n != 1)
		return;
	s->ready = true;
	if (s->failed_starts > 0)
		log_info("worker %d ready again (pid %ld) after %d failed start(s)",
		    i, (long)s->pid, s->failed_starts);
	else
		log_debug("worker %d ready (pid %ld)", i, (long)s->pid);
	s->failed_starts = 0;
	s->backoff_ms = 0;
}

static void
poll_ready(struct pool *p)
{
	for (int i = 0; i < p->cfg->workers; i++)
		slot_poll_ready(&p->slots[i], i);
}

static int
slot_of(struct pool *p, pid_t pid)
{
	for (int i = 0; i < p->cfg->workers; i++)
		if (p->slots[i].pid == pid)
			return i;
	return -1;
}

/* Reap dead workers and decide when each comes back: at once if it was
 * ready, after the back-off if not. */
static void
reap(struct pool *p, bool stopping)
{
	char how[64];
	int status, i;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct slot *s;

		if ((i = slot_of(p, pid)) < 0)
			continue;
		s = &p->slots[i];
		slot_poll_ready(s, i);	/* its byte outlives it */
		if (s->ready_fd >= 0)
			close(s->ready_fd);
		s->ready_fd = -1;
		s->pid = 0;
		if (stopping) {
			s->restart_at = clock_now_ms();
			continue;
		}
		metrics_worker_restart(p->cfg->metrics);
		if (WIFSIGNALED(status))
			snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
		else
			snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
		if (s->ready) {
			log_warn("worker pid %ld %s: replacing it at once", (long)pid, how);
			s->restart_at = clock_now_ms();
		} else
			slot_failed(s, i, how);
		s->ready = false;
	}
}

/* SIGHUP: have every worker read the keys file again, in place (no
 * worker stops, so no connection nginx keeps is closed), but only if it
 * still reads here: a worker that cannot read it keeps its keys, but
 * one started meanwhile would fail. A worker not running reads it when
 * it starts. */
static void
reload_keys(struct pool *p)
{
	char why[512];
	struct keyring *kr = keyring_load(p->cfg->keys_file, why, sizeof why);

	if (kr == NULL) {
		log_error("SIGHUP ignored, workers keep their keys: %s", why);
		return;
	}
	/* New rate-limited keys get their slot before any worker that
	 * knows them is forked. */
	if (!ratelimit_register(p->cfg->rl, kr)) {
		log_error("SIGHUP ignored, workers keep their keys: "
		    "too many keys with a rate limit");
		keyring_free(kr);
		return;
	}
	keyring_free(kr);
	log_info("SIGHUP: workers reload the keys file");
	for (int i = 0; i < p->cfg->workers; i++)
		if (p->slots[i].pid)
			kill(p->slots[i].pid, SIGHUP);
}

/* Milliseconds until the next scheduled restart, or -1 for none. */
static int64_t
next_restart_in(const struct pool *p)
{
	int64_t best = -1, now = clock_now_ms();

	for (int i = 0; i < p->cfg->workers; i++) {
		const struct slot *s = &p->slots[i];
		if (s->pid == 0) {
			int64_t in = s->restart_at > now ? s->restart_at - now : 0;
			if (best < 0 || in < best)
				best = in;
		}
	}
	return best;
}

/* Sleep until a signal arrives, a worker not yet ready writes its byte
 * (or dies), or timeout_ms passes (when >= 0); the signals are blocked
 * everywhere else, so none is missed. */
static void
wait_event(struct pool *p, int64_t timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
	fd_set rd;
	int maxfd = -1;

	FD_ZERO(&rd);
	for (int i = 0; i < p->cfg->workers; i++)
		if (p->slots[i].ready_fd >= 0 && p->slots[i].ready_fd < FD_SETSIZE) {
			FD_SET(p->slots[i].ready_fd, &rd);
			if (p->slots[i].ready_fd > maxfd)
				maxfd = p->slots[i].ready_fd;
		}
	pselect(maxfd + 1, &rd, NULL, NULL, timeout_ms < 0 ? NULL : &ts, &p->waitmask);
}

/* Stop every worker: SIGTERM, then SIGKILL after the shutdown timeout. */
static void
stop_all(struct pool *p)
{
	int64_t deadline = clock_now_ms() + (int64_t)p->cfg->shutdown_timeout_s * 1000;
	bool any;

	for (int i = 0; i < p->cfg->workers; i++)
		if (p->slots[i].pid)
			kill(p->slots[i].pid, SIGTERM);
	for (;;) {
		reap(p, true);
		any = false;
		for (int i = 0; i < p->cfg->workers; i++)
			any |= p->slots[i].pid != 0;
		if (!any)
			return;
		if (clock_now_ms() >= deadline) {
			log_warn("workers still busy after %d s: killing them",
			    p->cfg->shutdown_timeout_s);
			for (int i = 0; i < p->cfg->workers; i++)
				if (p->slots[i].pid)
					kill(p->slots[i].pid, SIGKILL);
			deadline = INT64_MAX;
		}
		wait_event(p, 100);
	}
}

int
pool_run(const struct config *cfg, struct listener *l)
{
	struct pool p = { .cfg = cfg, .listener = l };
	struct sigaction sa = { 0 };
	sigset_t block, origmask;

	p.slots = xcalloc((size_t)cfg->workers, sizeof *p.slots);
	for (int i = 0; i < cfg->workers; i++)
		p.slots[i].ready_fd = -1;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &origmask);
	p.waitmask = origmask;
	sigdelset(&p.waitmask, SIGTERM);
	sigdelset(&p.waitmask, SIGINT);
	sigdelset(&p.waitmask, SIGHUP);
	sigdelset(&p.waitmask, SIGCHLD);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_child;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("casqd %s: %d workers x %d threads, data %s, durability %s",
	    PACKAGE_VERSION, cfg->workers, cfg->threads, cfg->data_dir,
	    cfg->relaxed ? "relaxed" : "full");
	for (int i = 0; i < cfg->workers; i++)
		slot_spawn(&p, i);
	while (!got_term) {
		got_child = 0;
		reap(&p, false);
		poll_ready(&p);
		if (got_hup) {
			got_hup = 0;
			reload_keys(&p);
		}
		for (int i = 0; i < cfg->workers; i++)
			if (p.slots[i].pid == 0 && p.slots[i].restart_at <= clock_now_ms())
				slot_spawn(&p, i);
		if (!got_term && !got_child && !got_hup)
			wait_event(&p, next_restart_in(&p));
	}
	log_info("stopping: waiting for in-flight requests");
	stop_all(&p);
	free(p.slots);
	log_info("stopped");
	return 0;
}
