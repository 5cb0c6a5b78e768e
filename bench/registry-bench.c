/* registry-bench: load tool for micro-registry (docs/BENCHMARKS.md).
 *
 * 1. Opens --instances WebSocket connections, spread over --namespaces namespaces
 *    (instance i is "10.a.b.c:9100" in namespace "ns-<i % namespaces>"), from several
 *    loopback source addresses so that ephemeral ports never run short, and keeps
 *    them alive with /-/heartbeat pushes (one per instance per --heartbeat-ms, as a
 *    sidecar does).
 * 2. Checks GET /-/health: the registry must count every instance.
 * 3. For each phase in --phases, for --warmup + --duration seconds, --finders
 *    connections send /-/find for a random namespace each:
 *      D     closed loop: each finder keeps D requests in flight (a new one goes out
 *            as soon as an answer comes back) -> the registry's capacity;
 *      D@R   open loop: R finds/s in all, spread over the finders, at most D in
 *            flight per finder -> latency at a given load (a registry that cannot
 *            keep up shows it as a lower achieved rate and queueing latency).
 *    Per-request send times are kept by id, so latency is exact per request.
 * 4. Reads the registry's VmRSS / VmHWM (--pid) and its CPU time during the finds.
 *
 * Prints progress on stderr and one JSON object on stdout. Exit 0 when every instance
 * connected and stayed connected and every find was answered with an instance;
 * 1 otherwise; 2 on bad usage.
 *
 * Plain sockets + epoll and a minimal RFC 6455 client: HTTP upgrade, masked text
 * frames out, unmasked frames in. No libwebsockets, so the tool costs little CPU. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };
enum { K_INSTANCE, K_FINDER };

#define RING 4096          /* per-finder send-time slots, indexed by id; > max depth */
#define HIST_US 200000     /* latency histogram: 1 µs buckets up to 200 ms, then overflow */
#define HS_MAX 1024

typedef struct conn {
    int      fd;
    uint8_t  state, kind;
    uint32_t index;        /* instance number or finder number */
    uint64_t next_id;      /* frame id counter of this side */
    char    *hs;           /* handshake answer being collected */
    size_t   hslen;
    /* finders only */
    char    *rbuf, *wbuf;
    size_t   rlen, rcap, wlen, woff, wcap;
    unsigned inflight;
    uint64_t phase_sent;   /* finds sent in this phase (open loop schedule) */
    uint64_t *sent_ns;     /* RING slots */
    bool     want_out;
} conn_t;

static struct {
    const char *host;
    int         port;
    int         instances, namespaces, finders;
    int         depths[8], ndepths;
    double      rates[8];       /* 0 = closed loop */
    double      duration, warmup;
    int         pid;
    int         sources;
    int         heartbeat_ms;
    int         parallel;
    double      connect_timeout;
    int         first;          /* instance numbers start here (several tools, one mesh) */
    int         id;             /* this tool's finders are 10.255.<id>.<n> */
    long        expect;         /* instances the registry must count (0: ours) */
} opt = {
    .host = "127.0.0.1", .port = 9000, .instances = 10000, .namespaces = 1000,
    .finders = 8, .depths = {32}, .ndepths = 1, .duration = 10, .warmup = 1,
    .pid = 0, .sources = 8, .heartbeat_ms = 10000, .parallel = 256, .connect_timeout = 60,
};

static int            ep;
static conn_t        *conns;  /* instances first, then finders */
static int            nconns;
static struct in_addr dst_addr;
static uint64_t       rng = 0x9e3779b97f4a7c15ull;

/* results / counters */
static uint64_t hist[HIST_US + 1];
static uint64_t lat_max_ns;
static uint64_t finds_ok, finds_empty, finds_bad, finds_sent;
static uint64_t instance_closed, connect_failed, write_errors, heartbeats_sent;
static bool     measuring;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "registry-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- frames ---- */

