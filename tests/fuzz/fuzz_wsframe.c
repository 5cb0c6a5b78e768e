/* fuzz_wsframe: libmicro/wsframe.c on arbitrary bytes. The first input byte is a
 * seed (split points, which callbacks stop the parser); the rest is used as:
 *  - a stream of frames from the server, read once by a simple whole-buffer
 *    reference parser (below) and fed to wsf_rx_feed whole, in pieces of
 *    pseudo-random sizes (empty ones included) and, when short, one byte at a
 *    time. Every run must return the same value, reassemble the same messages,
 *    report the same control frames at the same places, and (when it returned 0)
 *    leave the parser in the same state; the whole run must match the reference's
 *    messages, control frames and verdict. On the way the callbacks check their
 *    invariants: pieces point into the bytes just fed, first/final bracket each
 *    message, `more` counts down within a frame, control payloads fit in 125
 *    bytes and only close/ping/pong get there. Text must be UTF-8 and close
 *    payloads well formed (1007/1002): of a text found not to be UTF-8, what each
 *    run delivered depends on the split and is checked to be a prefix of it;
 *  - the server's answer to the opening handshake for the RFC 6455 §1.3 key:
 *    wsf_handshake_response must return -1 (with a reason), 0 exactly when no
 *    blank line has arrived, or the length of the header block up to and
 *    including the first blank line, and the same again on a copy cut there;
 *  - a payload to mask: wsf_mask must equal a byte-wise XOR and undo itself. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "wsframe.h"

#include "fuzz_check.h"

static void put(sbuf_t *b, const void *p, size_t n)
{
    CHECK(sbuf_add(b, p, n) == 0);
}

static void putf(sbuf_t *b, const char *fmt, unsigned long long x, unsigned long long y)
{
    CHECK(sbuf_printf(b, fmt, x, y) == 0);
}

/* One run's record: the split-independent log and the state the checks need. */
typedef struct run {
    unsigned             seed;
    const unsigned char *piece; /* the bytes being fed */
    size_t               piece_n;
    sbuf_t               log;   /* "M<len>:" message, "C<op>@<pos>:<len>:" control, "P" partial */
    sbuf_t               msg;   /* the message being reassembled */
    bool                 open;  /* a message is in progress */
    uint64_t             more;  /* what the last data piece said was still to come */
    bool                 final; /* ... and its final flag */
    bool                 stopped; /* a callback returned non-zero */
    size_t               delivered; /* payload bytes handed over, data and control */
    size_t               plog_at;   /* where the "P" record starts in log (or its length) */
} run_t;

static int on_data(void *arg, const unsigned char *p, size_t n, bool first, bool final, uint64_t more)
{
    run_t *r = arg;
    CHECK(!r->stopped);
    /* the piece lies in what was just fed */
    CHECK(n == 0 || (p >= r->piece && p + n <= r->piece + r->piece_n));
    if (r->more) {
        /* the rest of the frame the previous piece was from */
        CHECK(!first && r->open);
        CHECK(n > 0);
        CHECK(final == r->final);
        CHECK(more == r->more - n);
    }
    if (first)
        CHECK(!r->open); /* first again without the end of the last message */
    else
        CHECK(r->open);  /* a piece outside any message */
    if (first) {
        r->open = true;
        sbuf_reset(&r->msg);
    }
    put(&r->msg, p, n);
    r->more = more;
    r->final = final;
    r->delivered += n;
    if (final && !more) {
        putf(&r->log, "M%llu:", r->msg.len, 0);
        put(&r->log, sbuf_data(&r->msg), r->msg.len);
        r->open = false;
        /* sometimes the application refuses a message, by what it holds */
        if ((r->seed & 2) && r->msg.len % 5 == (r->seed >> 2) % 5) {
            r->stopped = true;
            return WSF_CLOSE_TOO_BIG;
        }
    }
    return 0;
}

static int on_control(void *arg, int op, const unsigned char *p, size_t n)
{
    run_t *r = arg;
    CHECK(!r->stopped);
    CHECK(op == WSF_OP_CLOSE || op == WSF_OP_PING || op == WSF_OP_PONG);
    CHECK(n <= 125);
    CHECK(r->more == 0); /* never inside a data frame's payload */
    putf(&r->log, "C%llu@%llu:", (unsigned long long)op, r->open ? r->msg.len : ~0ULL);
    putf(&r->log, "%llu:", n, 0);
    put(&r->log, p, n);
    r->delivered += n;
    if (op == WSF_OP_CLOSE && (r->seed & 1)) {
        r->stopped = true;
        return -1; /* "stop, already handled" */
    }
    return 0;
}

