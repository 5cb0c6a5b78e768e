/* app.c — micro-echo's routes.
 *
 * POST /echo is the benchmark's hot path, so it parses nothing and allocates
 * nothing per request: the body is copied into a buffer that belongs to the
 * TCP connection (kept across keep-alive requests) and handed to MHD as a
 * persistent buffer. That is safe because MHD finishes sending a response
 * before it calls us for the connection's next request. Everything else may
 * use jansson: those routes are for tests, not for throughput.
 *
 * Threads: each connection is served by one MHD worker thread, which owns its
 * struct echo_conn; counters shared across workers are atomics. */
#include "app.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define URL_SLOTS 64
#define URL_PATH_MAX 128
#define KEEP_BUF_MAX ((size_t)64 << 10) /* a bigger body buffer is freed after its request */
#define SLOW_MAX_MS 600000u
#define HTTP_TOO_LARGE 413 /* MHD renamed its constant in 0.9.74; the number is stable */

enum route {
  R_NOT_FOUND = 0,
  R_ECHO,
  R_INSPECT,
  R_STATUS,
  R_BAD_STATUS,
  R_TEXT,
  R_EMPTY,
  R_SLOW,
  R_BAD_DELAY,
  R_STATS,
  R_HEALTH,
  R_HEALTH_DOWN,
  R_HEALTH_UP,
};

/* One per TCP connection, created and freed by echo_app_connection(). The
 * per-request fields are reset by request_begin(). */
struct echo_conn {
  int fd;
  char *buf;   /* request body, for the routes that use it */
  size_t len;  /* bytes in buf */
  size_t cap;  /* buf's size */
  size_t seen; /* body bytes received, stored or not */
  enum route route;
  unsigned arg;    /* status code for R_STATUS, milliseconds for R_SLOW */
  bool too_large;  /* body over ECHO_MAX_BODY: answer 413 */
  bool parked;     /* handed to delay_park() for this request */
  bool unparked;   /* ...and accounted back in echo_app_parked() */
  bool aborted;    /* the client went away while we held the request */
  struct delay_item park;
};

struct url_count {
  char path[URL_PATH_MAX];
  atomic_ullong n;
};

struct echo_app {
  char *name;
  struct delay *delay;

  atomic_ullong requests;
  atomic_llong inflight;
  atomic_ullong aborted;
  atomic_uint parked;
  atomic_bool healthy;

  /* Built once, queued many times (MHD reference-counts them). */
  struct MHD_Response *r_empty;
  struct MHD_Response *r_text;
  struct MHD_Response *r_ok;        /* {"status":"ok"} */
  struct MHD_Response *r_unhealthy; /* {"status":"unhealthy"} */

  /* by_url: slots [0, url_used) are immutable except for their counters, so
   * readers scan them without a lock; url_mu only serialises appends. */
  pthread_mutex_t url_mu;
  atomic_uint url_used;
  struct url_count urls[URL_SLOTS];
};

/* ---- small helpers ---- */

static bool wants_body(enum route r)
{
  return r == R_ECHO || r == R_SLOW || r == R_INSPECT;
}

/* Digits only, within [lo, hi]. */
static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
  unsigned long v = 0;
  if (*s == '\0')
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return false;
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > hi)
      return false;
  }
  if (v < lo)
    return false;
  *out = (unsigned)v;
  return true;
}

static enum route route_of(const char *method, const char *url, unsigned *arg)
{
  if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
    if (strncmp(url, "/echo", 5) == 0 && (url[5] == '\0' || url[5] == '/'))
      return R_ECHO;
    if (strcmp(url, "/inspect") == 0)
      return R_INSPECT;
    if (strcmp(url, "/text") == 0)
      return R_TEXT;
    if (strcmp(url, "/empty") == 0)
      return R_EMPTY;
    if (strncmp(url, "/status/", 8) == 0)
      return parse_uint(url + 8, 200, 599, arg) ? R_STATUS : R_BAD_STATUS;
    if (strncmp(url, "/slow/", 6) == 0)
      return parse_uint(url + 6, 0, SLOW_MAX_MS, arg) ? R_SLOW : R_BAD_DELAY;
    if (strcmp(url, "/health/down") == 0)
      return R_HEALTH_DOWN;
    if (strcmp(url, "/health/up") == 0)
      return R_HEALTH_UP;
  } else if (strcmp(method, MHD_HTTP_METHOD_GET) == 0) {
    if (strcmp(url, "/stats") == 0)
      return R_STATS;
    if (strcmp(url, "/health") == 0)
      return R_HEALTH;
  }
  return R_NOT_FOUND;
}