/* Appends one masked frame of opcode op holding `payload` to out (which has room). */
static size_t frame_masked_op(char *out, unsigned op, const char *payload, size_t n)
{
    size_t h = 0;
    unsigned char *o = (unsigned char *)out;
    o[h++] = (unsigned char)(0x80 | op);
    if (n < 126) {
        o[h++] = 0x80 | (unsigned char)n;
    } else if (n < 65536) {
        o[h++] = 0x80 | 126;
        o[h++] = (unsigned char)(n >> 8);
        o[h++] = (unsigned char)n;
    } else {
        o[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            o[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    uint32_t key = (uint32_t)rnd();
    unsigned char mk[4] = {(unsigned char)key, (unsigned char)(key >> 8),
                           (unsigned char)(key >> 16), (unsigned char)(key >> 24)};
    memcpy(o + h, mk, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        o[h + i] = (unsigned char)payload[i] ^ mk[i & 3];
    return h + n;
}

static size_t frame_masked(char *out, const char *payload, size_t n)
{
    return frame_masked_op(out, 0x1, payload, n);
}

/* ---- sockets ---- */

static void ep_mod(conn_t *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl MOD: %s", strerror(errno));
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = ST_CLOSED;
    free(c->hs);
    c->hs = NULL;
}

static void instance_host(int i, char *out, size_t n)
{
    i += opt.first;
    snprintf(out, n, "10.%d.%d.%d", 1 + ((i >> 16) & 0xff), (i >> 8) & 0xff, i & 0xff);
}

static int conn_start(conn_t *c, int source)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s (raise the open files limit)", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (source > 0) {
        /* 127.0.0.<2+source>: each source address has its own ephemeral port range */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(source - 1));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
            die("bind 127.0.0.%d: %s", 2 + source - 1, strerror(errno));
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    sa.sin_addr = dst_addr;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->hs = xmalloc(HS_MAX);
    c->hslen = 0;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
        die("epoll_ctl ADD: %s", strerror(errno));
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void send_handshake(conn_t *c)
{
    char host[64], path[160], req[512];
    if (c->kind == K_INSTANCE) {
        instance_host((int)c->index, host, sizeof(host));
        snprintf(path, sizeof(path), "/%s/9100/ns-%u", host,
                 (c->index + (unsigned)opt.first) % (unsigned)opt.namespaces);
    } else {
        snprintf(path, sizeof(path), "/10.255.%d.%u/9100/bench-finder", opt.id, c->index + 1);
    }
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, opt.host, opt.port);
    if (write_all(c->fd, req, (size_t)n) < 0) {
        connect_failed++;
        conn_close(c);
        return;
    }
    c->state = ST_HANDSHAKE;
    ep_mod(c, EPOLLIN);
}

/* ---- finders ---- */

static void wbuf_reserve(conn_t *c, size_t more)
{
    if (c->woff && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (c->wlen + more <= c->wcap)
        return;
    if (c->woff) {
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
        if (c->wlen + more <= c->wcap)
            return;
    }
    size_t ncap = c->wcap ? c->wcap : 4096;
    while (ncap < c->wlen + more)
        ncap *= 2;
    c->wbuf = realloc(c->wbuf, ncap);
    if (!c->wbuf)
        die("out of memory");
    c->wcap = ncap;
}

static void finder_queue_find(conn_t *c)
{
    char payload[200];
    uint64_t id = c->next_id++;
    unsigned ns = (unsigned)(rnd() % (uint64_t)opt.namespaces);
    int n = snprintf(payload, sizeof(payload),
                     "{\"id\":%llu,\"twoway\":true,\"data\":{\"url\":\"/-/find\",\"data\":{\"namespace\":\"ns-%u\"}},\"mode\":0}",
                     (unsigned long long)id, ns);
    wbuf_reserve(c, (size_t)n + 14);
    c->wlen += frame_masked(c->wbuf + c->wlen, payload, (size_t)n);
    c->sent_ns[id & (RING - 1)] = now_ns();
    c->inflight++;
    c->phase_sent++;
    finds_sent++;
}

static void finder_flush(conn_t *c)
{
    while (c->woff < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w <= 0) {
            write_errors++;
            conn_close(c);
            return;
        }
        c->woff += (size_t)w;
    }
    bool want = c->woff < c->wlen;
    if (want != c->want_out) {
        c->want_out = want;
        ep_mod(c, EPOLLIN | (want ? EPOLLOUT : 0));
    }
}

static void record_latency(uint64_t ns)
{
    if (!measuring)
        return;
    uint64_t us = ns / 1000;
    hist[us > HIST_US ? HIST_US : us]++;
    if (ns > lat_max_ns)
        lat_max_ns = ns;
}

static void finder_answer(conn_t *c, const char *p, size_t n, uint64_t t)
{
    /* {"id":N,"mode":1,"twoway":false,"data":{"status":200,"data":{"host":..,"port":..}}} */
    const char *idp = memmem(p, n, "\"id\":", 5);
    const char *mode = memmem(p, n, "\"mode\":1", 8);
    if (!idp || !mode) {
        finds_bad++;
        return;
    }
    uint64_t id = strtoull(idp + 5, NULL, 10);
    if (c->inflight)
        c->inflight--;
    record_latency(t - c->sent_ns[id & (RING - 1)]);
    bool ok = memmem(p, n, "\"status\":200", 12) != NULL;
    bool host = memmem(p, n, "\"host\":", 7) != NULL;
    if (measuring) {
        if (ok && host)
            finds_ok++;
        else if (ok)
            finds_empty++;
        else
            finds_bad++;
    }
}

static int finder_read(conn_t *c, unsigned depth)
{
    for (;;) {
        if (c->rcap - c->rlen < 65536) {
            c->rcap = c->rcap ? c->rcap * 2 : 131072;
            c->rbuf = realloc(c->rbuf, c->rcap);
            if (!c->rbuf)
                die("out of memory");
        }
        ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            break;
        if (r <= 0) {
            fprintf(stderr, "registry-bench: finder %u: connection closed by the registry\n", c->index);
            conn_close(c);
            return -1;
        }
        c->rlen += (size_t)r;
        if ((size_t)r < 65536)
            break;
    }
    uint64_t t = now_ns();
    size_t off = 0;
    const unsigned char *b = (const unsigned char *)c->rbuf;
    while (c->rlen - off >= 2) {
        unsigned op = b[off] & 0x0f;
        bool fin = b[off] & 0x80;
        uint64_t len = b[off + 1] & 0x7f;
        size_t h = 2;
        if (b[off + 1] & 0x80) {
            fprintf(stderr, "registry-bench: masked frame from the server\n");
            conn_close(c);
            return -1;
        }
        if (len == 126) {
            if (c->rlen - off < 4)
                break;
            len = ((uint64_t)b[off + 2] << 8) | b[off + 3];
            h = 4;
        } else if (len == 127) {
            if (c->rlen - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | b[off + 2 + i];
            h = 10;
        }
        if (c->rlen - off < h + len)
            break;
        if (op == 0x1 && fin)
            finder_answer(c, c->rbuf + off + h, (size_t)len, t);
        else if (op == 0x8) {
            fprintf(stderr, "registry-bench: finder %u: close frame from the registry\n", c->index);
            conn_close(c);
            return -1;
        } else if (op == 0x9) { /* RFC 6455 §5.5.3: answer a ping (the registry hangs up otherwise) */
            wbuf_reserve(c, (size_t)len + 14);
            c->wlen += frame_masked_op(c->wbuf + c->wlen, 0xa, c->rbuf + off + h, (size_t)len);
        } else if (op != 0xa)
            finds_bad++;
        off += h + (size_t)len;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    while (c->inflight < depth)
        finder_queue_find(c);
    finder_flush(c);
    return 0;
}

/* ---- the event loop ---- */

static void on_handshake_data(conn_t *c)
{
    ssize_t r = read(c->fd, c->hs + c->hslen, HS_MAX - 1 - c->hslen);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        connect_failed++;
        conn_close(c);
        return;
    }
    c->hslen += (size_t)r;
    c->hs[c->hslen] = 0;
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) {
        if (c->hslen >= HS_MAX - 1) {
            connect_failed++;
            conn_close(c);
        }
        return;
    }
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0) {
        if (connect_failed < 5)
            fprintf(stderr, "registry-bench: handshake refused: %.*s\n", (int)strcspn(c->hs, "\r\n"), c->hs);
        connect_failed++;
        conn_close(c);
        return;
    }
    if ((size_t)(end + 4 - c->hs) != c->hslen) {
        /* the registry sent a frame right after the 101: not expected, ignore it */
    }
    free(c->hs);
    c->hs = NULL;
    c->state = ST_OPEN;
}

static void on_event(conn_t *c, uint32_t ev, unsigned depth)
{
    if (c->state == ST_CLOSED)
        return;
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            if (connect_failed < 5)
                fprintf(stderr, "registry-bench: connect: %s\n", strerror(err ? err : ECONNRESET));
            connect_failed++;
            conn_close(c);
            return;
        }
        send_handshake(c);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        on_handshake_data(c);
        return;
    }
    if (c->kind == K_FINDER) {
        if (ev & EPOLLIN)
            finder_read(c, depth);
        if (c->state == ST_OPEN && (ev & EPOLLOUT))
            finder_flush(c);
        return;
    }
    /* an instance: the registry sends it nothing but pings (small, unmasked, each
     * in one read on loopback) and a close */
    unsigned char buf[512];
    ssize_t r = read(c->fd, buf, sizeof(buf));
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        instance_closed++;
        conn_close(c);
        return;
    }
    for (ssize_t off = 0; r > 0 && off + 2 <= r;) {
        unsigned op = buf[off] & 0x0f, len = buf[off + 1] & 0x7f;
        if (op == 0x8 || len > 125 || off + 2 + (ssize_t)len > r) {
            instance_closed++;
            conn_close(c);
            return;
        }
        if (op == 0x9) {
            char pong[160];
            size_t fl = frame_masked_op(pong, 0xa, (const char *)buf + off + 2, len);
            if (write(c->fd, pong, fl) != (ssize_t)fl)
                write_errors++;
        }
        off += 2 + (ssize_t)len;
    }
}

