#include "listener.h"

#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH   64   /* accepts per wake-up, so one busy port cannot starve the rest */
#define PAUSE_US       (100 * LWS_US_PER_MS)

/* One per socket we accepted, until lws destroys its wsi; on the deadline list
 * while it has not become a WebSocket. */
struct listen_pend {
    listen_pend_t *next, *prev;
    struct lws    *wsi;
    int64_t        deadline_ms;
    bool           pending;
};

static void on_readable(loop_io_t *w);

static void pend_unlink(listener_t *l, listen_pend_t *p)
{
    if (!p->pending)
        return;
    p->pending = false;
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        l->tail = p->prev;
    p->next = p->prev = NULL;
}

static void pend_append(listener_t *l, listen_pend_t *p)
{
    p->pending = true;
    p->prev = l->tail;
    p->next = NULL;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
}

static void hs_expire(loop_timer_t *t);

static void hs_arm(listener_t *l)
{
    if (!l->head) {
        loop_timer_cancel(&l->hs_timer);
        return;
    }
    int64_t wait = l->head->deadline_ms - now_ms();
    loop_timer_schedule(l->ctx, &l->hs_timer, hs_expire, wait > 0 ? wait * LWS_US_PER_MS : 1);
}

/* Closes the oldest socket still without a handshake, at once: we run from our
 * own timer or watcher, never inside an lws callback, so nothing of lws's is on
 * the stack; an async kill would wait for lws's next look at its timeouts,
 * while the fd is wanted now. */
static void close_oldest(listener_t *l)
{
    listen_pend_t *p = l->head;
    pend_unlink(l, p); /* its entry goes when lws destroys the wsi */
    lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

/* Closes what is past its deadline. */
static void hs_expire(loop_timer_t *t)
{
    listener_t *l = lws_container_of(t, listener_t, hs_timer);
    int64_t now = now_ms();
    while (l->head && l->head->deadline_ms <= now && l->handshake_timeout_ms > 0) {
        l->handshake_timeouts++;
        LOG_DEBUG("no WebSocket handshake in time, closing", LF_INT("timeout_ms", l->handshake_timeout_ms));
        close_oldest(l);
    }
    hs_arm(l);
}

/* The handshake-pending entry of wsi, taken off the deadline list (the timer
 * follows a new head); NULL when wsi is not pending. */
static listen_pend_t *pend_take(listener_t *l, struct lws *wsi)
{
    listen_pend_t *p = l ? hmap_get(&l->held, &wsi, sizeof(wsi)) : NULL;
    if (!p || !p->pending)
        return NULL;
    bool was_head = p == l->head;
    pend_unlink(l, p);
    if (was_head)
        hs_arm(l);
    return p;
}

void listener_established(listener_t *l, struct lws *wsi)
{
    pend_take(l, wsi);
}

void listener_done(listener_t *l, struct lws *wsi)
{
    if (!l)
        return;
    pend_take(l, wsi);
    free(hmap_del(&l->held, &wsi, sizeof(wsi)));
}

void listener_touch(listener_t *l, struct lws *wsi)
{
    listen_pend_t *p = pend_take(l, wsi);
    if (!p)
        return;
    p->deadline_ms = now_ms() + l->handshake_timeout_ms;
    pend_append(l, p);
    if (p == l->head)
        hs_arm(l);
}

size_t listener_held(const listener_t *l) { return l ? hmap_len(&l->held) : 0; }

static void resume_accepting(loop_timer_t *t)
{
    listener_t *l = lws_container_of(t, listener_t, resume_timer);
    l->paused = false;
    loop_io_start(&l->io, l->fd, on_readable);
}

/* Out of fds (or nearly): stop watching the port for a moment, so a full backlog
 * costs ten wake-ups a second rather than a spinning loop. One log line per
 * shortage, not one per refused connection. */
static void pause_accepting(listener_t *l)
{
    if (!l->paused && !l->refused_now)
        LOG_WARN("out of file descriptors: refusing new connections until some close",
                 LF_INT("fd_ceiling", l->fd_ceiling), LF_UINT("held", hmap_len(&l->held)));
    l->paused = true;
    loop_io_stop(&l->io);
    loop_timer_schedule(l->ctx, &l->resume_timer, resume_accepting, PAUSE_US);
}

static void refuse_one(listener_t *l, int fd)
{
    close(fd);
    l->refused++;
    l->refused_now++;
}

static void on_readable(loop_io_t *w)
{
    listener_t *l = lws_container_of(w, listener_t, io);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if ((errno == EMFILE || errno == ENFILE) && l->reserve_fd >= 0) {
                /* accept-and-close with the reserve fd, so the client hears a
                 * close rather than waiting in the backlog */
                close(l->reserve_fd);
                l->reserve_fd = -1;
                int c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0)
                    refuse_one(l, c);
                l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            }
            pause_accepting(l);
            return;
        }
        /* The top of the fd range is kept for what the process must still
         * open: the API, app connections, dials. With as many sockets held as
         * fit below it, a socket that has not become a WebSocket yet makes
         * room for the new one (the oldest), so idle sockets cannot lock out
         * peers and probes; with nothing to make room, or an fd number already
         * in the reserve (something else took the fds), the new one is closed. */
        if (fd >= l->fd_hard_ceiling || (hmap_len(&l->held) >= l->max_held && !l->head)) {
            refuse_one(l, fd);
            pause_accepting(l);
            return;
        }
        if (hmap_len(&l->held) >= l->max_held) {
            l->evicted++;
            close_oldest(l);
            hs_arm(l);
        }
        if (l->refused_now) {
            LOG_INFO("accepting connections again", LF_UINT("refused", l->refused_now));
            l->refused_now = 0;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct lws *wsi = lws_adopt_socket_vhost(l->vhost, fd); /* closes fd on failure */
        if (!wsi)
            continue;
        listen_pend_t *p = calloc(1, sizeof(*p));
        if (!p) {
            loop_kill_async(wsi);
            continue;
        }
        p->wsi = wsi;
        p->deadline_ms = now_ms() + l->handshake_timeout_ms;
        int err;
        hmap_put(&l->held, &p->wsi, sizeof(p->wsi), p, &err);
        if (err) {
            free(p);
            loop_kill_async(wsi);
            continue;
        }
        pend_append(l, p);
        if (l->head == p)
            hs_arm(l);
    }
}