static const wsf_rx_ops_t ops = {on_data, on_control};

static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Feeds in to a fresh parser: in one piece (mode 0), in pseudo-random pieces
 * (mode 1) or one byte at a time (mode 2), each piece from its own exact-size
 * heap copy. */
static int run(run_t *r, wsf_rx_t *rx, unsigned seed, const unsigned char *in, size_t n, int mode)
{
    memset(r, 0, sizeof(*r));
    sbuf_init(&r->log, 0, 0);
    sbuf_init(&r->msg, 0, 0);
    r->seed = seed;
    wsf_rx_init(rx);
    uint32_t s = (seed + 1) * 2654435761u ^ (uint32_t)n;
    if (!s)
        s = 1;
    size_t off = 0;
    int rc = 0;
    do {
        size_t k = n - off;
        if (mode == 1) {
            uint32_t x = rnd(&s);
            switch (x & 7) {
            case 0: k = 0; break;                        /* an empty feed */
            case 1: case 2: case 3: k = 1 + (x >> 3) % 3; break;
            case 4: case 5: k = 1 + (x >> 3) % 16; break;
            case 6: k = 1 + (x >> 3) % 300; break;
            default: k = 1 + (x >> 3) % 4096; break;
            }
        } else if (mode == 2) {
            k = 1;
        }
        if (k > n - off)
            k = n - off;
        unsigned char *piece = malloc(k ? k : 1);
        CHECK(piece);
        memcpy(piece, in + off, k);
        r->piece = piece;
        r->piece_n = k;
        rc = wsf_rx_feed(rx, piece, k, &ops, r);
        free(piece);
        r->piece = NULL;
        off += k;
    } while (!rc && off < n);
    CHECK(r->stopped == (rc == -1 || rc == WSF_CLOSE_TOO_BIG));
    CHECK(rc == 0 || rc == WSF_CLOSE_PROTOCOL || rc == WSF_CLOSE_INVALID || r->stopped);
    CHECK(r->delivered <= n);
    r->plog_at = r->log.len;
    if (r->open) {
        putf(&r->log, "P%llu:", r->msg.len, 0);
        put(&r->log, sbuf_data(&r->msg), r->msg.len);
    }
    return rc;
}

static void same_state(const wsf_rx_t *a, const wsf_rx_t *b)
{
    CHECK(a->hlen == b->hlen && !memcmp(a->hdr, b->hdr, a->hlen));
    CHECK(a->in_payload == b->in_payload);
    CHECK(a->msg == b->msg);
    if (a->in_payload) {
        CHECK(a->op == b->op && a->fin == b->fin && a->remain == b->remain);
        if (a->op & 0x08)
            CHECK(a->ctllen == b->ctllen && !memcmp(a->ctl, b->ctl, a->ctllen));
    }
    if (a->msg)
        CHECK(a->msg_first == b->msg_first);
}

static bool same_bytes(const sbuf_t *a, const sbuf_t *b)
{
    return a->len == b->len && (!a->len || !memcmp(sbuf_data(a), sbuf_data(b), a->len));
}

static bool same_log(const run_t *a, const run_t *b)
{
    return same_bytes(&a->log, &b->log);
}

static void free_run(run_t *r)
{
    sbuf_free(&r->log);
    sbuf_free(&r->msg);
}

/* An independent, non-incremental reading of the whole stream by RFC 6455 §5.2,
 * §5.4 and §5.5, with the same callback decisions as on_data/on_control: what
 * the log and the return value must be. A frame header cut off by the end of the
 * input is not judged, except that a set mask bit is refused as soon as the
 * second byte is there (wsframe checks it first). */
static bool close_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* How many leading bytes of s[0..n) can start a valid UTF-8 text (fed one byte at a
 * time), and in *done whether all n form a complete one. */
static size_t utf8_prefix(const unsigned char *s, size_t n, bool *done)
{
    utf8_stream_t st;
    utf8_stream_reset(&st);
    for (size_t i = 0; i < n; i++)
        if (!utf8_stream_feed(&st, s + i, 1)) {
            *done = false;
            return i;
        }
    *done = utf8_stream_complete(&st);
    return n;
}

