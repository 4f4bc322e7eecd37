/*
 * main.c - casqd's command line and start-up: every check that can fail
 * (flags, data directory, keys file, socket) runs here, before any worker
 * exists, and fails with one line on stderr and exit status 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"
#include "store.h"

#define EXIT_USAGE	2
#define WORKERS_MAX	256
#define THREADS_MAX	256
#define MAP_SIZE_MIN	(256UL << 10)	/* below this LMDB cannot hold the schema */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: casqd [options]\n"
	    "       casqd --mint-key NAME [--tenant T] [--scope read|write|admin] [--rate N]\n"
	    "\n"
	    "  -l, --listen ADDR       unix:/path/casqd.sock or 127.0.0.1:9000\n"
	    "                          (default: the listening socket on fd 0)\n"
	    "  -m, --socket-mode MODE  permissions of a unix socket (default 0660)\n"
	    "  -d, --data DIR          LMDB environment directory (default /var/lib/casq)\n"
	    "  -k, --keys FILE         API keys file, name:sha256 [attr=value ...] per line\n"
	    "                          (required)\n"
	    "  -w, --workers N         worker processes (default 1)\n"
	    "  -t, --threads N         serving threads per worker (default 16)\n"
	    "  -s, --map-size SIZE     database size limit, e.g. 512M, 4G (default 1G)\n"
	    "  -D, --durability MODE   full (default) or relaxed; see docs/storage.md\n"
	    "  -L, --log-level LEVEL   debug, info, warn or error (default info)\n"
	    "  -p, --pid-file FILE     write the master's pid here\n"
	    "  -I, --idempotency-ttl S keep answers for request_id retries S seconds\n"
	    "                          (default 86400)\n"
	    "  -H, --history-days N    keep item history N days (default 30)\n"
	    "      --peer-timeout S    a FastCGI request must arrive whole, and its\n"
	    "                          reply be taken, within S seconds (default 10)\n"
	    "      --idle-timeout S    close a kept-alive FastCGI connection idle S\n"
	    "                          seconds (default 75; above nginx's 60)\n"
	    "      --mint-key NAME     print a new API key and its keys-file line\n"
	    "      --tenant T          with --mint-key: the key's tenant (default \"default\")\n"
	    "      --scope SCOPE       with --mint-key: read, write (the default) or admin\n"
	    "      --rate N            with --mint-key: at most N requests a second\n"
	    "  -h, --help              this help\n"
	    "  -V, --version           print the version\n");
}

static _Noreturn void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("casqd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

static size_t
parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	unsigned shift = 0;

	if (*s < '0' || *s > '9')	/* strtoull takes " 1" and "-1" */
		die("bad size: %s", s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		die("bad size: %s", s);
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end != '\0')
		die("bad size: %s", s);
	if (v > (SIZE_MAX >> shift))
		die("map size %s is too large", s);
	v <<= shift;
	if (v < MAP_SIZE_MIN)
		die("map size %s is below the minimum of 256K", s);
	return (size_t)v;
}

static int
parse_int(const char *s, int min, int max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		die("bad %s: %s (%d-%d)", what, s, min, max);
	return (int)v;
}

/* What --mint-key prints the keys-file line with. */
struct mint {
	const char *name;	/* NULL: not minting */
	const char *tenant;	/* NULL: the default tenant */
	const char *scope;	/* NULL: the default, write */
	int         rate;	/* 0: none */
};

static void
mint_key(const struct mint *m)
{
	char key[80], line[256];
	enum key_scope scope;

	if (!name_valid(m->name, strlen(m->name), KEY_NAME_MAX))
		die("key name must be 1-64 of A-Z a-z 0-9 . _ -");
	if (m->tenant != NULL && !name_valid(m->tenant, strlen(m->tenant), TENANT_NAME_MAX))
		die("tenant must be 1-64 of A-Z a-z 0-9 . _ -");
	if (m->scope != NULL && !key_scope_parse(m->scope, &scope))
		die("bad scope: %s (read, write or admin)", m->scope);
	keyring_mint(m->name, key, line);
	printf("%s\n%s", key, line);
	if (m->tenant != NULL)
		printf(" tenant=%s", m->tenant);
	if (m->scope != NULL)
		printf(" scope=%s", key_scope_name(scope));
	if (m->rate > 0)
		printf(" rate=%d", m->rate);
	printf("\n");
	exit(0);
}