static int bind_socket(const char *where, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    bool dual = false;
    if (!where || !*where || !strcmp(where, "0.0.0.0")) {
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET, where, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, where, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        dual = !strcmp(where, "::");
        sl = sizeof(*s6);
    } else {
        errno = EINVAL;
        return -1;
    }
    if (ss.ss_family == AF_INET)
        s4->sin_port = htons((uint16_t)port);
    else
        s6->sin6_port = htons((uint16_t)port);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, v6only = dual ? 0 : 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, SOMAXCONN)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* The reserve: an eighth of RLIMIT_NOFILE, at least 16 and at most 1,024 fds,
 * is not given to new peers. */
static void fd_ceilings(listener_t *l)
{
    struct rlimit rl;
    long lim = 1 << 24;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)lim)
        lim = (long)rl.rlim_cur;
    long keep = lim / 8;
    if (keep < 16)
        keep = 16;
    if (keep > 1024)
        keep = 1024;
    l->fd_ceiling = lim - keep > 8 ? (int)(lim - keep) : 8;
    l->fd_hard_ceiling = lim - keep / 2 > l->fd_ceiling ? (int)(lim - keep / 2) : l->fd_ceiling + 1;
    /* what we hold: the fds below the ceiling, less those open at start-up */
    long base = l->fd + 1;
    l->max_held = l->fd_ceiling - base > 4 ? (size_t)(l->fd_ceiling - base) : 4;
}

int listener_start(listener_t *l, struct lws_context *ctx, struct lws_vhost *vhost,
                   const char *where, int port, int64_t handshake_timeout_ms)
{
    memset(l, 0, sizeof(*l));
    l->fd = l->reserve_fd = -1;
    l->vhost = vhost;
    l->ctx = ctx;
    l->handshake_timeout_ms = handshake_timeout_ms;
    hmap_init(&l->held);
    l->fd = bind_socket(where, port);
    if (l->fd < 0)
        return -1;
    fd_ceilings(l);
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (loop_io_start(&l->io, l->fd, on_readable)) {
        close(l->fd);
        l->fd = -1;
        errno = ENOTSUP;
        return -1;
    }
    return 0;
}

void listener_stop(listener_t *l)
{
    if (!l)
        return;
    loop_io_stop(&l->io);
    loop_timer_cancel(&l->resume_timer);
    loop_timer_cancel(&l->hs_timer);
    void *v;
    for (size_t it = 0; (it = hmap_next(&l->held, it, &v)) != 0;)
        free(v);
    l->head = l->tail = NULL;
    hmap_free(&l->held);
    if (l->fd >= 0)
        close(l->fd);
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    l->fd = l->reserve_fd = -1;
}
