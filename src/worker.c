/*
 * worker.c - one worker process: opens its own LMDB environment after the
 * fork, starts its committer and completer, and serves FastCGI requests
 * on several threads until told to stop.
 *
 * Threads (each main has a comment saying what it owns, frees, blocks on
 * and when it exits):
 *   main        this file's worker_main: signals, the tick (idle sweep,
 *               relaxed-mode sync), stop
 *   serving     serve_thread, --threads of them: read, route, reply to
 *               reads, hand writes to the committer
 *   committer   store_batch.c: applies and commits the writes (group
 *               commit), the process's only write transaction
 *   completer   worker_reply.c: replies to writes once durable
 * Serving threads wait together in epoll_wait on one epoll set: the
 * listening socket, every kept-alive connection and the stop pipe.
 * Sockets are one-shot, so each event wakes exactly one thread, and no
 * lock is passed between threads. A thread reads the request (one
 * struct exchange each) and routes it: a read answers at once; a write
 * goes to the committer and the thread takes the next request. The
 * completer sends the write's answer once its commit is durable. A write
 * thus costs no thread switch of its own, and the number of writes in one
 * commit is bounded by the requests nginx has in flight, not by the
 * number of threads.
 *
 * A write's life, and who owns what when:
 *
 *   what                      allocated   applied on   rendered, freed on
 *   struct exchange (x)       serving     -            completer
 *     x->req: params, body    serving     -            completer
 *     x->res                  serving     -            completer
 *   route_call + its op       serving     committer    completer
 *     (res->pending)          (route_exec)(route_call_apply) (route_finish)
 *   batch_req, commit_batch   serving /   committer    completer
 *                             committer                (commit_batch_finish)
 *
 * The op's strings are borrowed, not copied: queue, namespace and scope
 * point into x->req.name, keys, ids, claimants and tokens into
 * x->req.params, a request id into x->req.request_id. They stay valid
 * because the one exchange carries both the request and the op, and is
 * freed in one place, exchange_reply, after route_finish has rendered
 * and freed the op (exchange_committed: route_finish, then
 * exchange_reply). Nothing else frees the request while the op is in
 * the committer's hands, and a serving thread never touches x again
 * after committer_submit.
 *
 * Peers (conn.c): a serving thread reads a connection without waiting,
 * into a buffer of its own, and checks the records (fcgi_guard.c); only a
 * whole request that passed goes to libfcgi, which reads it from the
 * thread's feed (a socket pair), never from the peer. A request that is
 * not whole yet leaves its bytes with the connection, which waits in epoll
 * again. Replies are sent without waiting too (worker_reply_render, then
 * conn_reply); what a peer does not take at once is sent on EPOLLOUT. So
 * no thread ever waits on a peer, and a kept-alive connection (nginx
 * fastcgi_keep_conn) waits in the epoll set between requests: however
 * many connections are open, and however slow their peers, a request
 * that came whole is served as soon as a thread is free.
 *
 * Stopping: every thread blocks SIGTERM; the main thread alone waits for
 * it, then writes to the stop pipe, which every serving thread sees. A
 * thread in the middle of a request finishes it first; writes already
 * handed over are committed and answered before the process exits.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "route.h"
#include "store.h"

/* How often the main thread wakes: to sweep expired entries, to sync in
 * relaxed mode and to notice a master that died. */
#define WORKER_TICK_MS	1000
/* Due entries expired per tick: a few milliseconds of work, so the
 * requests queued behind that commit barely wait. */
#define IDLE_SWEEP_BATCH	256
/* Operations per commit at most: bounds the latency one batch adds. */
#define COMMIT_BATCH_MAX	256
/* malloc arenas per worker: one per core of the machine we measured */
#define WORKER_ARENAS	2
/* On stop, how long connections are still served (and then closed) before
 * the threads exit: nginx sends its next requests on the connections it
 * keeps, and one that is closed with a request in it answers 502. */
#define STOP_GRACE_MS	200
/* Serving threads' stacks: request handling is shallow (JSON nesting is
 * capped at 32 before anything recurses). */