static int reference(unsigned seed, const unsigned char *in, size_t n, sbuf_t *log, size_t *plog_at)
{
    size_t pos = 0;
    int msg = 0, rc = 0;
    bool open = false; /* a data callback was made for the message in progress */
    sbuf_t m;
    sbuf_init(&m, 0, 0);
    for (;;) {
        if (n - pos < 2)
            break;
        unsigned b0 = in[pos], b1 = in[pos + 1];
        if (b1 & 0x80) {
            rc = WSF_CLOSE_PROTOCOL;
            break;
        }
        unsigned l7 = b1 & 0x7f;
        size_t ext = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
        if (n - pos < 2 + ext)
            break;
        uint64_t len = l7;
        if (ext) {
            len = 0;
            for (size_t i = 0; i < ext; i++)
                len = len << 8 | in[pos + 2 + i];
        }
        pos += 2 + ext;
        int op = b0 & 0x0f;
        bool fin = b0 & 0x80;
        if ((b0 & 0x70) || len > INT64_MAX) {
            rc = WSF_CLOSE_PROTOCOL;
            break;
        }
        if (op == WSF_OP_CLOSE || op == WSF_OP_PING || op == WSF_OP_PONG) {
            if (!fin || len > 125) {
                rc = WSF_CLOSE_PROTOCOL;
                break;
            }
            if (n - pos < len)
                break; /* delivered only whole */
            if (op == WSF_OP_CLOSE && len) {
                bool done;
                if (len < 2 || !close_ok((unsigned)in[pos] << 8 | in[pos + 1])) {
                    rc = WSF_CLOSE_PROTOCOL;
                    break;
                }
                if (utf8_prefix(in + pos + 2, (size_t)len - 2, &done) < (size_t)len - 2 || !done) {
                    rc = WSF_CLOSE_INVALID;
                    break;
                }
            }
            putf(log, "C%llu@%llu:", (unsigned long long)op, open ? m.len : ~0ULL);
            putf(log, "%llu:", len, 0);
            put(log, in + pos, (size_t)len);
            pos += (size_t)len;
            if (op == WSF_OP_CLOSE && (seed & 1)) {
                rc = -1;
                break;
            }
            continue;
        }
        if (op == WSF_OP_CONT) {
            if (!msg) {
                rc = WSF_CLOSE_PROTOCOL;
                break;
            }
        } else if (op == WSF_OP_TEXT || op == WSF_OP_BINARY) {
            if (msg) {
                rc = WSF_CLOSE_PROTOCOL;
                break;
            }
            msg = op;
            open = false;
            sbuf_reset(&m);
        } else {
            rc = WSF_CLOSE_PROTOCOL;
            break;
        }
        size_t avail = n - pos < len ? n - pos : (size_t)len;
        if (avail || !len) {
            open = true;
            put(&m, in + pos, avail);
        }
        pos += avail;
        if (msg == WSF_OP_TEXT) {
            /* what a split run hands over of a text that turns out not to be UTF-8
             * depends on the split: the runs are checked to be prefixes of this */
            bool done;
            size_t ok = utf8_prefix((const unsigned char *)sbuf_data(&m), m.len, &done);
            if (ok < m.len || (fin && avail == len && !done)) {
                m.len = ok;
                rc = WSF_CLOSE_INVALID;
                break;
            }
        }
        if (avail < len)
            break;
        if (fin) {
            putf(log, "M%llu:", m.len, 0);
            put(log, sbuf_data(&m), m.len);
            open = false;
            msg = 0;
            if ((seed & 2) && m.len % 5 == (seed >> 2) % 5) {
                rc = WSF_CLOSE_TOO_BIG;
                break;
            }
        }
    }
    *plog_at = log->len;
    if (open || rc == WSF_CLOSE_INVALID) {
        putf(log, "P%llu:", m.len, 0);
        put(log, sbuf_data(&m), m.len);
    }
    sbuf_free(&m);
    return rc;
}

/* The "P" record of a log: the bytes of the message left open. */
static void partial(const sbuf_t *log, size_t at, const char **p, size_t *n)
{
    *p = "";
    *n = 0;
    if (log->len == at)
        return;
    const char *s = sbuf_data(log) + at, *colon = memchr(s, ':', log->len - at);
    CHECK(s[0] == 'P' && colon);
    *p = colon + 1;
    *n = log->len - at - (size_t)(colon + 1 - s);
}

