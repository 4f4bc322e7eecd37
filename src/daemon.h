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
	struct ratelimit *rl;	/* per-key limits, shared by master and workers */
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
/* How every process of this config opens the environment. */
struct store_config config_store(const struct config *cfg);

/* pool.c: run the master until SIGTERM/SIGINT; returns the exit status. */
int  pool_run(const struct config *cfg, struct listener *l);

#endif