static int hb_cursor;
static uint64_t hb_last_ns;

/* Heartbeats: every instance once per --heartbeat-ms, spread evenly. */
static void heartbeats(uint64_t t)
{
    if (!opt.heartbeat_ms || !opt.instances)
        return;
    if (!hb_last_ns) {
        hb_last_ns = t;
        return;
    }
    double due = (double)(t - hb_last_ns) / 1e6 / opt.heartbeat_ms * opt.instances;
    int n = (int)due;
    if (n <= 0)
        return;
    hb_last_ns = t;
    for (int k = 0; k < n; k++) {
        conn_t *c = &conns[hb_cursor];
        hb_cursor = (hb_cursor + 1) % opt.instances;
        if (c->state != ST_OPEN)
            continue;
        char payload[128], frame[160];
        int len = snprintf(payload, sizeof(payload),
                           "{\"id\":%llu,\"twoway\":false,\"data\":{\"url\":\"/-/heartbeat\",\"data\":{}},\"mode\":0}",
                           (unsigned long long)c->next_id++);
        size_t fl = frame_masked(frame, payload, (size_t)len);
        if (write(c->fd, frame, fl) != (ssize_t)fl) {
            write_errors++;
            instance_closed++;
            conn_close(c);
            continue;
        }
        heartbeats_sent++;
    }
}