/* Printable ASCII only, so that every recorded path is a valid JSON key. */
static bool plain_path(const char *s, size_t *len)
{
  size_t i = 0;
  for (; s[i]; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
      return false;
  *len = i;
  return true;
}

static void count_url(struct echo_app *app, const char *url)
{
  unsigned used = atomic_load_explicit(&app->url_used, memory_order_acquire);
  for (unsigned i = 0; i < used; i++) {
    if (strcmp(app->urls[i].path, url) == 0) {
      atomic_fetch_add_explicit(&app->urls[i].n, 1, memory_order_relaxed);
      return;
    }
  }
  size_t len;
  if (used == URL_SLOTS || !plain_path(url, &len) || len >= URL_PATH_MAX)
    return;

  pthread_mutex_lock(&app->url_mu);
  unsigned now = atomic_load_explicit(&app->url_used, memory_order_relaxed);
  for (unsigned i = used; i < now; i++) {
    if (strcmp(app->urls[i].path, url) == 0) {
      atomic_fetch_add_explicit(&app->urls[i].n, 1, memory_order_relaxed);
      pthread_mutex_unlock(&app->url_mu);
      return;
    }
  }
  if (now < URL_SLOTS) {
    memcpy(app->urls[now].path, url, len + 1);
    atomic_store_explicit(&app->urls[now].n, 1, memory_order_relaxed);
    atomic_store_explicit(&app->url_used, now + 1, memory_order_release);
  }
  pthread_mutex_unlock(&app->url_mu);
}

/* Grows the connection's body buffer to hold `need` bytes (need <= ECHO_MAX_BODY). */
static int reserve(struct echo_conn *ec, size_t need)
{
  if (need <= ec->cap)
    return 0;
  size_t cap = ec->cap ? ec->cap : 4096;
  while (cap < need)
    cap *= 2;
  if (cap > ECHO_MAX_BODY)
    cap = ECHO_MAX_BODY;
  char *buf = realloc(ec->buf, cap);
  if (buf == NULL)
    return -1;
  ec->buf = buf;
  ec->cap = cap;
  return 0;
}

/* Balances the echo_app_parked() count once per parked request, whichever of
 * the handler (after the resume) or the completion callback sees it first. */
static void unpark(struct echo_app *app, struct echo_conn *ec)
{
  if (ec->parked && !ec->unparked) {
    ec->unparked = true;
    atomic_fetch_sub(&app->parked, 1);
  }
}

/* Has the peer closed the connection (or reset it)? Checked when a parked
 * request's deadline passes, in case the epoll hang-up watch missed it. */
static bool peer_gone(int fd)
{
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return true;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* A JSON string for arbitrary bytes: invalid UTF-8 becomes '?'. */
static json_t *jstr(const char *s)
{
  json_t *j = json_string(s);
  if (j != NULL)
    return j;
  char *copy = strdup(s);
  if (copy == NULL)
    return NULL;
  for (char *p = copy; *p; p++)
    if ((unsigned char)*p > 0x7e || (unsigned char)*p < 0x20)
      *p = '?';
  j = json_string(copy);
  free(copy);
  return j;
}

static json_t *header_or_null(struct MHD_Connection *conn, const char *name)
{
  const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
  json_t *j = v ? jstr(v) : NULL;
  return j ? j : json_null();
}

/* ---- replies ---- */

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status,
                             struct MHD_Response *r)
{
  return MHD_queue_response(conn, status, r);
}

/* Queues `j` (consumed) as the JSON body of a `status` answer. */
static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, json_t *j)
{
  if (j == NULL)
    return MHD_NO;
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  if (s == NULL)
    return MHD_NO;
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(s);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* {"error": <printf(fmt, ...)>} with `status`. */
__attribute__((format(printf, 3, 4)))
static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status,
                                   const char *fmt, ...)
{
  char *msg;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    return MHD_NO;
  json_t *s = jstr(msg);
  free(msg);
  if (s == NULL)
    return MHD_NO;
  json_t *j = json_object();
  if (j == NULL || json_object_set_new(j, "error", s) < 0) {
    json_decref(j);
    return MHD_NO;
  }
  return reply_json(conn, status, j);
}