#define THREAD_STACK_SIZE	(512 * 1024)
/* Out of descriptors or memory on accept: new connections wait in the
 * backlog this long before the next try. A descriptor freed by a closing
 * connection is used within 100 ms, and ten tries a second cost nothing
 * (retrying at once spun a core). */
#define ACCEPT_PAUSE_MS	100
/* Those failures are logged at most this often, with their count. */
#define ACCEPT_LOG_EVERY_MS	1000

/* The keyring in use, replaced on SIGHUP without stopping anything: a
 * serving thread counts itself into the keyring generation while it
 * routes a request (the only time it reads the keyring: the key it
 * found, req->key, is used no longer); a reload swaps the keyring, moves
 * to the next generation and frees the old keyring once nobody is left
 * in the old one. Two counters, one per parity, as in userspace RCU. */
struct keys_guard {
	atomic_uint gen;
	atomic_uint in[2];	/* threads routing, by the parity of gen */
};

struct worker {
	const struct config *cfg;
	struct app           app;
	struct keys_guard    keys_guard;
	struct committer    *committer;	/* applies and commits writes */
	struct worker_reply *reply;	/* the completer: answers writes */
	int                  listen_fd;
	int                  stop_pipe[2];	/* written once: stop */
	int                  epfd;		/* listener, connections, stop */
	struct conns        *conns;		/* every connection not busy */
	atomic_bool          stopping;	/* close connections after their reply */
	/* Accept failures for want of resources. Only the thread that took
	 * the one-shot listener's event touches these, before it watches
	 * the listener again: one thread at a time. */
	bool                 accept_failing;
	unsigned long        accept_failed;	/* since the last line */
	int64_t              accept_logged_at;
};

static volatile sig_atomic_t worker_stop, worker_reload;

static void
on_stop(int sig)
{
	worker_stop = 1;
}

static void
on_reload(int sig)
{
	worker_reload = 1;
}

/* Count this thread into the current generation; returns it. The
 * generation is read again after counting: had a reload moved on in
 * between, its wait could have missed this thread, so count again. */
static unsigned
keys_enter(struct keys_guard *g)
{
	for (;;) {
		unsigned gen = atomic_load(&g->gen);

		atomic_fetch_add(&g->in[gen & 1], 1);
		if (atomic_load(&g->gen) == gen)
			return gen;
		atomic_fetch_sub(&g->in[gen & 1], 1);
	}
}

static void
keys_leave(struct keys_guard *g, unsigned gen)
{
	atomic_fetch_sub(&g->in[gen & 1], 1);
}

/* SIGHUP: read the keys file again; on success swap the keyring in and
 * free the old one once no thread can still be reading it. A file that
 * does not read (the master checked it, but it may have changed since)
 * leaves the keys as they are. Nothing stops, so no request is lost. */
static void
keys_reload(struct worker *w)
{
	struct timespec pause = { 0, 1000000L };	/* 1 ms: a request's routing */
	struct keyring *kr, *old;
	char why[512];
	unsigned gen;

	if ((kr = keyring_load(w->cfg->keys_file, why, sizeof why)) == NULL) {
		log_error("keys not reloaded, the worker keeps its keys: %s", why);
		return;
	}
	old = atomic_exchange(&w->app.keys, kr);
	gen = atomic_fetch_add(&w->keys_guard.gen, 1);
	while (atomic_load(&w->keys_guard.in[gen & 1]) != 0)
		nanosleep(&pause, NULL);
	keyring_free(old);
	log_info("keys reloaded: %zu key(s)", keyring_count(kr));
}

/* Read the body; one larger than BODY_MAX is left unread, and body_len
 * keeps its declared size so routing answers 413. nginx marks a request
 * whose body it refused (a chunked one has no Content-Length to go by). */
static void
read_body(FCGX_Request *fr, struct request *req)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
	long declared = cl ? strtol(cl, NULL, 10) : 0;
	size_t got = 0;
	int n;

	if (FCGX_GetParam("CASQ_BODY_REFUSED", fr->envp) != NULL)
		declared = BODY_MAX + 1;
	if (declared <= 0 || declared > BODY_MAX) {
		req->body = xstrndup("", 0);
		req->body_len = declared > 0 ? (size_t)declared : 0;
		return;
	}
	req->body = xmalloc((size_t)declared + 1);
	while (got < (size_t)declared &&
	    (n = FCGX_GetStr(req->body + got, (int)((size_t)declared - got), fr->in)) > 0)
		got += (size_t)n;
	req->body[got] = '\0';
	req->body_len = got;
	req->body_incomplete = got < (size_t)declared;
}