/* Waits up to timeout_us (epoll_pwait2 where the kernel has it: the open-loop
 * schedule needs finer steps than epoll_wait's milliseconds). */
static void poll_once_us(long timeout_us, unsigned depth)
{
    struct epoll_event evs[512];
    int n = -1;
#ifdef SYS_epoll_pwait2
    static bool no_pwait2;
    if (!no_pwait2) {
        struct timespec ts = {.tv_sec = timeout_us / 1000000, .tv_nsec = (timeout_us % 1000000) * 1000};
        n = (int)syscall(SYS_epoll_pwait2, ep, evs, 512, &ts, NULL, 0);
        if (n < 0 && errno == ENOSYS)
            no_pwait2 = true;
    }
    if (no_pwait2)
#endif
        n = epoll_wait(ep, evs, 512, (int)((timeout_us + 999) / 1000));
    if (n < 0 && errno != EINTR)
        die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++)
        on_event(evs[i].data.ptr, evs[i].events, depth);
    heartbeats(now_ns());
}

static void poll_once(int timeout_ms, unsigned depth) { poll_once_us(timeout_ms * 1000L, depth); }

/* Opens conns[from..to) with at most --parallel handshakes at a time. */
static int open_all(int from, int to)
{
    int next = from;
    uint64_t deadline = now_ns() + (uint64_t)(opt.connect_timeout * 1e9);
    uint64_t last_report = now_ns();
    for (;;) {
        int pending = 0, open = 0, closed = 0;
        for (int i = from; i < next; i++) {
            if (conns[i].state == ST_OPEN)
                open++;
            else if (conns[i].state == ST_CLOSED)
                closed++;
            else
                pending++;
        }
        if (next == to && pending == 0)
            return closed ? -1 : 0;
        if (closed)
            return -1;
        while (next < to && pending < opt.parallel) {
            conn_t *c = &conns[next];
            int source = opt.sources > 0 ? 1 + next % opt.sources : 0;
            if (conn_start(c, source) < 0) {
                connect_failed++;
                return -1;
            }
            next++;
            pending++;
        }
        if (now_ns() > deadline) {
            fprintf(stderr, "registry-bench: connecting took longer than %.0f s\n", opt.connect_timeout);
            return -1;
        }
        if (now_ns() - last_report > 1000000000ull) {
            fprintf(stderr, "registry-bench: %d/%d connections open\n", open, to - from);
            last_report = now_ns();
        }
        poll_once(5, 0);
    }
}