static enum MHD_Result reply_echo(struct echo_app *app, struct echo_conn *ec,
                                  struct MHD_Connection *conn)
{
  if (ec->len == 0)
    return queue(conn, MHD_HTTP_OK, app->r_empty);
  struct MHD_Response *r =
    MHD_create_response_from_buffer(ec->len, ec->buf, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result reply_inspect(struct echo_app *app, struct echo_conn *ec,
                                     struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
  json_t *body = NULL;
  if (ec->len > 0)
    body = json_loadb(ec->buf, ec->len, JSON_DECODE_ANY, NULL);
  json_t *j = json_object();
  if (j == NULL) {
    json_decref(body);
    return MHD_NO;
  }
  int bad = 0;
  bad |= json_object_set_new(j, "name", jstr(app->name));
  bad |= json_object_set_new(j, "url", jstr(url));
  bad |= json_object_set_new(j, "method", jstr(method));
  bad |= json_object_set_new(j, "correlationId", header_or_null(conn, "X-Correlation-Id"));
  bad |= json_object_set_new(j, "caller", header_or_null(conn, "X-Micro-Caller"));
  bad |= json_object_set_new(j, "token", header_or_null(conn, "X-Micro-Token"));
  bad |= json_object_set_new(j, "contentType",
                             header_or_null(conn, MHD_HTTP_HEADER_CONTENT_TYPE));
  bad |= json_object_set_new(j, "body", body ? body : json_null());
  if (bad) {
    json_decref(j);
    return MHD_NO;
  }
  return reply_json(conn, MHD_HTTP_OK, j);
}

static enum MHD_Result reply_stats(struct echo_app *app, struct MHD_Connection *conn)
{
  json_t *by = json_object();
  json_t *j = json_object();
  int bad = (by == NULL || j == NULL);
  unsigned used = atomic_load_explicit(&app->url_used, memory_order_acquire);
  for (unsigned i = 0; i < used && !bad; i++)
    bad |= json_object_set_new(by, app->urls[i].path,
                               json_integer((json_int_t)atomic_load(&app->urls[i].n)));
  if (!bad) {
    bad |= json_object_set_new(j, "name", jstr(app->name));
    bad |= json_object_set_new(j, "requests", json_integer((json_int_t)atomic_load(&app->requests)));
    bad |= json_object_set_new(j, "inflight", json_integer((json_int_t)atomic_load(&app->inflight)));
    bad |= json_object_set_new(j, "aborted", json_integer((json_int_t)atomic_load(&app->aborted)));
    bad |= json_object_set_new(j, "by_url", by);
    by = NULL;
  }
  json_decref(by);
  if (bad) {
    json_decref(j);
    return MHD_NO;
  }
  return reply_json(conn, MHD_HTTP_OK, j);
}

/* POST /slow/<ms>: park on the first final call, answer on the one after the
 * resume. */
static enum MHD_Result reply_slow(struct echo_app *app, struct echo_conn *ec,
                                  struct MHD_Connection *conn)
{
  if (!ec->parked) {
    if (ec->arg == 0)
      return reply_echo(app, ec, conn);
    ec->parked = true;
    atomic_fetch_add(&app->parked, 1);
    if (delay_park(app->delay, &ec->park, conn, ec->fd, ec->arg) == 0)
      return MHD_YES;
    int err = errno;
    atomic_fetch_sub(&app->parked, 1);
    ec->parked = false;
    if (err == ECANCELED)
      return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    return MHD_NO;
  }

  unpark(app, ec);
  if (ec->park.outcome == DELAY_SHUTDOWN)
    return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
  /* A hang-up is counted (by echo_app_completed()) and the answer still
   * queued: MHD then drops the dead connection quietly, whereas returning
   * MHD_NO would log an "internal error". (A client that only shut down its
   * sending side is counted too, and may or may not get the answer.) */
  if (ec->park.outcome != DELAY_DUE || peer_gone(ec->fd))
    ec->aborted = true;
  return reply_echo(app, ec, conn);
}

/* ---- MHD callbacks ---- */

static enum MHD_Result request_begin(struct echo_app *app, struct echo_conn *ec,
                                     struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
  ec->len = 0;
  ec->seen = 0;
  ec->too_large = false;
  ec->parked = false;
  ec->unparked = false;
  ec->aborted = false;
  ec->arg = 0;
  ec->route = route_of(method, url, &ec->arg);

  atomic_fetch_add_explicit(&app->requests, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&app->inflight, 1, memory_order_relaxed);
  count_url(app, url);

  const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl != NULL) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (errno == 0 && end != cl && n > ECHO_MAX_BODY) {
      /* Answering before the body makes MHD stop reading and close the
       * connection afterwards, which is what we want for a huge upload. */
      ec->too_large = true;
      return reply_error(conn, HTTP_TOO_LARGE,
                         "request body larger than %zu bytes", ECHO_MAX_BODY);
    }
    if (errno == 0 && end != cl && wants_body(ec->route) && reserve(ec, (size_t)n) < 0)
      return MHD_NO;
  }
  return MHD_YES;
}

