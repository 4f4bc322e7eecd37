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

/* worker.c: serve until SIGTERM; returns the process exit status. Once
 * its threads serve, the worker writes one byte to ready_fd (-1: none)
 * and closes it; quiet: log a failure to start at debug level only. */
int  worker_main(const struct config *cfg, int listen_fd, int ready_fd,
	bool quiet);
/* Read a request FCGX_Accept_r took (params and body into req, the
 * rest of its stdin drained): false when the connection must close. */
struct FCGX_Request;
struct request;
bool worker_read_request(struct FCGX_Request *fr, struct request *req);
/* How every process of this config opens the environment. */
struct store_config config_store(const struct config *cfg);

/* worker_reply.c: a worker's answers, and its completer thread. */
struct FCGX_Request;
struct response;
struct worker_reply;
/* Write res (status line, headers, body) onto the request's stream. */
void worker_reply_send(struct FCGX_Request *fr, const struct response *res);
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