/* ---- /proc and HTTP helpers ---- */

static long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* All cores' busy time from /proc/stat, seconds. */
static double machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    /* user nice system idle iowait irq softirq steal: all but idle and iowait */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* GET /-/health; returns "instances" or -1. */
static long health_instances(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    sa.sin_addr = dst_addr;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    char req[256], buf[8192];
    int n = snprintf(req, sizeof(req), "GET /-/health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", opt.host);
    if (write_all(fd, req, (size_t)n) < 0) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t r;
    while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = 0;
    char *p = strstr(buf, "\"instances\":");
    return p ? strtol(p + 12, NULL, 10) : -1;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: registry-bench [OPTIONS]\n"
            "  --host ADDR            registry IPv4 address [127.0.0.1]\n"
            "  --port N               registry port [9000]\n"
            "  --instances N          instance connections [10000]\n"
            "  --namespaces N         namespaces they are spread over [1000]\n"
            "  --finders N            connections sending /-/find [8]\n"
            "  --phases P[,P...]      one measured phase each: D = closed loop, D finds in flight per\n"
            "                         finder; D@R = open loop at R finds/s in all, at most D in flight [32]\n"
            "  --depths ...           the same as --phases\n"
            "  --duration S           measured seconds per phase [10]\n"
            "  --warmup S             unmeasured seconds before each phase [1]\n"
            "  --pid PID              the registry's pid, for RSS and CPU time\n"
            "  --sources N            loopback source addresses 127.0.0.2.. (0 = let the kernel pick) [8]\n"
            "  --heartbeat-ms MS      /-/heartbeat period per instance (0 = none) [10000]\n"
            "  --parallel N           handshakes in progress at once [256]\n"
            "  --first N              number of the first instance, for several tools on one mesh [0]\n"
            "  --id N                 0..255: this tool's finders register as 10.255.N.x [0]\n"
            "  --expect N             wait (up to 60 s) until the registry counts N instances, not\n"
            "                         just ours (registry replicas sharing a view) [0]\n");
}

