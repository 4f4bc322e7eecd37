/*
 * worker.c - one worker process: opens its own LMDB environment after the
 * fork, starts the group committer, and serves FastCGI requests on
 * several threads until told to stop.
 *
 * Threads: each serving thread owns one FCGX_Request. A per-process
 * accept lock lets one thread at a time wait for a connection, so a new
 * connection wakes one thread, not all of them. Reads run in the serving
 * thread; writes are handed to the committer (store_batch.c), which
 * commits everything that queued up during the previous flush at once.
 *
 * Stopping: every thread blocks SIGTERM; the main thread alone waits for
 * it, then writes to a pipe that every serving thread polls. A thread in
 * the middle of a request finishes it (and its answer) first.
 *
 * Kept-alive upstream connections: every response closes its FastCGI
 * connection (keepConnection is cleared before finishing), so an idle
 * connection that nginx keeps in its pool can never pin a thread.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"
#include "store.h"

/* How often the main thread wakes: to sweep expired entries, to sync in
 * relaxed mode and to notice a master that died. */
#define WORKER_TICK_MS	1000
/* Due entries expired per tick: a few milliseconds of work, so the
 * requests queued behind that commit barely wait. */
#define IDLE_SWEEP_BATCH	256
/* Operations per commit at most: bounds the latency one batch adds. */
#define COMMIT_BATCH_MAX	256
/* Serving threads' stacks: request handling is shallow (JSON nesting is
 * capped at 32 before anything recurses). */
#define THREAD_STACK_SIZE	(512 * 1024)

struct worker {
	const struct config *cfg;
	struct app           app;
	int                  listen_fd;
	int                  stop_pipe[2];	/* written once: stop */
	pthread_mutex_t      accept_lock;
};

static volatile sig_atomic_t worker_stop;

static void
on_stop(int sig)
{
	worker_stop = 1;
}

/* Read the body; one larger than BODY_MAX is left unread, and body_len
 * keeps its declared size so routing answers 413. */
static void
read_body(FCGX_Request *fr, struct request *req)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
	long declared = cl ? strtol(cl, NULL, 10) : 0;
	size_t got = 0;
	int n;

	if (declared <= 0) {
		req->body = xstrndup("", 0);
		return;
	}
	if (declared > BODY_MAX) {
		req->body = xstrndup("", 0);
		req->body_len = (size_t)declared;
		return;
	}
	req->body = xmalloc((size_t)declared + 1);
	while (got < (size_t)declared &&
	    (n = FCGX_GetStr(req->body + got, (int)((size_t)declared - got), fr->in)) > 0)
		got += (size_t)n;
	req->body[got] = '\0';
	req->body_len = got;
}

/* Headers are formatted here, not with FCGX_FPrintF: libfcgi has its own
 * printf that does not know %zu. */
static void
send_response(FCGX_Request *fr, const struct response *res)
{
	char head[512];
	int n = snprintf(head, sizeof head,
	    "Status: %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Cache-Control: no-store\r\n"
	    "Content-Length: %zu\r\n"
	    "%s%s%s"
	    "\r\n", res->status, res->reason, res->body.len + 1,
	    res->allow ? "Allow: " : "", res->allow ? res->allow : "",
	    res->allow ? "\r\n" : "");

	FCGX_PutStr(head, n, fr->out);
	FCGX_PutStr(res->body.data, (int)res->body.len, fr->out);
	FCGX_PutStr("\n", 1, fr->out);
}

static void
handle_request(struct app *app, FCGX_Request *fr)
{
	struct request req = { 0 };
	struct response res = { 0 };
	const char *method = FCGX_GetParam("REQUEST_METHOD", fr->envp);
	const char *uri = FCGX_GetParam("REQUEST_URI", fr->envp);

	req.method = method ? method : "GET";
	req.uri = uri ? uri : FCGX_GetParam("DOCUMENT_URI", fr->envp);
	req.content_type = FCGX_GetParam("CONTENT_TYPE", fr->envp);
	req.authorization = FCGX_GetParam("HTTP_AUTHORIZATION", fr->envp);
	req.api_key = FCGX_GetParam("HTTP_X_API_KEY", fr->envp);
	req.idempotency_key = FCGX_GetParam("HTTP_IDEMPOTENCY_KEY", fr->envp);
	req.now = clock_now_ms();
	read_body(fr, &req);
	route_request(app, &req, &res);
	send_response(fr, &res);
	log_debug("%s %s %d", req.method, req.path, res.status);
	request_free(&req);
	free(req.body);
	response_free(&res);
}

