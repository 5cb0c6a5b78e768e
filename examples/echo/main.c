/* micro-echo — a small, fast HTTP app for micro-sidecar's demo, integration
 * tests and benchmark. Flags, the daemon, signals; the routes are in app.c and
 * the /slow timer in delay.c.
 *
 * Threading: libmicrohttpd with its internal epoll loop and a pool of one
 * worker per CPU (2 on the 2-core benchmark box). Each worker runs its own
 * epoll set and accepts on the shared listen socket, so both cores serve
 * requests without a thread per connection; 1,000+ idle keep-alive
 * connections cost file descriptors and MHD's per-connection memory pool,
 * not threads. Slow requests are suspended, not slept on (delay.c). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "app.h"
#include "delay.h"

#define MAX_THREADS 16
#define LISTEN_BACKLOG 4096
#define FDS_RESERVED 32          /* for stdio, epoll sets, eventfds, the listen socket */
#define MAX_CONNECTIONS 100000u
#define DRAIN_WAIT_MS 2000       /* how long shutdown waits for resumed /slow requests */

static const char usage[] =
  "usage: micro-echo [--port N] [--bind ADDR] [--name NAME] [--threads N]\n"
  "\n"
  "A small HTTP app for micro-sidecar demos, tests and benchmarks.\n"
  "\n"
  "  --port N      listen port (default 8080; 0 picks a free one)\n"
  "  --bind ADDR   listen address, IPv4 or IPv6 (default 127.0.0.1)\n"
  "  --name NAME   name put into answers (default echo)\n"
  "  --threads N   MHD worker threads (default: online CPUs, at most 16)\n"
  "  --help        this text\n"
  "\n"
  "Routes: POST /echo[/...], POST /inspect, POST /status/<code>, POST /text,\n"
  "POST /empty, POST /slow/<ms>, GET /stats, GET /health, POST /health/down,\n"
  "POST /health/up. See examples/echo/README.md.\n";

struct opts {
  unsigned port;
  const char *bind;
  const char *name;
  unsigned threads;
};

static int bad_flag(const char *flag, const char *value, const char *why)
{
  fprintf(stderr, "micro-echo: %s: bad value \"%s\": %s\n", flag, value, why);
  return 2;
}

static bool parse_unsigned(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi)
    return false;
  *out = (unsigned)v;
  return true;
}

/* 0 to run, 1 for --help, 2 for a usage error (already reported). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
  static const struct option longopts[] = {
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"name", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
  };
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  o->port = 8080;
  o->bind = "127.0.0.1";
  o->name = "echo";
  o->threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (unsigned)cpus;

  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (!parse_unsigned(optarg, 0, 65535, &o->port))
        return bad_flag("--port", optarg, "want 0..65535");
      break;
    case 'b':
      o->bind = optarg;
      break;
    case 'n':
      if (optarg[0] == '\0')
        return bad_flag("--name", optarg, "must not be empty");
      o->name = optarg;
      break;
    case 't':
      if (!parse_unsigned(optarg, 1, MAX_THREADS, &o->threads))
        return bad_flag("--threads", optarg, "want 1..16");
      break;
    case 'h':
      fputs(usage, stdout);
      return 1;
    default:
      fputs(usage, stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "micro-echo: unexpected argument \"%s\"\n", argv[optind]);
    return 2;
  }
  return 0;
}

/* Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit. */
static rlim_t raise_nofile(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

static void sleep_ms(unsigned ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(int argc, char **argv)
{
  struct opts o;
  int rc = parse_opts(argc, argv, &o);
  if (rc == 1)
    return 0;
  if (rc != 0)
    return rc;

  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  bool v6 = false;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, o.bind, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)o.port);
  } else if (inet_pton(AF_INET6, o.bind, &sin6->sin6_addr) == 1) {
    v6 = true;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)o.port);
  } else {
    return bad_flag("--bind", o.bind, "not an IPv4 or IPv6 address");
  }

  rlim_t nofile = raise_nofile();
  unsigned limit = nofile > FDS_RESERVED + 64 ? (unsigned)(nofile - FDS_RESERVED) : 64;
  if (limit > MAX_CONNECTIONS)
    limit = MAX_CONNECTIONS;
  if (limit < 1100)
    fprintf(stderr, "micro-echo: warning: RLIMIT_NOFILE is %llu, so at most %u connections\n",
            (unsigned long long)nofile, limit);

  /* SIGTERM/SIGINT are taken with sigwait() below; block them before any
   * thread starts so that every thread inherits the mask. MHD writes with
   * MSG_NOSIGNAL, but a stray SIGPIPE must not kill us either. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct delay *delay = delay_new();
  if (delay == NULL) {
    fprintf(stderr, "micro-echo: cannot start the delay thread: %s\n", strerror(errno));
    return 1;
  }
  struct echo_app *app = echo_app_new(o.name, delay);
  if (app == NULL) {
    fprintf(stderr, "micro-echo: out of memory\n");
    delay_stop(delay);
    delay_free(delay);
    return 1;
  }

  /* TURBO: read, write and accept optimistically before asking epoll; about
   * 20% more /echo throughput on a 2-core box. */
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (v6)
    flags |= MHD_USE_IPv6;
  struct MHD_Daemon *d = MHD_start_daemon(
    flags, (uint16_t)o.port, NULL, NULL, echo_app_request, app,
    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o.threads > 1 ? o.threads : 0),
    MHD_OPTION_CONNECTION_LIMIT, limit,
    MHD_OPTION_CONNECTION_TIMEOUT, 0u,
    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
    MHD_OPTION_NOTIFY_COMPLETED, echo_app_completed, app,
    MHD_OPTION_NOTIFY_CONNECTION, echo_app_connection, app,
    MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "micro-echo: cannot listen on %s%s%s:%u\n",
            v6 ? "[" : "", o.bind, v6 ? "]" : "", o.port);
    echo_app_free(app);
    delay_stop(delay);
    delay_free(delay);
    return 1;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  unsigned port = di && di->port ? di->port : o.port;
  fprintf(stderr, "micro-echo listening on %s%s%s:%u\n", v6 ? "[" : "", o.bind,
          v6 ? "]" : "", port);

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }

  /* Release parked /slow requests (they get 503) and let MHD hand each back to
   * us once before stopping: stopping with a suspended connection is an MHD
   * API violation. */
  delay_stop(delay);
  for (unsigned waited = 0; echo_app_parked(app) > 0 && waited < DRAIN_WAIT_MS; waited += 5)
    sleep_ms(5);
  MHD_stop_daemon(d);
  echo_app_free(app);
  delay_free(delay);
  return 0;
}