static void parse_depths(const char *s)
{
    opt.ndepths = 0;
    while (*s && opt.ndepths < 8) {
        char *end;
        long d = strtol(s, &end, 10);
        if (end == s || d < 1 || d > RING / 2) {
            fprintf(stderr, "registry-bench: --phases: each depth must be 1..%d\n", RING / 2);
            exit(2);
        }
        double rate = 0;
        if (*end == '@') {
            char *e2;
            rate = strtod(end + 1, &e2);
            if (e2 == end + 1 || !(rate > 0)) {
                fprintf(stderr, "registry-bench: --phases: D@R needs a rate > 0\n");
                exit(2);
            }
            end = e2;
        }
        opt.rates[opt.ndepths] = rate;
        opt.depths[opt.ndepths++] = (int)d;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            fprintf(stderr, "registry-bench: --phases: bad list\n");
            exit(2);
        }
    }
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "registry-bench: %s needs a value\n", a);
            usage(stderr);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--instances")) opt.instances = atoi(v);
        else if (!strcmp(a, "--namespaces")) opt.namespaces = atoi(v);
        else if (!strcmp(a, "--finders")) opt.finders = atoi(v);
        else if (!strcmp(a, "--depths") || !strcmp(a, "--phases")) parse_depths(v);
        else if (!strcmp(a, "--duration")) opt.duration = atof(v);
        else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(a, "--pid")) opt.pid = atoi(v);
        else if (!strcmp(a, "--sources")) opt.sources = atoi(v);
        else if (!strcmp(a, "--heartbeat-ms")) opt.heartbeat_ms = atoi(v);
        else if (!strcmp(a, "--parallel")) opt.parallel = atoi(v);
        else if (!strcmp(a, "--first")) opt.first = atoi(v);
        else if (!strcmp(a, "--id")) opt.id = atoi(v);
        else if (!strcmp(a, "--expect")) opt.expect = atol(v);
        else {
            fprintf(stderr, "registry-bench: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (opt.port < 1 || opt.port > 65535 || opt.instances < 0 || opt.namespaces < 1 ||
        opt.finders < 1 || opt.duration <= 0 || opt.warmup < 0 || opt.sources < 0 || opt.parallel < 1 ||
        opt.first < 0 || opt.first > 0xfeffff - opt.instances || opt.id < 0 || opt.id > 255 ||
        opt.expect < 0) {
        fprintf(stderr, "registry-bench: a value is out of range\n");
        exit(2);
    }
    if (inet_pton(AF_INET, opt.host, &dst_addr) != 1) {
        fprintf(stderr, "registry-bench: --host must be an IPv4 address\n");
        exit(2);
    }
}

static void raise_nofile(long need)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur >= need)
        return;
    if ((long)rl.rlim_max < need) {
        rl.rlim_max = (rlim_t)need;  /* works as root */
        rl.rlim_cur = (rlim_t)need;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return;
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur < need)
        die("need %ld open files, the limit is %ld (ulimit -n)", need, (long)rl.rlim_cur);
}

