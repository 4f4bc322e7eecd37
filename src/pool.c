/*
 * pool.c - the master process: pre-forks the workers, restarts one that
 * dies (backing off when it keeps dying), restarts them all on SIGHUP one
 * by one, and stops them gracefully on SIGTERM/SIGINT. Signal handlers
 * only set flags; the loop below reacts.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "daemon.h"
#include "http.h"

/* A worker that dies within this long of starting counts as crashing:
 * its restarts back off from 100 ms, doubling up to 30 s. */
#define CRASH_WINDOW_MS		2000
#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		30000

struct slot {
	pid_t   pid;		/* 0: not running */
	int64_t started_at;
	int64_t restart_at;	/* when to start it again, if not running */
	int     backoff_ms;
	bool    reloading;	/* stopped by SIGHUP: restart at once */
};

static volatile sig_atomic_t got_term, got_child, got_hup;

static void on_term(int sig)  { got_term = 1; }
static void on_child(int sig) { got_child = 1; }
static void on_hup(int sig)   { got_hup = 1; }

struct pool {
	const struct config *cfg;
	struct listener     *listener;
	struct slot         *slots;
	int                  reload_next;	/* next slot to restart for SIGHUP, -1: none */
	sigset_t             waitmask;
};

static void
slot_spawn(struct pool *p, int i, const sigset_t *origmask)
{
	struct slot *s = &p->slots[i];
	pid_t pid = fork();

	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		s->restart_at = clock_now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0) {
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGTERM);	/* die with the master */
#endif
		/* Signals stay blocked: worker_main installs its handlers
		 * first, so a SIGTERM sent right after the fork waits for them. */
		(void)origmask;
		_exit(worker_main(p->cfg, p->listener->fd));
	}
	s->pid = pid;
	s->started_at = clock_now_ms();
	if (s->reloading && p->reload_next == i)
		p->reload_next++;
	s->reloading = false;
	log_info("worker %d started (pid %ld)", i, (long)pid);
}

static struct slot *
slot_of(struct pool *p, pid_t pid)
{
	for (int i = 0; i < p->cfg->workers; i++)
		if (p->slots[i].pid == pid)
			return &p->slots[i];
	return NULL;
}

/* Reap dead workers and decide when each comes back. */
static void
reap(struct pool *p, bool stopping)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct slot *s = slot_of(p, pid);
		int64_t now = clock_now_ms();

		if (s == NULL)
			continue;
		s->pid = 0;
		if (stopping || s->reloading) {
			s->restart_at = now;
			if (!stopping)
				log_info("worker pid %ld stopped for reload", (long)pid);
			continue;
		}
		if (WIFSIGNALED(status))
			log_warn("worker pid %ld killed by signal %d", (long)pid, WTERMSIG(status));
		else
			log_warn("worker pid %ld exited with status %d", (long)pid, WEXITSTATUS(status));
		if (now - s->started_at < CRASH_WINDOW_MS)
			s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
		else
			s->backoff_ms = 0;
		if (s->backoff_ms > BACKOFF_MAX_MS)
			s->backoff_ms = BACKOFF_MAX_MS;
		s->restart_at = now + s->backoff_ms;
		if (s->backoff_ms > 0)
			log_warn("restarting it in %d ms", s->backoff_ms);
	}
}

/* SIGHUP: stop one worker at a time; slot_spawn moves on to the next
 * once the stopped one is back. */
static void
reload_step(struct pool *p)
{
	while (p->reload_next >= 0 && p->reload_next < p->cfg->workers) {
		struct slot *s = &p->slots[p->reload_next];

		if (s->reloading)
			return;			/* finishing requests or restarting */
		if (s->pid == 0) {
			p->reload_next++;	/* down anyway: comes back fresh */
			continue;
		}
		s->reloading = true;
		kill(s->pid, SIGTERM);
		return;
	}
	p->reload_next = -1;
}

/* SIGHUP: restart the workers so they read the keys file again, but only
 * if it still reads: a broken file would take every worker down. */
static void
reload_begin(struct pool *p)
{
	char why[512];
	struct keyring *kr = keyring_load(p->cfg->keys_file, why, sizeof why);

	if (kr == NULL) {
		log_error("SIGHUP ignored, workers keep their keys: %s", why);
		return;
	}
	keyring_free(kr);
	log_info("SIGHUP: restarting workers one by one");
	p->reload_next = 0;
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

/* Sleep until a signal arrives (or timeout_ms passes, when >= 0); the
 * signals are blocked everywhere else, so none is missed. */
static void
wait_event(struct pool *p, int64_t timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };

	if (timeout_ms < 0)
		sigsuspend(&p->waitmask);
	else
		pselect(0, NULL, NULL, NULL, &ts, &p->waitmask);
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
	struct pool p = { .cfg = cfg, .listener = l, .reload_next = -1 };
	struct sigaction sa = { 0 };
	sigset_t block, origmask;

	p.slots = xcalloc((size_t)cfg->workers, sizeof *p.slots);
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
		slot_spawn(&p, i, &origmask);
	while (!got_term) {
		got_child = 0;
		reap(&p, false);
		if (got_hup) {
			got_hup = 0;
			reload_begin(&p);
		}
		for (int i = 0; i < cfg->workers; i++)
			if (p.slots[i].pid == 0 && p.slots[i].restart_at <= clock_now_ms())
				slot_spawn(&p, i, &origmask);
		reload_step(&p);
		if (!got_term && !got_child && !got_hup)
			wait_event(&p, next_restart_in(&p));
	}
	log_info("stopping: waiting for in-flight requests");
	stop_all(&p);
	free(p.slots);
	log_info("stopped");
	return 0;
}