/* Watch the listener for the next connection: one thread gets it, once
 * (EPOLLONESHOT). */
static bool
watch_listener(struct worker *w)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = &w->listen_fd };

	return epoll_ctl(w->epfd, EPOLL_CTL_MOD, w->listen_fd, &ev) == 0 ||
	    (errno == ENOENT && epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listen_fd, &ev) == 0);
}

static void
peer_setup(int fd)
{
	int one = 1;

	/* as libfcgi's own accept does; fails harmlessly on a unix socket */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Stopping: is a connection ready besides the stop pipe? Then *ev is
 * set to it. The stop pipe is level-triggered and goes to the back of
 * epoll's ready list each time it is reported, so of two events at least
 * one is a connection, if any is ready. A second connection taken here
 * is parked again for another thread. */
static bool
ready_besides_stop(struct worker *w, struct epoll_event *ev)
{
	struct epoll_event two[2];
	int n = epoll_wait(w->epfd, two, 2, 0);
	bool found = false;

	for (int i = 0; i < n; i++) {
		struct epoll_event again = { .events = EPOLLIN | EPOLLOUT | EPOLLONESHOT,
		    .data = two[i].data };

		if (two[i].data.ptr == &w->stop_pipe[0])
			continue;
		if (!found)
			*ev = two[i];
		else if (two[i].data.ptr == &w->listen_fd)
			watch_listener(w);
		else	/* reported again at once; its thread finds what it waits for */
			epoll_ctl(w->epfd, EPOLL_CTL_MOD, ((struct conn *)two[i].data.ptr)->fd, &again);
		found = true;
	}
	return found;
}

/* accept failed for want of descriptors or memory: the connection stays
 * in the backlog, and the listener would report it again at once. */
static bool
accept_starved(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS;
}

/* Count the failure, log at most once a second, and sleep before the
 * listener is watched again. The other threads go on serving the parked
 * connections meanwhile, and their closing frees descriptors. */
static void
accept_pause(struct worker *w, int err)
{
	struct timespec pause = { 0, ACCEPT_PAUSE_MS * 1000000L };
	int64_t now = clock_now_ms();

	w->accept_failed++;
	if (!w->accept_failing || now - w->accept_logged_at >= ACCEPT_LOG_EVERY_MS) {
		log_warn("accept: %s: %lu failure(s) since the last line; new "
		    "connections wait %d ms at a time", strerror(err),
		    w->accept_failed, ACCEPT_PAUSE_MS);
		w->accept_failed = 0;
		w->accept_logged_at = now;
	}
	w->accept_failing = true;
	nanosleep(&pause, NULL);
}

/* An accept here worked after failures. */
static void
accept_recovered(struct worker *w)
{
	log_info("accept works again after %lu failure(s) since the last line",
	    w->accept_failed);
	w->accept_failing = false;
	w->accept_failed = 0;
}

/* Wait for work: a new connection, accepted here, or a connection epoll
 * reported. NULL: the worker stops. The listener is one-shot too, so one
 * thread takes a new connection while the others sleep, and it is
 * watched again as soon as that one is accepted. A connection may have
 * gone to another worker process: EAGAIN, and we wait again. */
static struct conn *
wait_for_work(struct worker *w)
{
	struct epoll_event ev;
	int fd;

	for (;;) {
		int rc = epoll_wait(w->epfd, &ev, 1, -1);

		if (rc < 0 && errno != EINTR) {
			log_warn("epoll_wait: %s", strerror(errno));
			return NULL;
		}
		if (rc <= 0)
			continue;
		if (ev.data.ptr == &w->stop_pipe[0] && !ready_besides_stop(w, &ev))
			return NULL;
		if (ev.data.ptr != &w->listen_fd)
			return ev.data.ptr;
		fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && accept_starved(errno))
			accept_pause(w, errno);
		else if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ECONNABORTED && errno != EINTR)
			log_warn("accept: %s", strerror(errno));
		else if (fd >= 0 && w->accept_failing)
			accept_recovered(w);
		/* stop_serving took the listener out of the set: leave it out */
		if (!atomic_load(&w->stopping) && !watch_listener(w))
			log_error("cannot watch the listener again: %s", strerror(errno));
		if (fd >= 0) {
			peer_setup(fd);
			return conn_new(fd);
		}
	}
}