enum MHD_Result echo_app_request(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
  struct echo_app *app = cls;
  struct echo_conn *ec = *req_cls;
  (void)version;

  if (ec == NULL) {
    const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    ec = ci ? ci->socket_context : NULL;
    if (ec == NULL)
      return MHD_NO; /* its allocation failed in echo_app_connection() */
    *req_cls = ec;
    enum MHD_Result ret = request_begin(app, ec, conn, url, method);
    if (ret == MHD_NO || ec->too_large)
      return ret; /* an error, or the early 413 is queued */
    if (*upload_data_size == 0)
      return MHD_YES;
  }

  if (*upload_data_size != 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (ec->too_large)
      return MHD_YES;
    if (n > ECHO_MAX_BODY - ec->seen) {
      ec->too_large = true; /* a chunked body: drop the rest, answer 413 at the end */
      return MHD_YES;
    }
    ec->seen += n;
    if (wants_body(ec->route)) {
      if (reserve(ec, ec->len + n) < 0)
        return MHD_NO;
      memcpy(ec->buf + ec->len, upload_data, n);
      ec->len += n;
    }
    return MHD_YES;
  }

  /* The whole request is in. */
  if (ec->too_large)
    return reply_error(conn, HTTP_TOO_LARGE,
                       "request body larger than %zu bytes", ECHO_MAX_BODY);
  switch (ec->route) {
  case R_ECHO:
    return reply_echo(app, ec, conn);
  case R_SLOW:
    return reply_slow(app, ec, conn);
  case R_INSPECT:
    return reply_inspect(app, ec, conn, url, method);
  case R_STATUS:
    if (ec->arg == MHD_HTTP_NO_CONTENT || ec->arg == MHD_HTTP_NOT_MODIFIED)
      return queue(conn, ec->arg, app->r_empty); /* these may not carry a body */
    return reply_error(conn, ec->arg, "status %u from %s", ec->arg, app->name);
  case R_BAD_STATUS:
    return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                       "bad status %s, want 200..599", url + 8);
  case R_BAD_DELAY:
    return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                       "bad delay %s, want 0..%u ms", url + 6, SLOW_MAX_MS);
  case R_TEXT:
    return queue(conn, MHD_HTTP_OK, app->r_text);
  case R_EMPTY:
    return queue(conn, MHD_HTTP_OK, app->r_empty);
  case R_STATS:
    return reply_stats(app, conn);
  case R_HEALTH:
    if (atomic_load(&app->healthy))
      return queue(conn, MHD_HTTP_OK, app->r_ok);
    return queue(conn, MHD_HTTP_SERVICE_UNAVAILABLE, app->r_unhealthy);
  case R_HEALTH_DOWN:
    atomic_store(&app->healthy, false);
    return queue(conn, MHD_HTTP_OK, app->r_unhealthy);
  case R_HEALTH_UP:
    atomic_store(&app->healthy, true);
    return queue(conn, MHD_HTTP_OK, app->r_ok);
  case R_NOT_FOUND:
    break;
  }
  return reply_error(conn, MHD_HTTP_NOT_FOUND, "no route %s", url);
}

