/*
 * daemon.h - the process layer: configuration, the FastCGI listener, the
 * master that supervises a pool of workers (php-fpm style), and the
 * worker loop that feeds FastCGI requests to the HTTP layer.
 */
#ifndef CASQ_DAEMON_H
#define CASQ_DAEMON_H

#include <sys/types.h>

#include "common.h"
#include "store.h"

struct config {
	const char *listen;	/* NULL: inherited socket on fd 0 or LISTEN_FDS */
	mode_t      socket_mode;
	const char *data_dir;
	const char *keys_file;
	const char *pid_file;
	int         workers;
	int         threads;	/* serving threads per worker */
	size_t      map_size;
	bool        relaxed;
	int         shutdown_timeout_s;
	int64_t     idem_ttl_ms;	/* responses kept for request_id retries */
	int64_t     history_ttl_ms;	/* item history kept (--history-days) */
	int         peer_timeout_s;	/* a request arrives whole, a reply is taken */
	int         idle_timeout_s;	/* a kept connection waits for its next request */
	struct ratelimit *rl;	/* per-key limits, shared by master and workers */
	struct metrics *metrics;	/* counters, shared likewise (metrics.c) */
};

struct listener {
	int   fd;
	char *unix_path;	/* socket file we created and remove at exit */
};

/* listener.c */
int  listener_open(const struct config *cfg, struct listener *l, char *why,
	size_t whylen);
void listener_close(struct listener *l);

/* fcgi_guard.c: the records of one request, checked before libfcgi reads
 * them. The limits are nginx's with room to spare: */
#define FCGI_HEADER_LEN		8
/* Params of one request: nginx passes every request header as a param,
 * and its default large_client_header_buffers (4 x 8k) hold 32 KiB of
 * headers; HTTP_ names, length bytes and our ~25 fastcgi_params add a few
 * KiB. */
#define FCGI_PARAMS_MAX		(48 * 1024)
/* One param, name and value: nginx takes a header line or a request line
 * of 8 KiB at most (one large header buffer); twice that. */
#define FCGI_PARAM_MAX		(16 * 1024)
/* A request's records, headers and padding included: the params, the
 * body (BODY_MAX) and 16 KiB of record headers, which nginx writes one per
 * 32 KiB or so. A peer that splits a body into tiny records is refused. */
#define FCGI_REQUEST_BYTES_MAX	(128 * 1024)

/* Where the check of a connection's bytes is (zeroed: a new request). */
struct fcgi_guard {
	size_t   off;		/* the first record not yet checked */
	size_t   params, body;	/* content bytes so far */
	struct {		/* the params pairs checked so far end here: */
		size_t pos;	/* the next byte of the params records */
		size_t left, pad; /* of the record pos is in */
		size_t skip;	/* of the last pair's name and value */
	} pairs;
	unsigned id;		/* the request id */
	int      phase;
};
/* A request that passed: libfcgi gets bytes [0, feed) and nothing more;
 * it took [0, used) of the connection's bytes (its last padding too). */
struct guard_request {
	size_t feed, used;
};
enum guard_verdict { GUARD_MORE, GUARD_REQUEST, GUARD_REFUSE };
/* Check buf[g->off, len) (buf[0, g->off) passed before): GUARD_REQUEST
 * fills *req, GUARD_REFUSE sets *why (a phrase for the log), GUARD_MORE
 * waits for more bytes. */
enum guard_verdict fcgi_guard_check(struct fcgi_guard *g,
	const unsigned char *buf, size_t len, struct guard_request *req,
	const char **why);
/* The peer closed its side in the middle of a request: if its params came
 * whole, *req is the records so far and end_stdin the empty FCGI_STDIN
 * record that ends them (the body is then shorter than its Content-Length:
 * 400 Incomplete Body); false: nothing to answer. */
bool fcgi_guard_cut(const struct fcgi_guard *g, struct guard_request *req,
	unsigned char end_stdin[FCGI_HEADER_LEN]);

/* conn.c: a worker's connections, read and written without blocking. */
/* Connections with part of a request read, per worker. nginx writes a
 * request whole, so one of its connections is in this state for
 * microseconds; 64 is four times the serving threads. Over the cap the
 * oldest (the slowest peer) is closed. */
#define CONN_READING_MAX	64
/* Kept-alive connections waiting for a request, per worker: nginx keeps
 * 32 per nginx worker (keepalive 32 in our configs), so 512 covers 16
 * nginx workers all kept on one casqd worker. Over the cap the one idle
 * longest is closed: nginx's pooled connections are used and re-parked
 * all the time, an idle hostile one is not. */