/* Read what is left of the request's stdin, up to its end record: the
 * feed must hold nothing of this request when the next one is read from
 * it. A body too large to be worth reading: false (fcgi_guard.c lets no
 * such body through). */
static bool
drain_stdin(FCGX_Request *fr)
{
	char sink[4096];
	size_t total = 0;
	int n;

	while ((n = FCGX_GetStr(sink, sizeof sink, fr->in)) > 0)
		if ((total += (size_t)n) > BODY_MAX) {
			fr->keepConnection = 0;
			return false;
		}
	return true;
}

/* One request from its read to its reply. A write's exchange outlives
 * the serving thread's turn: the committer's completer replies. */
struct exchange {
	struct worker  *w;
	struct conn    *conn;
	FCGX_Request    fr;		/* libfcgi's parse: req's strings point into it */
	struct request  req;
	struct response res;
	bool            drained;	/* nothing of the request left unread */
};

/* Send the answer without waiting and free the request; the connection
 * then waits for its next request, or is closed. */
static void
exchange_reply(struct exchange *x)
{
	struct buf reply = { 0 };
	bool close_after = !x->fr.keepConnection || !x->drained || x->conn->eof ||
	    atomic_load(&x->w->stopping);	/* nginx will not reuse it */

	worker_reply_render(&x->res, x->fr.requestId, &reply);
	log_debug("%s %s %d", x->req.method, x->req.path, x->res.status);
	metrics_request(x->req.route, x->res.status, x->req.started_ns);
	request_free(&x->req);
	free(x->req.body);
	response_free(&x->res);
	FCGX_Free(&x->fr, 0);		/* libfcgi's streams and params; not the feed */
	conn_reply(x->w->conns, x->conn, &reply, close_after);
	free(x);
}

/* The completer: x's write is durable (or failed with err). */
static void
exchange_committed(void *arg, enum casq_err err)
{
	struct exchange *x = arg;

	route_finish(&x->res, err);
	exchange_reply(x);
}

/* The request as FastCGI handed it over (params, body, the rest of stdin
 * drained): what is read from a peer before routing. Also the entry point
 * of tests/fuzz/fuzz_fcgi.c. */
bool
worker_read_request(FCGX_Request *fr, struct request *req)
{
	const char *method = FCGX_GetParam("REQUEST_METHOD", fr->envp);
	const char *uri = FCGX_GetParam("REQUEST_URI", fr->envp);

	req->method = method ? method : "GET";
	req->uri = uri ? uri : FCGX_GetParam("DOCUMENT_URI", fr->envp);
	req->content_type = FCGX_GetParam("CONTENT_TYPE", fr->envp);
	req->authorization = FCGX_GetParam("HTTP_AUTHORIZATION", fr->envp);
	req->api_key = FCGX_GetParam("HTTP_X_API_KEY", fr->envp);
	req->idempotency_key = FCGX_GetParam("HTTP_IDEMPOTENCY_KEY", fr->envp);
	req->tenant_header = FCGX_GetParam("HTTP_X_CASQ_TENANT", fr->envp);
	req->now = clock_now_ms();
	req->started_ns = metrics_clock_ns();
	read_body(fr, req);
	return drain_stdin(fr);
}

/* A serving thread's own: the buffer it checks a connection's bytes in,
 * and the feed, the socket pair libfcgi reads a request from once it
 * passed (libfcgi reads only from a descriptor, and never gets a peer's). */
struct serving {
	struct worker *w;
	unsigned char *buf;		/* FCGI_REQUEST_BYTES_MAX */
	int            feed[2];		/* libfcgi reads [0]; [1] is written */
};

static void
feed_close(struct serving *t)
{
	for (int i = 0; i < 2; i++)
		if (t->feed[i] >= 0)
			close(t->feed[i]);
	t->feed[0] = t->feed[1] = -1;
}