static uint64_t hist_pct(uint64_t total, double p)
{
    if (!total)
        return 0;
    uint64_t want = (uint64_t)((double)total * p / 100.0 + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t acc = 0;
    for (int i = 0; i <= HIST_US; i++) {
        acc += hist[i];
        if (acc >= want)
            return (uint64_t)i;
    }
    return HIST_US;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    rng ^= (uint64_t)now_ns() * 0x2545f4914f6cdd1dull;
    raise_nofile(opt.instances + opt.finders + 64);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    nconns = opt.instances + opt.finders;
    conns = xmalloc(sizeof(conn_t) * (size_t)nconns);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].state = ST_CLOSED;
        conns[i].kind = i < opt.instances ? K_INSTANCE : K_FINDER;
        conns[i].index = (uint32_t)(i < opt.instances ? i : i - opt.instances);
    }
    long rss_start = opt.pid ? proc_status_kb(opt.pid, "VmRSS") : -1;

    uint64_t t0 = now_ns();
    int rc_open = open_all(0, opt.instances);
    double connect_s = (double)(now_ns() - t0) / 1e9;
    if (rc_open < 0) {
        fprintf(stderr, "registry-bench: could not open every instance connection (%llu failed)\n",
                (unsigned long long)connect_failed);
        printf("{\"ok\":false,\"error\":\"instance connections failed\",\"connect_failed\":%llu}\n",
               (unsigned long long)connect_failed);
        return 1;
    }
    fprintf(stderr, "registry-bench: %d instance connections in %d namespaces open in %.2f s\n",
            opt.instances, opt.namespaces, connect_s);
    for (int i = opt.instances; i < nconns; i++) {
        conns[i].sent_ns = xmalloc(sizeof(uint64_t) * RING);
    }
    if (open_all(opt.instances, nconns) < 0)
        die("could not open the finder connections");
    /* let the registry finish registering before asking it */
    for (int i = 0; i < 20; i++)
        poll_once(5, 0);
    long counted = health_instances();
    /* Replicas sharing a view through a store count the others' instances too, once
     * they have arrived. */
    for (int i = 0; opt.expect && counted < opt.expect && i < 600; i++) {
        poll_once(100, 0);
        counted = health_instances();
    }
    long rss_loaded = opt.pid ? proc_status_kb(opt.pid, "VmRSS") : -1;
    fprintf(stderr, "registry-bench: registry counts %ld instances; RSS %ld kB\n", counted, rss_loaded);

    /* the phases */
    char phases[4096];
    size_t plen = 0;
    bool ok = opt.expect ? counted >= opt.expect : counted == (long)nconns;
    for (int ph = 0; ph < opt.ndepths; ph++) {
        unsigned depth = (unsigned)opt.depths[ph];
        double rate = opt.rates[ph];
        double rate_per_finder = rate / opt.finders;
        uint64_t behind = 0; /* open loop: scheduled sends held back by the depth cap */
        memset(hist, 0, sizeof(hist));
        lat_max_ns = 0;
        finds_ok = finds_empty = finds_bad = 0;
        measuring = false;
        for (int i = opt.instances; i < nconns; i++) {
            conn_t *c = &conns[i];
            c->phase_sent = 0;
            if (c->state != ST_OPEN || rate > 0)
                continue;
            while (c->inflight < depth)
                finder_queue_find(c);
            finder_flush(c);
        }
        uint64_t start = now_ns();
        uint64_t mstart = start + (uint64_t)(opt.warmup * 1e9);
        uint64_t end = mstart + (uint64_t)(opt.duration * 1e9);
        double cpu0 = -1, self0 = -1, busy0 = -1;
        for (;;) {
            uint64_t t = now_ns();
            if (!measuring && t >= mstart) {
                measuring = true;
                cpu0 = opt.pid ? proc_cpu_s(opt.pid) : -1;
                self0 = proc_cpu_s(getpid());
                busy0 = machine_busy_s();
                mstart = t;
            }
            if (t >= end)
                break;
            if (rate <= 0) {
                poll_once(1, depth);
                continue;
            }
            poll_once_us(100, 0);
            double elapsed = (double)(now_ns() - start) / 1e9;
            for (int i = opt.instances; i < nconns; i++) {
                conn_t *c = &conns[i];
                if (c->state != ST_OPEN)
                    continue;
                double due = elapsed * rate_per_finder - (double)c->phase_sent;
                bool queued = false;
                while (due >= 1 && c->inflight < depth) {
                    finder_queue_find(c);
                    due -= 1;
                    queued = true;
                }
                if (due >= 1 && measuring)
                    behind++;
                if (queued)
                    finder_flush(c);
            }
        }
        double secs = (double)(now_ns() - mstart) / 1e9;
        measuring = false;
        double cpu1 = opt.pid ? proc_cpu_s(opt.pid) : -1;
        double self1 = proc_cpu_s(getpid());
        double busy1 = machine_busy_s();
        /* drain what is in flight, without sending more */
        uint64_t drain_end = now_ns() + 2000000000ull;
        for (;;) {
            unsigned left = 0;
            for (int i = opt.instances; i < nconns; i++)
                if (conns[i].state == ST_OPEN)
                    left += conns[i].inflight;
            if (!left || now_ns() > drain_end)
                break;
            poll_once(5, 0);
        }
        uint64_t total = finds_ok + finds_empty + finds_bad;
        double achieved = (double)total / secs;
        char label[64];
        if (rate > 0)
            snprintf(label, sizeof(label), "offered %.0f finds/s", rate);
        else
            snprintf(label, sizeof(label), "closed loop");
        double cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
        /* what else ran meanwhile (other users of the machine, softirq threads) */
        double other = busy0 >= 0 && busy1 >= 0 ? (busy1 - busy0 - (self1 - self0) - (cpu > 0 ? cpu : 0)) / secs : -1;
        if (other < 0 && busy0 >= 0)
            other = 0;
        fprintf(stderr,
                "registry-bench: %s, at most %u in flight x %d finders: %.0f finds/s, p50 %llu us, p99 %llu us, p99.9 %llu us, "
                "max %.0f us (%llu ok, %llu empty, %llu bad); registry CPU %.2f s, tool CPU %.2f s, other load %.2f cores\n",
                label, depth, opt.finders, achieved,
                (unsigned long long)hist_pct(total, 50),
                (unsigned long long)hist_pct(total, 99), (unsigned long long)hist_pct(total, 99.9),
                (double)lat_max_ns / 1e3, (unsigned long long)finds_ok, (unsigned long long)finds_empty,
                (unsigned long long)finds_bad, cpu, self1 - self0, other);
        if (!finds_ok || finds_empty || finds_bad)
            ok = false;
        plen += (size_t)snprintf(phases + plen, sizeof(phases) - plen,
                                 "%s{\"finders\":%d,\"depth\":%u,\"offered_per_s\":%.0f,\"held_back\":%llu,\"seconds\":%.3f,\"finds\":%llu,\"finds_per_s\":%.0f,"
                                 "\"ok\":%llu,\"empty\":%llu,\"bad\":%llu,"
                                 "\"latency_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p99_9\":%llu,\"max\":%.0f},"
                                 "\"registry_cpu_s\":%.2f,\"finds_per_cpu_s\":%.0f,\"tool_cpu_s\":%.2f,\"other_cores\":%.2f}",
                                 ph ? "," : "", opt.finders, depth, rate, (unsigned long long)behind, secs,
                                 (unsigned long long)total, achieved,
                                 (unsigned long long)finds_ok, (unsigned long long)finds_empty,
                                 (unsigned long long)finds_bad, (unsigned long long)hist_pct(total, 50),
                                 (unsigned long long)hist_pct(total, 90), (unsigned long long)hist_pct(total, 99),
                                 (unsigned long long)hist_pct(total, 99.9), (double)lat_max_ns / 1e3, cpu,
                                 cpu > 0 ? (double)total / cpu : 0.0, self1 - self0, other);
    }
    long rss_end = opt.pid ? proc_status_kb(opt.pid, "VmRSS") : -1;
    long hwm = opt.pid ? proc_status_kb(opt.pid, "VmHWM") : -1;
    if (instance_closed || write_errors)
        ok = false;
    printf("{\"ok\":%s,\"instances\":%d,\"namespaces\":%d,\"registry_counted\":%ld,\"connect_s\":%.3f,"
           "\"heartbeats_sent\":%llu,\"instances_closed\":%llu,\"write_errors\":%llu,"
           "\"rss_kb\":{\"start\":%ld,\"loaded\":%ld,\"end\":%ld,\"hwm\":%ld},\"phases\":[%s]}\n",
           ok ? "true" : "false", opt.instances, opt.namespaces, counted, connect_s,
           (unsigned long long)heartbeats_sent, (unsigned long long)instance_closed,
           (unsigned long long)write_errors, rss_start, rss_loaded, rss_end, hwm, phases);
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    return ok ? 0 : 1;
}
