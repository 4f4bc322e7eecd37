/*
 * worker.c - one worker process: opens its own LMDB environment after the
 * fork, then serves FastCGI requests one at a time until told to stop.
 *
 * Stopping: SIGTERM is blocked except while the worker waits in ppoll(),
 * so it can only arrive between requests; an in-flight request always
 * finishes and gets its answer.
 *
 * Kept-alive upstream connections: every response closes its FastCGI
 * connection (keepConnection is cleared before finishing), so an idle
 * connection that nginx keeps in its pool can never pin a worker.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"
#include "store.h"

/* How often an idle worker wakes: to sync in relaxed mode and to notice a
 * master that died. */
#define WORKER_TICK_MS	1000
/* Due entries an idle worker expires per transaction: a few milliseconds
 * of work, so a request arriving meanwhile barely waits. */
#define IDLE_SWEEP_BATCH	256

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

/* Wait for a connection with SIGTERM deliverable; 1 when one may be
 * ready, 0 on a tick or a signal. */
static int
wait_for_connection(int fd, const sigset_t *waitmask)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct timespec tick = { WORKER_TICK_MS / 1000, (WORKER_TICK_MS % 1000) * 1000000L };
	int rc = ppoll(&pfd, 1, &tick, waitmask);

	if (rc < 0 && errno != EINTR)
		log_warn("poll: %s", strerror(errno));
	return rc > 0;
}

static int
worker_setup(const struct config *cfg, struct app *app, sigset_t *waitmask)
{
	struct store_config sc = { cfg->data_dir, cfg->map_size, cfg->relaxed };
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t block;
	char why[256];

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

	app->idem_ttl_ms = cfg->idem_ttl_ms;
	/* Never inherit an environment across fork: open our own. */
	if (store_open(&sc, &app->store, why, sizeof why) != 0 ||
	    (app->keys = keyring_load(cfg->keys_file, why, sizeof why)) == NULL) {
		log_error("worker start failed: %s", why);
		store_close(app->store);
		return -1;
	}
	if (FCGX_Init() != 0) {
		log_error("FCGX_Init failed");
		return -1;
	}
	return 0;
}

/* Relaxed mode skips the meta-page flush on commit; flush it at least
 * once per tick so at most about a second of commits is at risk. */
static void
relaxed_sync(const struct config *cfg, struct app *app, int64_t *last_sync)
{
	int64_t now;

	if (!cfg->relaxed || (now = clock_now_ms()) - *last_sync < WORKER_TICK_MS)
		return;
	store_sync(app->store);
	*last_sync = now;
}

/* Expiry while nobody writes: writes also sweep a few entries each, but
 * a quiet service still has to let values, leases and ids go on time. */
static void
idle_sweep(struct app *app)
{
	int64_t now = clock_now_ms();

	if (store_sweep_due(app->store, now))
		store_sweep_batch(app->store, now, IDLE_SWEEP_BATCH);
}

int
worker_main(const struct config *cfg, int listen_fd)
{
	struct app app = { 0 };
	FCGX_Request fr;
	sigset_t waitmask;
	pid_t master = getppid();
	unsigned long served = 0;
	int64_t last_sync = clock_now_ms();

	if (worker_setup(cfg, &app, &waitmask) != 0)
		return 1;
	FCGX_InitRequest(&fr, listen_fd, 0);
	log_debug("worker ready");
	while (!worker_stop && getppid() == master) {
		relaxed_sync(cfg, &app, &last_sync);
		if (!wait_for_connection(listen_fd, &waitmask)) {
			idle_sweep(&app);
			continue;
		}
		/* Another worker may have taken it: accept fails with EAGAIN. */
		if (FCGX_Accept_r(&fr) < 0)
			continue;
		handle_request(&app, &fr);
		fr.keepConnection = 0;
		FCGX_Finish_r(&fr);
		served++;
	}
	FCGX_Free(&fr, 1);
	if (cfg->relaxed)
		store_sync(app.store);	/* a graceful stop loses nothing */
	store_close(app.store);
	keyring_free(app.keys);
	log_debug("worker exiting after %lu request(s)", served);
	return 0;
}