/* A whole request fits in the feed, so writing it never waits (the
 * kernel doubles SO_SNDBUF and caps it at net.core.wmem_max, 208 KiB by
 * default: one request, FCGI_REQUEST_BYTES_MAX, goes in one piece); nor
 * does libfcgi's read, of bytes written first. Its end is non-blocking all
 * the same: a request the guard passed but libfcgi finds short fails
 * instead of holding the thread. */
bool
worker_feed_open(int feed[2])
{
	int size = 2 * FCGI_REQUEST_BYTES_MAX;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, feed) != 0) {
		feed[0] = feed[1] = -1;
		return false;
	}
	setsockopt(feed[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	fcntl(feed[0], F_SETFL, O_NONBLOCK);
	return true;
}

static bool
feed_open(struct serving *t)
{
	return worker_feed_open(t->feed);
}

/* Something is left in the feed, or libfcgi closed it: a new one. */
static bool
feed_renew(struct serving *t)
{
	feed_close(t);
	if (feed_open(t))
		return true;
	log_error("cannot open a serving thread's feed: %s", strerror(errno));
	return false;
}

bool
worker_feed_request(const int feed[2], FCGX_Request *fr, const struct conn_request *r)
{
	struct iovec iov[2] = {
		{ (void *)r->bytes, r->gr.feed },
		{ (void *)r->end_stdin, r->cut ? FCGI_HEADER_LEN : 0 },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	FCGX_InitRequest(fr, -1, 0);	/* no listener: libfcgi never accepts */
	fr->ipcFd = feed[0];
	/* FCGX_Accept_r first finishes "the previous request" and would
	 * close ipcFd without this */
	fr->keepConnection = 1;
	return sendmsg(feed[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) ==
	    (ssize_t)(iov[0].iov_len + iov[1].iov_len) && FCGX_Accept_r(fr) >= 0;
}

/* Hand r to libfcgi. False: libfcgi refused what the guard passed (a
 * bug, logged); the feed is renewed. */
static bool
feed_request(struct serving *t, FCGX_Request *fr, const struct conn_request *r)
{
	if (worker_feed_request(t->feed, fr, r))
		return true;
	log_error("libfcgi did not read a request that fcgi_guard passed; "
	    "connection closed");
	if (fr->ipcFd < 0)
		t->feed[0] = -1;	/* libfcgi closed it */
	FCGX_Free(fr, 0);
	feed_renew(t);
	return false;
}

static void
handle_request(struct serving *t, struct exchange *x)
{
	struct app *app = &x->w->app;
	struct request *req = &x->req;
	unsigned gen;

	x->drained = worker_read_request(&x->fr, req);
	if (!x->drained)
		feed_renew(t);
	gen = keys_enter(&x->w->keys_guard);
	route_request(app, req, &x->res);
	keys_leave(&x->w->keys_guard, gen);
	if (x->res.pending != NULL)
		committer_submit(x->w->committer, req->now, route_call_apply,
		    x->res.pending, exchange_committed, x);
	else
		exchange_reply(x);
}

/* c was reported or accepted: send what is left of its reply, read what
 * came, and serve the request if it is whole. */
static void
serve_conn(struct serving *t, struct conn *c)
{
	struct worker *w = t->w;
	struct conn_request r;
	struct exchange *x;

	if (!conn_flush(w->conns, c) || !conn_read(w->conns, c, t->buf, &r))
		return;
	x = xcalloc(1, sizeof *x);
	x->w = w;
	x->conn = c;
	if (!feed_request(t, &x->fr, &r)) {
		conn_close(w->conns, c);
		free(x);
		return;
	}
	handle_request(t, x);
}

/*
 * A serving thread.
 * Owns: its buffer and feed; one connection at a time, from epoll's
 *   event to the connection's next wait (conn.c), and its exchange, to
 *   the reply of a read or to committer_submit for a write (the exchange
 *   then belongs to the committer and the completer); the read
 *   transactions it opens.
 * Frees: the exchanges of reads (exchange_reply), connections it closes.
 * Blocks on: epoll_wait for work; LMDB's reader table. Never on a peer
 *   (conn.c reads and sends without waiting; libfcgi reads the feed,
 *   which holds the whole request), never on a commit.
 * Exits: when the stop pipe is readable and no connection is ready
 *   besides it (wait_for_work NULL); the worker joins it before it stops
 *   the committer.
 */
static void *
serve_thread(void *arg)
{
	struct serving t = { .w = arg, .buf = xmalloc(FCGI_REQUEST_BYTES_MAX) };
	struct conn *c;

	if (!feed_open(&t))
		log_error("a serving thread cannot open its feed: %s", strerror(errno));
	else
		while ((c = wait_for_work(t.w)) != NULL)
			serve_conn(&t, c);
	feed_close(&t);
	free(t.buf);
	return NULL;
}

/* Relaxed mode skips the meta-page flush on commit; flush it once per
 * tick so at most about a second of commits is at risk. */
static void
tick(struct worker *w)
{
	int64_t now = clock_now_ms();

	conns_reap(w->conns);
	if (store_sweep_due(w->app.store, now)) {
		struct sweep_op op = { .now = now, .limit = IDLE_SWEEP_BATCH };

		/* through the committer, which runs every write of the worker */
		committer_run(w->committer, now, store_sweep_apply, &op);
	}
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
	sa.sa_handler = on_reload;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, waitmask);
	/* The master forks with its signals blocked; the main thread's
	 * wait opens them all, so SIGTERM lands only there. */
	sigemptyset(waitmask);
}

struct store_config
config_store(const struct config *cfg)
{
	return (struct store_config){
		.dir = cfg->data_dir,
		.map_size = cfg->map_size,
		.relaxed = cfg->relaxed,
		.history_ttl_ms = cfg->history_ttl_ms,
		/* a read transaction per serving thread at most; one more
		 * worker for a restart's overlap, and room for mdb_stat */
		.max_readers = (unsigned)((cfg->workers + 1) * (cfg->threads + 2) + 126),
	};
}

/* What the serving threads wait on: the stop pipe (level-triggered: once
 * written, every thread sees it) and the listener. */
static bool
watch_start(struct worker *w)
{
	struct epoll_event stop = { .events = EPOLLIN };

	if (pipe(w->stop_pipe) != 0 ||
	    (w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return false;
	stop.data.ptr = &w->stop_pipe[0];
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stop_pipe[0], &stop) == 0 &&
	    watch_listener(w);
}

/* quiet: the master already logged that this slot keeps failing; say
 * why only at debug level. */
static int
worker_open(struct worker *w, bool quiet)
{
	const struct config *cfg = w->cfg;
	struct store_config sc = config_store(cfg);
	struct keyring *keys = NULL;
	char why[256];
	int rc;

#ifdef M_ARENA_MAX
	/* A request is allocated by a serving thread and freed by the
	 * completer: with glibc's default of one arena per thread, each
	 * serving thread keeps about a megabyte of freed requests. */
	mallopt(M_ARENA_MAX, WORKER_ARENAS);
#endif
	w->app.idem_ttl_ms = cfg->idem_ttl_ms;
	w->app.rl = cfg->rl;
	w->app.defer_writes = true;	/* the completer replies to writes */
	w->app.clock = clock_now_ms;	/* ops run at their commit's time */
	/* Never inherit an environment across fork: open our own. */
	if (store_open(&sc, &w->app.store, why, sizeof why) != 0 ||
	    (keys = keyring_load(cfg->keys_file, why, sizeof why)) == NULL) {
		log_msg(quiet ? LOG_DEBUG : LOG_ERROR, "worker start failed: %s", why);
		return -1;
	}
	/* not inside the test: clang types an assignment to an _Atomic
	 * pointer as _Atomic, which cannot be compared with NULL */
	atomic_store(&w->app.keys, keys);
	w->app.store->stop_on_io_failure = true;	/* see store_io_failed */
	if ((rc = store_resync_meta(w->app.store)) != 0) {
		log_msg(quiet ? LOG_DEBUG : LOG_ERROR,
		    "worker start failed: cannot rewrite the meta pages: %s", mdb_strerror(rc));
		return -1;
	}
	if ((w->reply = worker_reply_start()) == NULL ||
	    (w->committer = committer_start(w->app.store, COMMIT_BATCH_MAX,
	    worker_reply_committed, w->reply)) == NULL ||
	    FCGX_Init() != 0 || !watch_start(w)) {
		log_msg(quiet ? LOG_DEBUG : LOG_ERROR, "worker start failed: %s",
		    strerror(errno));
		return -1;
	}
	w->conns = conns_new(w->epfd, cfg->peer_timeout_s, cfg->idle_timeout_s);
	return 0;
}

/* Take no new connection; serve what nginx sends on the kept ones for a
 * moment, closing each after its reply, and finish the requests and the
 * answers part-way through; then stop the threads, which first serve the
 * connections that are ready. */
static void
stop_serving(struct worker *w)
{
	struct timespec grace = { 0, STOP_GRACE_MS * 1000000L };

	atomic_store(&w->stopping, true);
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listen_fd, NULL);
	nanosleep(&grace, NULL);
	/* A request part-way in, or an answer part-way out, is finished
	 * first (no thread waits on it: they all serve on meanwhile); the
	 * reaper's --peer-timeout bounds the wait, as the master's
	 * shutdown timeout (10 s, then SIGKILL) does the whole stop. */
	while (conns_in_flight(w->conns)) {
		nanosleep(&grace, NULL);
		conns_reap(w->conns);
	}
	(void)!write(w->stop_pipe[1], "x", 1);
}

/* Tell the master we serve: one byte on the ready pipe, which only this
 * process holds open (pool.c says why a pipe). From then on the master
 * replaces this worker at once whenever it dies. */
static void
say_ready(int ready_fd)
{
	if (ready_fd < 0)
		return;
	if (write(ready_fd, "r", 1) != 1)
		log_warn("ready pipe: %s", strerror(errno));
	close(ready_fd);
}

/*
 * The worker's main thread.
 * Owns: the store, the keyring, the committer, the completer and the
 *   serving threads: it starts them all and stops them in order
 *   (serving threads, then the committer, then the completer, then the
 *   store), so that every write handed over is committed and answered.
 * Frees: all of them, last.
 * Blocks on: pselect for the tick (WORKER_TICK_MS) with SIGTERM open;
 *   the tick's sweep waits for its commit (committer_run).
 * Exits: on SIGTERM/SIGINT, when the master is gone, when another
 *   process grew the map, when a write or flush of the data file failed
 *   (store_io_failed: status 1, the master starts a fresh worker), or
 *   when no serving thread started.
 */
int
worker_main(const struct config *cfg, int listen_fd, int ready_fd, bool quiet)
{
	struct worker w = { .cfg = cfg, .listen_fd = listen_fd };
	struct timespec ts = { WORKER_TICK_MS / 1000, 0 };
	pthread_t *threads = xcalloc((size_t)cfg->threads, sizeof *threads);
	pthread_attr_t attr;
	sigset_t waitmask;
	pid_t master = getppid();
	int started = 0, rc = 0;

	worker_signals(&waitmask);
	if (worker_open(&w, quiet) != 0) {
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
	if (started > 0)
		say_ready(ready_fd);
	while (!worker_stop && getppid() == master && started > 0 &&
	    !atomic_load(&w.app.store->map_resized) &&
	    !atomic_load(&w.app.store->io_failed)) {
		pselect(0, NULL, NULL, NULL, &ts, &waitmask);
		if (worker_reload) {
			worker_reload = 0;
			keys_reload(&w);
		}
		if (!worker_stop)
			tick(&w);
	}
	stop_serving(&w);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	committer_stop(w.committer);	/* commits the writes in flight */
	w.committer = NULL;
	worker_reply_stop(w.reply);	/* ... and answers them */
	w.reply = NULL;
	conns_free(w.conns);		/* closes the connections left */
	w.conns = NULL;
	if (cfg->relaxed)
		store_sync(w.app.store);	/* a graceful stop loses nothing */
	rc = started > 0 && !atomic_load(&w.app.store->io_failed) ? 0 : 1;
out:
	committer_stop(w.committer);	/* a start that failed half-way */
	worker_reply_stop(w.reply);
	conns_free(w.conns);
	store_close(w.app.store);
	keyring_free(w.app.keys);
	free(threads);
	return rc;
}