/* Wait until a connection may be ready (true) or the worker stops. */
static bool
wait_for_connection(struct worker *w)
{
	struct pollfd pfd[2] = {
		{ .fd = w->listen_fd, .events = POLLIN },
		{ .fd = w->stop_pipe[0], .events = POLLIN },
	};

	for (;;) {
		int rc = poll(pfd, 2, -1);

		if (rc < 0 && errno != EINTR) {
			log_warn("poll: %s", strerror(errno));
			return false;
		}
		if (rc > 0 && pfd[1].revents)
			return false;
		if (rc > 0 && pfd[0].revents)
			return true;
	}
}

/* Take the next connection; false when the worker stops. */
static bool
accept_next(struct worker *w, FCGX_Request *fr)
{
	bool got = false;

	pthread_mutex_lock(&w->accept_lock);
	while (!got && wait_for_connection(w))
		/* Another process may have taken it: accept fails with
		 * EAGAIN and we wait again. */
		got = FCGX_Accept_r(fr) >= 0;
	pthread_mutex_unlock(&w->accept_lock);
	return got;
}

static void *
serve_thread(void *arg)
{
	struct worker *w = arg;
	FCGX_Request fr;

	FCGX_InitRequest(&fr, w->listen_fd, 0);
	while (accept_next(w, &fr)) {
		handle_request(&w->app, &fr);
		fr.keepConnection = 0;
		FCGX_Finish_r(&fr);
	}
	FCGX_Free(&fr, 1);
	return NULL;
}

/* Relaxed mode skips the meta-page flush on commit; flush it once per
 * tick so at most about a second of commits is at risk. */
static void
tick(struct worker *w)
{
	int64_t now = clock_now_ms();

	if (store_sweep_due(w->app.store, now))
		store_sweep_batch(w->app.store, now, IDLE_SWEEP_BATCH);
	if (w->cfg->relaxed)
		store_sync(w->app.store);
}

/* Signals: SIGTERM/SIGINT blocked everywhere; waitmask unblocks them for
 * the main thread's wait only. */
static void
worker_signals(sigset_t *waitmask)
{
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t block;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, waitmask);
	sigdelset(waitmask, SIGTERM);
	sigdelset(waitmask, SIGINT);
}

static int
worker_open(struct worker *w)
{
	const struct config *cfg = w->cfg;
	struct store_config sc = { cfg->data_dir, cfg->map_size, cfg->relaxed };
	char why[256];

	w->app.idem_ttl_ms = cfg->idem_ttl_ms;
	/* Never inherit an environment across fork: open our own. */
	if (store_open(&sc, &w->app.store, why, sizeof why) != 0 ||
	    (w->app.keys = keyring_load(cfg->keys_file, why, sizeof why)) == NULL) {
		log_error("worker start failed: %s", why);
		return -1;
	}
	if (committer_start(w->app.store, COMMIT_BATCH_MAX) != 0 ||
	    pipe(w->stop_pipe) != 0 || FCGX_Init() != 0) {
		log_error("worker start failed: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_init(&w->accept_lock, NULL);
	return 0;
}

int
worker_main(const struct config *cfg, int listen_fd)
{
	struct worker w = { .cfg = cfg, .listen_fd = listen_fd };
	struct timespec ts = { WORKER_TICK_MS / 1000, 0 };
	pthread_t *threads = xcalloc((size_t)cfg->threads, sizeof *threads);
	pthread_attr_t attr;
	sigset_t waitmask;
	pid_t master = getppid();
	int started = 0, rc = 0;

	worker_signals(&waitmask);
	if (worker_open(&w) != 0) {
		rc = 1;
		goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	for (; started < cfg->threads; started++)
		if (pthread_create(&threads[started], &attr, serve_thread, &w) != 0)
			break;
	pthread_attr_destroy(&attr);
	log_debug("worker ready: %d thread(s)", started);
	while (!worker_stop && getppid() == master && started > 0) {
		pselect(0, NULL, NULL, NULL, &ts, &waitmask);
		if (!worker_stop)
			tick(&w);
	}
	(void)!write(w.stop_pipe[1], "x", 1);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (cfg->relaxed)
		store_sync(w.app.store);	/* a graceful stop loses nothing */
	rc = started > 0 ? 0 : 1;
out:
	store_close(w.app.store);	/* stops the committer first */
	keyring_free(w.app.keys);
	free(threads);
	return rc;
}