/* Two logs up to their "P" records are the same, and a's partial message is a
 * prefix of want's (on a text found not to be UTF-8). */
static void same_until_invalid(const sbuf_t *a, size_t a_at, const sbuf_t *want, size_t w_at)
{
    const char *pa, *pw;
    size_t na, nw;
    CHECK(a_at == w_at && (!a_at || !memcmp(sbuf_data(a), sbuf_data(want), a_at)));
    partial(a, a_at, &pa, &na);
    partial(want, w_at, &pw, &nw);
    CHECK(na <= nw && !memcmp(pa, pw, na));
}

static void fuzz_frames(unsigned seed, const unsigned char *in, size_t n)
{
    static run_t whole, split, bytewise;
    static wsf_rx_t rx_whole, rx_split, rx_bytewise;
    int rc = run(&whole, &rx_whole, seed, in, n, 0);
    sbuf_t want;
    size_t want_at;
    sbuf_init(&want, 0, 0);
    CHECK(reference(seed, in, n, &want, &want_at) == rc);
    bool invalid = rc == WSF_CLOSE_INVALID;
    if (invalid)
        same_until_invalid(&whole.log, whole.plog_at, &want, want_at);
    else
        CHECK(same_bytes(&want, &whole.log));
    int rc2 = run(&split, &rx_split, seed, in, n, 1);
    CHECK(rc2 == rc);
    if (invalid)
        same_until_invalid(&split.log, split.plog_at, &want, want_at);
    else
        CHECK(same_log(&split, &whole));
    if (!rc)
        same_state(&rx_whole, &rx_split);
    free_run(&split);
    if (n <= 2048) {
        int rc3 = run(&bytewise, &rx_bytewise, seed, in, n, 2);
        CHECK(rc3 == rc);
        if (invalid)
            same_until_invalid(&bytewise.log, bytewise.plog_at, &want, want_at);
        else
            CHECK(same_log(&bytewise, &whole));
        if (!rc)
            same_state(&rx_whole, &rx_bytewise);
        free_run(&bytewise);
    }
    free_run(&whole);
    sbuf_free(&want);
}

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 §1.3 */
static const char ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static long answer(const unsigned char *in, size_t n, const char **why)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    memcpy(p, in, n);
    *why = NULL;
    long rc = wsf_handshake_response(p, n, KEY, why);
    free(p);
    return rc;
}

static void fuzz_handshake(const unsigned char *in, size_t n)
{
    const char *why;
    long rc = answer(in, n, &why);
    const unsigned char *blank = memmem(in, n, "\r\n\r\n", 4);
    CHECK(rc >= -1 && rc <= (long)n);
    if (!blank) {
        CHECK(rc == 0);
        return;
    }
    long hl = (long)(blank - in) + 4;
    CHECK(rc != 0);
    if (rc == -1) {
        CHECK(why && *why);
    } else {
        CHECK(rc == hl);
        CHECK(!memcmp(in, "HTTP/1.1 101", 12));
        CHECK(memmem(in, (size_t)hl, ACCEPT, sizeof(ACCEPT) - 1)); /* the right answer is there */
    }
    /* only the header block counts: the same verdict without what follows it,
     * and "need more" one byte short of it */
    CHECK(answer(in, (size_t)hl, &why) == rc);
    CHECK(answer(in, (size_t)hl - 1, &why) == 0);
}

static void fuzz_mask(unsigned seed, const unsigned char *in, size_t n)
{
    unsigned char key[4] = {(unsigned char)seed, (unsigned char)(seed * 7 + 1),
                            (unsigned char)(n), (unsigned char)(seed ^ 0xa5)};
    size_t off = seed % 8;
    unsigned char *buf = malloc(n + off + 1);
    unsigned char *ref = malloc(n + 1);
    CHECK(buf && ref);
    memcpy(buf + off, in, n);
    for (size_t i = 0; i < n; i++)
        ref[i] = in[i] ^ key[i % 4];
    wsf_mask(buf + off, n, key);
    CHECK(n == 0 || !memcmp(buf + off, ref, n));
    wsf_mask(buf + off, n, key);
    CHECK(n == 0 || !memcmp(buf + off, in, n));
    free(buf);
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    const unsigned char *in = data + 1;
    size_t n = size - 1;
    fuzz_frames(seed, in, n);
    fuzz_handshake(in, n);
    fuzz_mask(seed, in, n);
    return 0;
}