void echo_app_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe)
{
  struct echo_app *app = cls;
  struct echo_conn *ec = *req_cls;
  (void)conn;
  if (ec == NULL)
    return;
  *req_cls = NULL;
  unpark(app, ec);
  atomic_fetch_sub_explicit(&app->inflight, 1, memory_order_relaxed);
  /* A parked request whose answer could not be written lost its client too. */
  if (ec->aborted || toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ||
      toe == MHD_REQUEST_TERMINATED_READ_ERROR ||
      (toe == MHD_REQUEST_TERMINATED_WITH_ERROR && ec->parked))
    atomic_fetch_add(&app->aborted, 1);
  if (ec->cap > KEEP_BUF_MAX) {
    free(ec->buf);
    ec->buf = NULL;
    ec->cap = 0;
  }
  ec->len = 0;
}

void echo_app_connection(void *cls, struct MHD_Connection *conn,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode toe)
{
  (void)cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    struct echo_conn *ec = calloc(1, sizeof *ec);
    if (ec != NULL) {
      const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
      ec->fd = ci ? ci->connect_fd : -1;
    }
    *socket_context = ec;
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    struct echo_conn *ec = *socket_context;
    if (ec != NULL) {
      free(ec->buf);
      free(ec);
    }
    *socket_context = NULL;
  }
}

unsigned echo_app_parked(const struct echo_app *app)
{
  return atomic_load(&app->parked);
}

/* ---- construction ---- */

static struct MHD_Response *static_response(const char *body, const char *type)
{
  struct MHD_Response *r =
    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  if (r != NULL && type != NULL &&
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) == MHD_NO) {
    MHD_destroy_response(r);
    r = NULL;
  }
  return r;
}

struct echo_app *echo_app_new(const char *name, struct delay *delay)
{
  struct echo_app *app = calloc(1, sizeof *app);
  if (app == NULL)
    return NULL;
  app->delay = delay;
  atomic_init(&app->healthy, true);
  if (pthread_mutex_init(&app->url_mu, NULL) != 0) {
    free(app);
    return NULL;
  }
  app->name = strdup(name);
  char *text = NULL;
  if (app->name == NULL || asprintf(&text, "hello from %s", name) < 0) {
    text = NULL;
    goto fail;
  }
  app->r_empty = static_response("", NULL);
  app->r_text = static_response(text, "text/plain");
  app->r_ok = static_response("{\"status\":\"ok\"}", "application/json");
  app->r_unhealthy = static_response("{\"status\":\"unhealthy\"}", "application/json");
  free(text);
  if (!app->r_empty || !app->r_text || !app->r_ok || !app->r_unhealthy)
    goto fail;
  return app;

fail:
  echo_app_free(app);
  return NULL;
}

void echo_app_free(struct echo_app *app)
{
  if (app == NULL)
    return;
  if (app->r_empty)
    MHD_destroy_response(app->r_empty);
  if (app->r_text)
    MHD_destroy_response(app->r_text);
  if (app->r_ok)
    MHD_destroy_response(app->r_ok);
  if (app->r_unhealthy)
    MHD_destroy_response(app->r_unhealthy);
  pthread_mutex_destroy(&app->url_mu);
  free(app->name);
  free(app);
}