#define CONN_IDLE_MAX		512
struct conn {
	int               fd;
	struct conn      *prev, *next;
	struct conn_list *list;		/* idle, reading or sending; NULL: busy */
	int64_t           since;	/* entered its list (conn_clock_ms) */
	unsigned char    *in;		/* read, not yet a request */
	size_t            in_len;
	struct fcgi_guard guard;	/* how far in is checked */
	char             *out;		/* the reply, out_sent of it sent */
	size_t            out_len, out_sent;
	bool              eof;		/* the peer closed its side */
	bool              close_after;	/* once the reply is sent */
};
/* What conn_read hands over: libfcgi gets bytes[0, gr.feed), then, when
 * cut, end_stdin. */
struct conn_request {
	const unsigned char *bytes;
	struct guard_request gr;
	bool                 cut;
	unsigned char        end_stdin[FCGI_HEADER_LEN];
};
struct conns;
int64_t conn_clock_ms(void);
struct conns *conns_new(int epfd, int peer_timeout_s, int idle_timeout_s);
/* Close every connection left; \note only once no thread serves. */
void conns_free(struct conns *cs);
struct conn *conn_new(int fd);
/* Read what c's peer sent (into buf, FCGI_REQUEST_BYTES_MAX bytes) and
 * check it: true when a whole request is in *r (c is then busy: in no
 * list, watched by nothing, until conn_reply). False: c waits in epoll
 * for more, or was closed (refused, failed, or the peer left). */
bool conn_read(struct conns *cs, struct conn *c, unsigned char *buf,
	struct conn_request *r);
/* Send reply (taken over) without waiting; what the peer does not take at
 * once is sent by serving threads on EPOLLOUT. Then c waits for its next
 * request, or is closed if close_after. From any thread. */
void conn_reply(struct conns *cs, struct conn *c, struct buf *reply,
	bool close_after);
/* On an event: send what is left of c's reply. True: nothing was left,
 * read on; false: c waits again or was closed. */
bool conn_flush(struct conns *cs, struct conn *c);
/* c waits for its next request (idle), or reading if bytes of it came. */
void conn_wait_request(struct conns *cs, struct conn *c);
void conn_close(struct conns *cs, struct conn *c);
/* Is a connection part-way through a request or an answer? */
bool conns_in_flight(struct conns *cs);
/* The tick: close what is past its deadline; log what was closed. */
void conns_reap(struct conns *cs);

/* worker.c: serve until SIGTERM; returns the process exit status. Once
 * its threads serve, the worker writes one byte to ready_fd (-1: none)
 * and closes it; quiet: log a failure to start at debug level only. */
int  worker_main(const struct config *cfg, int listen_fd, int ready_fd,
	bool quiet);
/* Read a request FCGX_Accept_r took (params and body into req, the
 * rest of its stdin drained): false when the connection must close. */
struct FCGX_Request;
struct request;
struct conn_request;
bool worker_read_request(struct FCGX_Request *fr, struct request *req);
/* The feed of a serving thread: a socket pair libfcgi reads requests
 * from, [0] its end; false when it cannot be opened. */
bool worker_feed_open(int feed[2]);
/* Write the request r passed to feed[1] and have FCGX_Accept_r read it
 * (params) from feed[0]; false when libfcgi does not (then ipcFd < 0 if
 * libfcgi closed feed[0]). Also the entry of tests/fuzz/fuzz_fcgi.c. */
bool worker_feed_request(const int feed[2], struct FCGX_Request *fr,
	const struct conn_request *r);
/* How every process of this config opens the environment. */
struct store_config config_store(const struct config *cfg);

/* worker_reply.c: a worker's answers, and its completer thread. */
struct FCGX_Request;
struct response;
struct worker_reply;
/* res as the FastCGI records of request id's answer (FCGI_STDOUT: status
 * line, headers, body; FCGI_END_REQUEST), appended to out. */
void worker_reply_render(const struct response *res, int id, struct buf *out);
/* Start the completer; NULL when its thread cannot start. */
struct worker_reply *worker_reply_start(void);
/* The committer's hand-off (a committer_hand_fn, arg the worker_reply):
 * the completer runs the batch's done callbacks. */
void worker_reply_committed(void *arg, struct commit_batch *batch);
/* Answer every batch handed over, then stop. \note Stop the committer
 * first, or batches it still hands over are never answered. */
void worker_reply_stop(struct worker_reply *wr);

/* pool.c: run the master until SIGTERM/SIGINT; returns the exit status. */
int  pool_run(const struct config *cfg, struct listener *l);

#endif