static void
parse_args(int argc, char **argv, struct config *cfg)
{
	enum { OPT_MINT = 256, OPT_TENANT, OPT_SCOPE, OPT_RATE, OPT_PEER_TIMEOUT,
	    OPT_IDLE_TIMEOUT };
	struct mint mint = { 0 };
	static const struct option opts[] = {
		{ "listen",      required_argument, NULL, 'l' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "data",        required_argument, NULL, 'd' },
		{ "keys",        required_argument, NULL, 'k' },
		{ "workers",     required_argument, NULL, 'w' },
		{ "threads",     required_argument, NULL, 't' },
		{ "map-size",    required_argument, NULL, 's' },
		{ "durability",  required_argument, NULL, 'D' },
		{ "log-level",   required_argument, NULL, 'L' },
		{ "pid-file",    required_argument, NULL, 'p' },
		{ "idempotency-ttl", required_argument, NULL, 'I' },
		{ "history-days", required_argument, NULL, 'H' },
		{ "peer-timeout", required_argument, NULL, OPT_PEER_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "mint-key",    required_argument, NULL, OPT_MINT },
		{ "tenant",      required_argument, NULL, OPT_TENANT },
		{ "scope",       required_argument, NULL, OPT_SCOPE },
		{ "rate",        required_argument, NULL, OPT_RATE },
		{ "help",        no_argument,       NULL, 'h' },
		{ "version",     no_argument,       NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	char *end;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:m:d:k:w:t:s:D:L:p:I:H:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l': cfg->listen = optarg; break;
		case 'm':
			cfg->socket_mode = (mode_t)strtoul(optarg, &end, 8);
			if (*optarg == '\0' || *end || cfg->socket_mode > 0777)
				die("bad socket mode: %s (octal, e.g. 0660)", optarg);
			break;
		case 'd': cfg->data_dir = optarg; break;
		case 'k': cfg->keys_file = optarg; break;
		case 'w': cfg->workers = parse_int(optarg, 1, WORKERS_MAX, "worker count"); break;
		case 't': cfg->threads = parse_int(optarg, 1, THREADS_MAX, "thread count"); break;
		case 's': cfg->map_size = parse_size(optarg); break;
		case 'D':
			if (strcmp(optarg, "full") != 0 && strcmp(optarg, "relaxed") != 0)
				die("bad durability: %s (full or relaxed)", optarg);
			cfg->relaxed = strcmp(optarg, "relaxed") == 0;
			break;
		case 'L':
			if (!log_parse_level(optarg, &log_threshold))
				die("bad log level: %s (debug, info, warn, error)", optarg);
			break;
		case 'p': cfg->pid_file = optarg; break;
		case 'I':
			cfg->idem_ttl_ms = (int64_t)parse_int(optarg, 1, 30 * 86400,
			    "idempotency ttl (seconds)") * 1000;
			break;
		case 'H':
			cfg->history_ttl_ms = (int64_t)parse_int(optarg, 1, 3650,
			    "history days") * 86400 * 1000;
			break;
		case OPT_PEER_TIMEOUT:
			cfg->peer_timeout_s = parse_int(optarg, 1, 3600, "peer timeout (seconds)");
			break;
		case OPT_IDLE_TIMEOUT:
			cfg->idle_timeout_s = parse_int(optarg, 1, 86400, "idle timeout (seconds)");
			break;
		case OPT_MINT:  mint.name = optarg; break;
		case OPT_TENANT: mint.tenant = optarg; break;
		case OPT_SCOPE: mint.scope = optarg; break;
		case OPT_RATE:  mint.rate = parse_int(optarg, 1, 1000000, "rate (requests per second)"); break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("casqd %s\n", PACKAGE_VERSION); exit(0);
		case ':': die("option %s needs a value (see --help)", argv[optind - 1]);
		default:  die("unknown option %s (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die("unexpected argument: %s (see --help)", argv[optind]);
	if (mint.name != NULL)
		mint_key(&mint);
	if (mint.tenant != NULL || mint.scope != NULL || mint.rate > 0)
		die("--tenant, --scope and --rate go with --mint-key NAME");
	if (cfg->keys_file == NULL)
		die("--keys FILE is required (mint a key with casqd --mint-key NAME)");
}

/* A SIGHUP (systemctl reload, an operator's kill -HUP) may come while
 * casqd is still starting: opening or upgrading the database can take
 * minutes. Its default action would end casqd, and systemd counts an end by SIGHUP as
 * clean, so nothing would start it again. Held from the first line, it
 * stays pending until pool_run() has its handler and then reloads the
 * keys like any other. SIGTERM and SIGINT keep their default: stopping
 * is what they ask for. */
static void
hold_reload_signal(void)
{
	sigset_t hup;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigprocmask(SIG_BLOCK, &hup, NULL);
}

/* One casqd per data directory: two masters would each believe they own
 * the socket and the workers. The lock lives as long as the master (and
 * is inherited, harmlessly, by the workers). */
static void
lock_data_dir(const char *dir)
{
	char path[4096], pid[32] = "";
	int fd;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		die("cannot create data directory %s: %s", dir, strerror(errno));
	snprintf(path, sizeof path, "%s/casqd.lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		die("cannot use data directory %s: %s", dir, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		die("another casqd (pid %s) is using %s", *pid ? pid : "?", dir);
	}
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, strlen(pid), 0) < 0)
		die("cannot write %s: %s", path, strerror(errno));
}

static void
write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		die("cannot write pid file %s: %s", path, strerror(errno));
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

int
main(int argc, char **argv)
{
	struct config cfg = {
		.socket_mode = 0660,
		.data_dir = "/var/lib/casq",
		/* One process: one committer sees every concurrent write,
		 * so batches are as large as they get (two processes take
		 * turns on LMDB's writer lock with half-size batches,
		 * docs/performance.md). Writes do not hold a serving thread
		 * while they commit, so a few threads keep two cores busy;
		 * 16 leave room for reads. More workers isolate crashes. */
		.workers = 1,
		.threads = 16,
		.map_size = 1UL << 30,
		.shutdown_timeout_s = 10,
		/* Marketo admins retry within minutes or hours; a day covers a
		 * retry campaign that runs the next morning. */
		.idem_ttl_ms = 86400LL * 1000,
		.history_ttl_ms = HISTORY_TTL_DEFAULT_MS,
		/* nginx sends a request whole and reads its answer at once;
		 * a peer that needs longer is stuck or hostile. Marketo waits
		 * 30 s for the whole call. */
		.peer_timeout_s = 10,
		/* Longer than nginx's upstream keepalive_timeout (60 s, which
		 * our configs keep): nginx drops a pooled connection first, and
		 * never picks one casqd has just closed. */
		.idle_timeout_s = 75,
	};
	struct store_config sc;
	struct listener l;
	struct store *st;
	struct keyring *kr;
	char why[512];
	int rc;

	hold_reload_signal();
	parse_args(argc, argv, &cfg);
	lock_data_dir(cfg.data_dir);
	/* Create and check the database here, then close it: workers open
	 * their own environment after the fork. */
	sc = config_store(&cfg);
	if (store_open(&sc, &st, why, sizeof why) != 0)
		die("%s", why);
	store_close(st);
	if ((kr = keyring_load(cfg.keys_file, why, sizeof why)) == NULL)
		die("%s", why);
	/* Before the fork: every worker shares the master's table. */
	if ((cfg.rl = ratelimit_create()) == NULL)
		die("cannot map the rate limit table: %s", strerror(errno));
	if (!ratelimit_register(cfg.rl, kr))
		die("%s: too many keys with a rate limit", cfg.keys_file);
	keyring_free(kr);
	if ((cfg.metrics = metrics_create(cfg.workers)) == NULL)
		die("cannot map the metrics table: %s", strerror(errno));
	if (listener_open(&cfg, &l, why, sizeof why) != 0)
		die("%s", why);
	if (cfg.pid_file)
		write_pid_file(cfg.pid_file);
	rc = pool_run(&cfg, &l);
	listener_close(&l);
	if (cfg.pid_file)
		unlink(cfg.pid_file);
	return rc;
}
