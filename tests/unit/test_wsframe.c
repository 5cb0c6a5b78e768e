/* Unit tests for libmicro/wsframe.c, the client half of RFC 6455: the handshake
 * key and request, the checks on the server's 101 answer (RFC 6455 §1.3 example,
 * header name case, token lists, incomplete input, frames after the blank line,
 * every refusal), the masked header and wsf_mask against a byte-wise reference,
 * and the incremental parser wsf_rx_feed on hand-built server frames: single and
 * fragmented messages, control frames between fragments, empty frames, splitting
 * the stream anywhere (inside extended lengths, one byte at a time) gives the same
 * messages and control events, protocol errors answered with 1002, and callback
 * return values passed through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "wsframe.h"

/* ---- helpers ---- */

/* Appends to a growable byte buffer; running out of memory fails the test. */
static void put(sbuf_t *b, const void *p, size_t n)
{
    assert_int_equal(sbuf_add(b, p, n), 0);
}

static const unsigned char *bytes(const sbuf_t *b)
{
    return (const unsigned char *)sbuf_data(b);
}

/* Appends an unmasked server frame: b0 is FIN|RSV|opcode; the length takes the
 * shortest encoding. */
static void frame(sbuf_t *b, unsigned b0, const void *pl, size_t len)
{
    unsigned char h[10];
    size_t hl = 0;
    h[hl++] = (unsigned char)b0;
    if (len < 126) {
        h[hl++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        h[hl++] = 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 127;
        for (int i = 0; i < 8; i++)
            h[hl++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    put(b, h, hl);
    put(b, pl, len);
}

#define FIN 0x80u

/* What the callbacks saw. */
typedef struct event {
    char          kind; /* 'D' data, 'C' control */
    int           op;
    bool          first, final;
    uint64_t      more;
    size_t        off, n; /* the bytes, in rec_t.data */
} event_t;

typedef struct rec {
    sbuf_t   data;    /* every byte handed over, data and control, in order */
    event_t *ev;
    size_t   nev, evcap;
    int      data_rc; /* what the callbacks return ... */
    int      ctl_rc;
    size_t   rc_at;   /* ... from the rc_at-th call on (0-based, over both kinds) */
    size_t   calls;
} rec_t;

static event_t *new_event(rec_t *r)
{
    if (r->nev == r->evcap) {
        r->evcap = r->evcap ? 2 * r->evcap : 64;
        r->ev = realloc(r->ev, r->evcap * sizeof(*r->ev));
        assert_non_null(r->ev);
    }
    return &r->ev[r->nev++];
}

static int rec_data(void *arg, const unsigned char *p, size_t n, bool first, bool final,
                    uint64_t more)
{
    rec_t *r = arg;
    event_t *e = new_event(r);
    e->kind = 'D';
    e->op = 0;
    e->first = first;
    e->final = final;
    e->more = more;
    e->off = r->data.len;
    e->n = n;
    put(&r->data, p, n);
    return r->calls++ >= r->rc_at ? r->data_rc : 0;
}

static int rec_control(void *arg, int op, const unsigned char *p, size_t n)
{
    rec_t *r = arg;
    assert_true(n <= 125);
    event_t *e = new_event(r);
    e->kind = 'C';
    e->op = op;
    e->first = e->final = false;
    e->more = 0;
    e->off = r->data.len;
    e->n = n;
    put(&r->data, p, n);
    return r->calls++ >= r->rc_at ? r->ctl_rc : 0;
}

static const wsf_rx_ops_t rec_ops = {rec_data, rec_control};

static rec_t *rec_new(void)
{
    rec_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->rc_at = (size_t)-1;
    sbuf_init(&r->data, 0, 0);
    return r;
}

static void rec_free(rec_t *r)
{
    sbuf_free(&r->data);
    free(r->ev);
    free(r);
}

static const unsigned char *ev_bytes(const rec_t *r, size_t i)
{
    return bytes(&r->data) + r->ev[i].off;
}

/* Feeds the whole of b in one call. */
static int feed_whole(const sbuf_t *b, rec_t *r)
{
    wsf_rx_t rx;
    wsf_rx_init(&rx);
    return wsf_rx_feed(&rx, bytes(b), b->len, &rec_ops, r);
}

/* Feeds b in pieces of the given sizes (cycled), each from its own exact-size
 * heap copy so ASan sees reads past a piece. Stops at the first non-zero return. */
static int feed_split(const sbuf_t *b, const size_t *sizes, size_t nsizes, rec_t *r)
{
    wsf_rx_t rx;
    wsf_rx_init(&rx);
    size_t off = 0, k = 0;
    while (off < b->len) {
        size_t n = sizes[k++ % nsizes];
        if (n > b->len - off)
            n = b->len - off;
        unsigned char *piece = malloc(n ? n : 1);
        assert_non_null(piece);
        memcpy(piece, bytes(b) + off, n);
        int rc = wsf_rx_feed(&rx, piece, n, &rec_ops, r);
        free(piece);
        if (rc)
            return rc;
        off += n;
    }
    return 0;
}

/* The split-independent view of a recording: each message as its reassembled
 * bytes, each control frame as op and payload, and where each control frame came
 * relative to the bytes of a message in progress. Checks on the way that first
 * and final bracket the messages properly. */
static void summarize(const rec_t *r, sbuf_t *out)
{
    bool open = false;
    sbuf_t msg;
    sbuf_init(&msg, 0, 0);
    char tag[64];
    for (size_t i = 0; i < r->nev; i++) {
        const event_t *e = &r->ev[i];
        if (e->kind == 'C') {
            int l = snprintf(tag, sizeof(tag), "C%d@%zu:%zu:", e->op, open ? msg.len : (size_t)-1,
                             e->n);
            put(out, tag, (size_t)l);
            put(out, ev_bytes(r, i), e->n);
            continue;
        }
        if (e->first) {
            assert_false(open); /* first again without an end in between */
            open = true;
            sbuf_reset(&msg);
        } else {
            assert_true(open); /* a piece outside any message */
        }
        put(&msg, ev_bytes(r, i), e->n);
        if (e->final && !e->more) {
            int l = snprintf(tag, sizeof(tag), "M%zu:", msg.len);
            put(out, tag, (size_t)l);
            put(out, sbuf_data(&msg), msg.len);
            open = false;
        }
    }
    if (open) { /* a message cut short by the end of the stream */
        int l = snprintf(tag, sizeof(tag), "P%zu:", msg.len);
        put(out, tag, (size_t)l);
        put(out, sbuf_data(&msg), msg.len);
    }
    sbuf_free(&msg);
}

/* ---- the opening handshake ---- */

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

static void handshake_key_base64(void **state)
{
    (void)state;
    char key[25];
    memset(key, 'x', sizeof(key));
    wsf_handshake_key(key, (const unsigned char *)"the sample nonce");
    assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");

    unsigned char zero[16] = {0}, ones[16], seq[16];
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 16; i++)
        seq[i] = (unsigned char)(i * 17 + 3);
    wsf_handshake_key(key, zero);
    assert_string_equal(key, "AAAAAAAAAAAAAAAAAAAAAA==");
    wsf_handshake_key(key, ones);
    assert_string_equal(key, "/////////////////////w==");
    wsf_handshake_key(key, seq);
    assert_int_equal(strlen(key), 24);
    for (int i = 0; i < 22; i++)
        assert_true(is_b64(key[i]));
    assert_memory_equal(key + 22, "==", 2);
}

static void handshake_request_lines(void **state)
{
    (void)state;
    const char *want = "GET /mesh/v1?peer=a%20b HTTP/1.1\r\n"
                       "Host: registry.local:8443\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "\r\n";
    size_t wl = strlen(want);
    char out[512];
    memset(out, '#', sizeof(out));
    size_t n = wsf_handshake_request(out, sizeof(out), "/mesh/v1?peer=a%20b", "registry.local:8443",
                                     "dGhlIHNhbXBsZSBub25jZQ==");
    assert_int_equal(n, wl);
    assert_string_equal(out, want);

    /* exactly enough room: the text and its NUL */
    char *exact = malloc(wl + 1);
    assert_non_null(exact);
    assert_int_equal(wsf_handshake_request(exact, wl + 1, "/mesh/v1?peer=a%20b",
                                           "registry.local:8443", "dGhlIHNhbXBsZSBub25jZQ=="),
                     wl);
    assert_string_equal(exact, want);
    free(exact);
    /* any less: 0 */
    for (size_t cap = 0; cap <= wl; cap++) {
        char *small = malloc(cap ? cap : 1);
        assert_non_null(small);
        size_t got = wsf_handshake_request(small, cap, "/mesh/v1?peer=a%20b",
                                           "registry.local:8443", "dGhlIHNhbXBsZSBub25jZQ==");
        free(small);
        if (got != 0)
            fail_msg("cap %zu: returned %zu, want 0", cap, got);
    }
}

static const char RFC_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char RFC_ANSWER[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                 "\r\n";

/* wsf_handshake_response on an exact-size heap copy of text. */
static long answer(const char *text, size_t n, const char **why)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, text, n);
    long rc = wsf_handshake_response(p, n, RFC_KEY, why);
    free(p);
    return rc;
}

static void handshake_response_accepts(void **state)
{
    (void)state;
    static const char *const ok[] = {
        RFC_ANSWER,
        "HTTP/1.1 101 Switching Protocols\r\n"
        "upgrade: WebSocket\r\n"
        "CONNECTION: keep-alive, Upgrade\r\n"
        "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n",
        "HTTP/1.1 101\r\n"
        "Server: x\r\n"
        "SEC-WEBSOCKET-ACCEPT:s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n"
        "Connection: upgrade , keep-alive\r\n"
        "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
        "UPGRADE:\twebsocket\r\n"
        "\r\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *why = NULL;
        long rc = answer(ok[i], strlen(ok[i]), &why);
        if (rc != (long)strlen(ok[i]))
            fail_msg("ok[%zu]: returned %ld (%s), want %zu", i, rc, why ? why : "-",
                     strlen(ok[i]));
    }
}

static void handshake_response_incomplete(void **state)
{
    (void)state;
    size_t n = strlen(RFC_ANSWER);
    for (size_t cut = 0; cut < n; cut++) {
        const char *why = NULL;
        long rc = answer(RFC_ANSWER, cut, &why);
        if (rc != 0)
            fail_msg("prefix of %zu bytes: returned %ld, want 0", cut, rc);
    }
    const char *why = NULL;
    assert_int_equal(answer(RFC_ANSWER, n, &why), (long)n);
}

static void handshake_response_frames_follow(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    size_t hl = strlen(RFC_ANSWER);
    put(&b, RFC_ANSWER, hl);
    frame(&b, FIN | WSF_OP_TEXT, "hello", 5);
    frame(&b, FIN | WSF_OP_PING, "\r\n\r\n", 4); /* a blank line inside the frames */
    const char *why = NULL;
    assert_int_equal(answer(sbuf_data(&b), b.len, &why), (long)hl);
    /* and every prefix that holds the header block */
    for (size_t n = hl; n <= b.len; n++)
        assert_int_equal(answer(sbuf_data(&b), n, &why), (long)hl);
    sbuf_free(&b);
}

static void handshake_response_refusals(void **state)
{
    (void)state;
#define ACC "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CON "Connection: Upgrade\r\n"
#define ST  "HTTP/1.1 101 Switching Protocols\r\n"
    static const char *const bad[] = {
        /* wrong accept values */
        ST UPG CON "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOp=\r\n\r\n",
        ST UPG CON "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n\r\n",
        ST UPG CON "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n\r\n",
        ST UPG CON "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ST UPG CON "Sec-WebSocket-Accept:\r\n\r\n",
        /* a missing header */
        ST CON ACC "\r\n",
        ST UPG ACC "\r\n",
        ST UPG CON "\r\n",
        ST "\r\n",
        /* wrong values */
        ST "Upgrade: h2c\r\n" CON ACC "\r\n",
        ST "Upgrade: websockets\r\n" CON ACC "\r\n",
        ST UPG "Connection: keep-alive\r\n" ACC "\r\n",
        ST UPG "Connection: upgraded\r\n" ACC "\r\n",
        /* not a 101 */
        "HTTP/1.1 403 Forbidden\r\n" UPG CON ACC "\r\n",
        "HTTP/1.1 200 OK\r\n" UPG CON ACC "\r\n",
        "HTTP/1.1 1010 Switching\r\n" UPG CON ACC "\r\n",
        "HTTP/1.1 10 Switching\r\n" UPG CON ACC "\r\n",
        /* not HTTP/1.1 */
        "HTTP/1.0 101 Switching Protocols\r\n" UPG CON ACC "\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "\r\n\r\n",
        "<html>\r\n\r\n",
        "http/1.1 101 Switching Protocols\r\n" UPG CON ACC "\r\n",
        /* an extension or subprotocol we never offered */
        ST UPG CON ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        ST UPG CON ACC "sec-websocket-protocol: chat\r\n\r\n",
        ST "Sec-WebSocket-Protocol: chat\r\n" UPG CON ACC "\r\n",
        /* a header line without a colon */
        ST UPG CON "Garbage line\r\n" ACC "\r\n",
        ST UPG CON ACC "x\r\n\r\n",
    };
#undef ACC
#undef UPG
#undef CON
#undef ST
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        long rc = answer(bad[i], strlen(bad[i]), &why);
        if (rc != -1)
            fail_msg("bad[%zu]: returned %ld, want -1: %s", i, rc, bad[i]);
        if (!why || !*why)
            fail_msg("bad[%zu]: why not set", i);
    }
}

/* ---- frames to the server ---- */

static void header_encodings(void **state)
{
    (void)state;
    static const unsigned char key[4] = {0xa1, 0x02, 0xf3, 0x44};
    struct {
        int           op;
        uint64_t      len;
        size_t        size;
        unsigned char want[WSF_HDR_MAX];
    } cases[] = {
        {WSF_OP_TEXT, 0, 6, {0x81, 0x80, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_BINARY, 1, 6, {0x82, 0x81, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_TEXT, 125, 6, {0x81, 0xfd, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_BINARY, 126, 8, {0x82, 0xfe, 0x00, 0x7e, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_TEXT, 65535, 8, {0x81, 0xfe, 0xff, 0xff, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_TEXT, 65536, 14,
         {0x81, 0xff, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_BINARY, 0x0123456789abcdefULL, 14,
         {0x82, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_CLOSE, 2, 6, {0x88, 0x82, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_PING, 0, 6, {0x89, 0x80, 0xa1, 0x02, 0xf3, 0x44}},
        {WSF_OP_PONG, 125, 6, {0x8a, 0xfd, 0xa1, 0x02, 0xf3, 0x44}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char h[WSF_HDR_MAX + 2];
        memset(h, 0xee, sizeof(h));
        size_t n = wsf_header(h, cases[i].op, cases[i].len, key);
        if (n != cases[i].size)
            fail_msg("case %zu: size %zu, want %zu", i, n, cases[i].size);
        assert_memory_equal(h, cases[i].want, n);
        for (size_t k = n; k < sizeof(h); k++)
            assert_int_equal(h[k], 0xee); /* nothing written past it */
        /* what a server reads back from it */
        assert_true(h[0] & 0x80);
        assert_int_equal(h[0] & 0x70, 0);
        assert_int_equal(h[0] & 0x0f, cases[i].op);
        assert_true(h[1] & 0x80);
    }
}

static void mask_reference(void **state)
{
    (void)state;
    static const unsigned char keys[][4] = {
        {0x37, 0xfa, 0x21, 0x3d}, {0, 0, 0, 0}, {0xff, 0x00, 0xff, 0x00}, {1, 2, 3, 4}};
    unsigned char orig[64 + 8], buf[64 + 8], ref[64 + 8];
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (unsigned char)(i * 31 + 7);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        for (size_t off = 0; off < 8; off++)
            for (size_t n = 0; n <= 40; n++) {
                memcpy(buf, orig, sizeof(buf));
                memcpy(ref, orig, sizeof(ref));
                for (size_t i = 0; i < n; i++)
                    ref[off + i] ^= keys[k][i % 4];
                wsf_mask(buf + off, n, keys[k]);
                if (memcmp(buf, ref, sizeof(buf)))
                    fail_msg("key %zu, offset %zu, length %zu: differs from byte-wise XOR", k,
                             off, n);
                wsf_mask(buf + off, n, keys[k]);
                if (memcmp(buf, orig, sizeof(buf)))
                    fail_msg("key %zu, offset %zu, length %zu: masking twice is not identity",
                             k, off, n);
            }
    /* a non-trivial key must change every byte of the payload */
    memcpy(buf, orig, sizeof(buf));
    wsf_mask(buf + 3, 33, keys[0]);
    for (size_t i = 3; i < 36; i++)
        assert_int_not_equal(buf[i], orig[i]);
}

/* ---- frames from the server ---- */

static void rx_single_text(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    frame(&b, FIN | WSF_OP_TEXT, "hello, world", 12);
    rec_t *r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    assert_int_equal(r->nev, 1);
    assert_int_equal(r->ev[0].kind, 'D');
    assert_true(r->ev[0].first);
    assert_true(r->ev[0].final);
    assert_int_equal(r->ev[0].more, 0);
    assert_int_equal(r->ev[0].n, 12);
    assert_memory_equal(ev_bytes(r, 0), "hello, world", 12);
    rec_free(r);

    /* two pieces of one frame: `more` counts what is still to come */
    r = rec_new();
    size_t sizes[] = {2 + 5, 100};
    assert_int_equal(feed_split(&b, sizes, 2, r), 0);
    assert_int_equal(r->nev, 2);
    assert_true(r->ev[0].first && r->ev[0].final);
    assert_int_equal(r->ev[0].n, 5);
    assert_int_equal(r->ev[0].more, 7);
    assert_memory_equal(ev_bytes(r, 0), "hello", 5);
    assert_true(!r->ev[1].first && r->ev[1].final);
    assert_int_equal(r->ev[1].n, 7);
    assert_int_equal(r->ev[1].more, 0);
    assert_memory_equal(ev_bytes(r, 1), ", world", 7);
    rec_free(r);

    /* a binary message, then another one: each starts afresh */
    sbuf_reset(&b);
    frame(&b, FIN | WSF_OP_BINARY, "\x00\xff\x01", 3);
    frame(&b, FIN | WSF_OP_TEXT, "x", 1);
    r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    assert_int_equal(r->nev, 2);
    assert_true(r->ev[0].first && r->ev[0].final && !r->ev[0].more);
    assert_memory_equal(ev_bytes(r, 0), "\x00\xff\x01", 3);
    assert_true(r->ev[1].first && r->ev[1].final && !r->ev[1].more);
    assert_memory_equal(ev_bytes(r, 1), "x", 1);
    rec_free(r);
    sbuf_free(&b);
}

static void rx_fragmented(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    frame(&b, WSF_OP_TEXT, "Hel", 3);
    frame(&b, WSF_OP_CONT, "lo, ", 4);
    frame(&b, FIN | WSF_OP_CONT, "world", 5);
    frame(&b, FIN | WSF_OP_BINARY, "next", 4); /* a new message may follow */
    rec_t *r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    assert_int_equal(r->nev, 4);
    static const struct { const char *s; bool first, final; } want[] = {
        {"Hel", true, false}, {"lo, ", false, false}, {"world", false, true}, {"next", true, true}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(r->ev[i].kind, 'D');
        assert_int_equal(r->ev[i].n, strlen(want[i].s));
        assert_memory_equal(ev_bytes(r, i), want[i].s, r->ev[i].n);
        assert_int_equal(r->ev[i].first, want[i].first);
        assert_int_equal(r->ev[i].final, want[i].final);
        assert_int_equal(r->ev[i].more, 0);
    }
    rec_free(r);
    sbuf_free(&b);
}

static void rx_ping_between_fragments(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    frame(&b, WSF_OP_BINARY, "ab", 2);
    frame(&b, FIN | WSF_OP_PING, "are you there", 13);
    frame(&b, WSF_OP_CONT, "cd", 2);
    frame(&b, FIN | WSF_OP_PONG, "", 0);
    frame(&b, FIN | WSF_OP_CONT, "ef", 2);
    rec_t *r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    assert_int_equal(r->nev, 5);
    assert_int_equal(r->ev[0].kind, 'D');
    assert_true(r->ev[0].first && !r->ev[0].final);
    assert_memory_equal(ev_bytes(r, 0), "ab", 2);
    assert_int_equal(r->ev[1].kind, 'C');
    assert_int_equal(r->ev[1].op, WSF_OP_PING);
    assert_int_equal(r->ev[1].n, 13);
    assert_memory_equal(ev_bytes(r, 1), "are you there", 13);
    assert_int_equal(r->ev[2].kind, 'D');
    assert_true(!r->ev[2].first && !r->ev[2].final);
    assert_memory_equal(ev_bytes(r, 2), "cd", 2);
    assert_int_equal(r->ev[3].kind, 'C');
    assert_int_equal(r->ev[3].op, WSF_OP_PONG);
    assert_int_equal(r->ev[3].n, 0);
    assert_int_equal(r->ev[4].kind, 'D');
    assert_true(!r->ev[4].first && r->ev[4].final && !r->ev[4].more);
    assert_memory_equal(ev_bytes(r, 4), "ef", 2);
    rec_free(r);
    sbuf_free(&b);
}

static void rx_empty_frames(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    frame(&b, FIN | WSF_OP_TEXT, "", 0);
    rec_t *r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    assert_int_equal(r->nev, 1);
    assert_int_equal(r->ev[0].kind, 'D');
    assert_true(r->ev[0].first && r->ev[0].final);
    assert_int_equal(r->ev[0].more, 0);
    assert_int_equal(r->ev[0].n, 0);
    rec_free(r);

    /* byte by byte: still exactly one call, on the second byte */
    r = rec_new();
    wsf_rx_t rx;
    wsf_rx_init(&rx);
    assert_int_equal(wsf_rx_feed(&rx, bytes(&b), 1, &rec_ops, r), 0);
    assert_int_equal(r->nev, 0);
    assert_int_equal(wsf_rx_feed(&rx, bytes(&b) + 1, 1, &rec_ops, r), 0);
    assert_int_equal(r->nev, 1);
    assert_int_equal(wsf_rx_feed(&rx, NULL, 0, &rec_ops, r), 0);
    assert_int_equal(r->nev, 1);
    rec_free(r);

    /* empty first and last fragments around a non-empty one */
    sbuf_reset(&b);
    frame(&b, WSF_OP_TEXT, "", 0);
    frame(&b, WSF_OP_CONT, "mid", 3);
    frame(&b, FIN | WSF_OP_CONT, "", 0);
    r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    assert_int_equal(r->nev, 3);
    assert_true(r->ev[0].first && !r->ev[0].final && r->ev[0].n == 0);
    assert_true(!r->ev[1].first && !r->ev[1].final && r->ev[1].n == 3);
    assert_true(!r->ev[2].first && r->ev[2].final && r->ev[2].n == 0 && !r->ev[2].more);
    rec_free(r);
    sbuf_free(&b);
}

static void rx_close(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    frame(&b, FIN | WSF_OP_CLOSE, "\x03\xe9going away", 12); /* 1001 */
    frame(&b, FIN | WSF_OP_CLOSE, "", 0);
    rec_t *r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    assert_int_equal(r->nev, 2);
    assert_int_equal(r->ev[0].kind, 'C');
    assert_int_equal(r->ev[0].op, WSF_OP_CLOSE);
    assert_int_equal(r->ev[0].n, 12);
    const unsigned char *p = ev_bytes(r, 0);
    assert_int_equal(p[0] << 8 | p[1], 1001);
    assert_memory_equal(p + 2, "going away", 10);
    assert_int_equal(r->ev[1].kind, 'C');
    assert_int_equal(r->ev[1].op, WSF_OP_CLOSE);
    assert_int_equal(r->ev[1].n, 0);
    rec_free(r);

    /* the largest control payload, 125 bytes, split in three */
    sbuf_reset(&b);
    unsigned char big[125];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i ^ 0x5a);
    frame(&b, FIN | WSF_OP_PING, big, sizeof(big));
    r = rec_new();
    size_t sizes[] = {1, 40, 1000};
    assert_int_equal(feed_split(&b, sizes, 3, r), 0);
    assert_int_equal(r->nev, 1);
    assert_int_equal(r->ev[0].op, WSF_OP_PING);
    assert_int_equal(r->ev[0].n, 125);
    assert_memory_equal(ev_bytes(r, 0), big, 125);
    rec_free(r);
    sbuf_free(&b);
}

/* A stream with a bit of everything, for the split tests. */
static void mixed_stream(sbuf_t *b)
{
    static unsigned char pl[70000];
    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (unsigned char)(i * 7 + (i >> 8));
    frame(b, FIN | WSF_OP_TEXT, "one", 3);
    frame(b, WSF_OP_TEXT, "tw", 2);
    frame(b, FIN | WSF_OP_PING, "p1", 2);
    frame(b, WSF_OP_CONT, "", 0);
    frame(b, FIN | WSF_OP_PONG, "", 0);
    frame(b, FIN | WSF_OP_CONT, "o", 1);
    frame(b, FIN | WSF_OP_BINARY, pl, 300);           /* 16-bit length */
    frame(b, WSF_OP_BINARY, pl + 1, 126);              /* 16-bit, the smallest */
    frame(b, FIN | WSF_OP_PING, pl, 125);
    frame(b, FIN | WSF_OP_CONT, pl + 2, 65535);        /* 16-bit, the largest */
    frame(b, FIN | WSF_OP_TEXT, "", 0);
    frame(b, FIN | WSF_OP_BINARY, pl + 3, 65536);      /* 64-bit length */
    frame(b, WSF_OP_BINARY, pl, 125);                 /* not UTF-8: binary */
    frame(b, FIN | WSF_OP_CONT, pl, 1);
    frame(b, FIN | WSF_OP_CLOSE, "\x03\xe8", 2);
}

static void check_same_as_whole(const sbuf_t *b, const size_t *sizes, size_t nsizes,
                                const sbuf_t *want, int want_rc, const char *what)
{
    rec_t *r = rec_new();
    int rc = feed_split(b, sizes, nsizes, r);
    if (rc != want_rc)
        fail_msg("%s: returned %d, whole %d", what, rc, want_rc);
    sbuf_t got;
    sbuf_init(&got, 0, 0);
    summarize(r, &got);
    if (got.len != want->len || (got.len && memcmp(sbuf_data(&got), sbuf_data(want), got.len)))
        fail_msg("%s: the messages or control frames differ from feeding it whole", what);
    sbuf_free(&got);
    rec_free(r);
}

static void rx_split_anywhere(void **state)
{
    (void)state;
    sbuf_t b, want;
    sbuf_init(&b, 0, 0);
    sbuf_init(&want, 0, 0);
    mixed_stream(&b);
    rec_t *r = rec_new();
    assert_int_equal(feed_whole(&b, r), 0);
    summarize(r, &want);
    /* what feeding it whole gives, spelled out */
    assert_int_equal(r->nev, 15);
    size_t ctl = 0, msgs = 0;
    for (size_t i = 0; i < r->nev; i++) {
        ctl += r->ev[i].kind == 'C';
        msgs += r->ev[i].kind == 'D' && r->ev[i].final && !r->ev[i].more;
    }
    assert_int_equal(ctl, 4);
    assert_int_equal(msgs, 7);
    assert_memory_equal(sbuf_data(&want), "M3:oneC9@2:2:p1C10@2:0:M3:two", 29);
    rec_free(r);

    size_t one[] = {1};
    check_same_as_whole(&b, one, 1, &want, 0, "one byte at a time");
    size_t odd[] = {3, 1, 7, 2, 13, 127, 5, 1, 1, 4096, 9};
    check_same_as_whole(&b, odd, sizeof(odd) / sizeof(odd[0]), &want, 0, "odd pieces");
    size_t halves[] = {b.len / 2, b.len};
    check_same_as_whole(&b, halves, 2, &want, 0, "two halves");
    sbuf_free(&want);
    sbuf_free(&b);
}

/* Every single split point of frames with 16- and 64-bit lengths, so the split
 * falls inside the extended length (and the header and payload). */
static void rx_split_in_extended_length(void **state)
{
    (void)state;
    static unsigned char pl[65536 + 10];
    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (unsigned char)(i * 13 + 1);
    const size_t lens[] = {126, 65535, 65536};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        frame(&b, FIN | WSF_OP_BINARY, pl, lens[l]);
        frame(&b, FIN | WSF_OP_PING, "x", 1);
        size_t hl = lens[l] > 0xffff ? 10 : 4;
        assert_int_equal(b.len, hl + lens[l] + 3);
        for (size_t cut = 1; cut <= hl + 2; cut++) {
            rec_t *r = rec_new();
            size_t sizes[] = {cut, b.len};
            assert_int_equal(feed_split(&b, sizes, 2, r), 0);
            /* the header was whole only after the cut: one piece, or two when the
             * cut falls in the payload */
            size_t want_data = cut > hl ? 2 : 1;
            assert_int_equal(r->nev, want_data + 1);
            size_t got = 0;
            for (size_t i = 0; i < want_data; i++) {
                assert_int_equal(r->ev[i].kind, 'D');
                assert_int_equal(r->ev[i].first, i == 0);
                assert_true(r->ev[i].final);
                got += r->ev[i].n;
                assert_int_equal(r->ev[i].more, lens[l] - got);
            }
            assert_int_equal(got, lens[l]);
            assert_memory_equal(ev_bytes(r, 0), pl, lens[l]);
            assert_int_equal(r->ev[want_data].kind, 'C');
            assert_int_equal(r->ev[want_data].n, 1);
            rec_free(r);
        }
        sbuf_free(&b);
    }
}

typedef struct bad_stream {
    const char   *what;
    unsigned char b[24];
    size_t        n;
    size_t        events; /* callbacks made before the error */
} bad_stream_t;

static void rx_protocol_errors(void **state)
{
    (void)state;
    static const bad_stream_t bad[] = {
        {"masked frame", {0x81, 0x83, 1, 2, 3, 4, 'a', 'b', 'c'}, 9, 0},
        {"masked empty frame", {0x81, 0x80, 1, 2, 3, 4}, 6, 0},
        {"RSV1", {0xc1, 0x01, 'a'}, 3, 0},
        {"RSV2", {0xa1, 0x01, 'a'}, 3, 0},
        {"RSV3", {0x91, 0x01, 'a'}, 3, 0},
        {"opcode 3", {0x83, 0x00}, 2, 0},
        {"opcode 7", {0x87, 0x00}, 2, 0},
        {"opcode 0xb", {0x8b, 0x00}, 2, 0},
        {"opcode 0xf", {0x8f, 0x00}, 2, 0},
        {"ping of 126 bytes", {0x89, 0x7e, 0x00, 0x7e}, 4, 0},
        {"close of 64-bit length", {0x88, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x7e}, 10, 0},
        {"ping without FIN", {0x09, 0x01, 'p'}, 3, 0},
        {"close without FIN", {0x08, 0x00}, 2, 0},
        {"continuation first", {0x80, 0x01, 'a'}, 3, 0},
        {"continuation after a whole message", {0x81, 0x01, 'a', 0x80, 0x01, 'b'}, 6, 1},
        {"continuation after the last fragment",
         {0x01, 0x01, 'a', 0x80, 0x01, 'b', 0x00, 0x01, 'c'}, 9, 2},
        {"text inside a fragmented message", {0x01, 0x01, 'a', 0x81, 0x01, 'b'}, 6, 1},
        {"binary inside a fragmented message", {0x02, 0x01, 'a', 0x02, 0x01, 'b'}, 6, 1},
        {"text after ping inside a fragmented message",
         {0x01, 0x01, 'a', 0x89, 0x00, 0x81, 0x00}, 7, 2},
        {"64-bit length with the top bit", {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1, 'a'}, 11, 0},
        {"64-bit length all ones", {0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
         10, 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        put(&b, bad[i].b, bad[i].n);
        rec_t *r = rec_new();
        int rc = feed_whole(&b, r);
        if (rc != WSF_CLOSE_PROTOCOL)
            fail_msg("%s: returned %d, want %d", bad[i].what, rc, WSF_CLOSE_PROTOCOL);
        if (r->nev != bad[i].events)
            fail_msg("%s: %zu callbacks, want %zu", bad[i].what, r->nev, bad[i].events);
        rec_free(r);
        /* and byte by byte */
        r = rec_new();
        size_t one[] = {1};
        rc = feed_split(&b, one, 1, r);
        if (rc != WSF_CLOSE_PROTOCOL)
            fail_msg("%s, byte by byte: returned %d, want %d", bad[i].what, rc,
                     WSF_CLOSE_PROTOCOL);
        rec_free(r);
        sbuf_free(&b);
    }

    /* the frames just inside the limits are fine */
    static const bad_stream_t good[] = {
        {"64-bit length below the top bit", {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                             0xff, 'a'}, 11, 1},
        {"empty close", {0x88, 0x00}, 2, 1},
        {"fragmented then whole", {0x01, 0x01, 'a', 0x80, 0x01, 'b', 0x81, 0x00}, 8, 3},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        put(&b, good[i].b, good[i].n);
        rec_t *r = rec_new();
        int rc = feed_whole(&b, r);
        if (rc != 0)
            fail_msg("%s: returned %d, want 0", good[i].what, rc);
        if (r->nev != good[i].events)
            fail_msg("%s: %zu callbacks, want %zu", good[i].what, r->nev, good[i].events);
        rec_free(r);
        sbuf_free(&b);
    }
}

static void rx_callback_return_values(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    frame(&b, FIN | WSF_OP_TEXT, "first", 5);
    frame(&b, FIN | WSF_OP_TEXT, "second", 6);
    frame(&b, FIN | WSF_OP_PING, "p", 1);
    frame(&b, FIN | WSF_OP_TEXT, "third", 5);

    /* data says 1009 on its second call: the feed stops there */
    rec_t *r = rec_new();
    r->data_rc = WSF_CLOSE_TOO_BIG;
    r->rc_at = 1;
    assert_int_equal(feed_whole(&b, r), WSF_CLOSE_TOO_BIG);
    assert_int_equal(r->nev, 2);
    assert_memory_equal(ev_bytes(r, 1), "second", 6);
    rec_free(r);

    /* -1 from the very first data call */
    r = rec_new();
    r->data_rc = -1;
    r->rc_at = 0;
    assert_int_equal(feed_whole(&b, r), -1);
    assert_int_equal(r->nev, 1);
    rec_free(r);

    /* a control callback's value */
    r = rec_new();
    r->ctl_rc = WSF_CLOSE_NORMAL;
    r->rc_at = 0;
    assert_int_equal(feed_whole(&b, r), WSF_CLOSE_NORMAL);
    assert_int_equal(r->nev, 3);
    assert_int_equal(r->ev[2].kind, 'C');
    rec_free(r);

    r = rec_new();
    r->ctl_rc = -1;
    r->rc_at = 0;
    size_t one[] = {1};
    assert_int_equal(feed_split(&b, one, 1, r), -1);
    assert_int_equal(r->ev[r->nev - 1].kind, 'C');
    rec_free(r);

    /* a zero-length frame's callback counts too */
    sbuf_reset(&b);
    frame(&b, FIN | WSF_OP_BINARY, "", 0);
    r = rec_new();
    r->data_rc = 4000;
    r->rc_at = 0;
    assert_int_equal(feed_whole(&b, r), 4000);
    rec_free(r);
    sbuf_free(&b);
}

/* Feeds b whole and then byte by byte into a parser with max_msg; both must agree. */
static int feed_limited(const sbuf_t *b, uint64_t max_msg, rec_t *r, size_t *events_one)
{
    wsf_rx_t rx;
    wsf_rx_init(&rx);
    rx.max_msg = max_msg;
    int rc = wsf_rx_feed(&rx, bytes(b), b->len, &rec_ops, r);
    rec_t *r1 = rec_new();
    wsf_rx_init(&rx);
    rx.max_msg = max_msg;
    int rc1 = 0;
    for (size_t i = 0; i < b->len && !rc1; i++)
        rc1 = wsf_rx_feed(&rx, bytes(b) + i, 1, &rec_ops, r1);
    assert_int_equal(rc1, rc);
    if (events_one)
        *events_one = r1->nev;
    rec_free(r1);
    return rc;
}

static void rx_text_must_be_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *parts[3]; /* fragments of one text message */
        size_t lens[3];
        int rc;
    } cases[] = {
        {"ascii", {"hello"}, {5}, 0},
        {"two- to four-byte sequences", {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}, {9}, 0},
        {"a sequence split over fragments", {"a\xe2", "\x82", "\xac"}, {2, 1, 1}, 0},
        {"NUL is UTF-8", {"a\0b"}, {3}, 0},
        {"0xff", {"a\xff"}, {2}, WSF_CLOSE_INVALID},
        {"a lone continuation byte", {"\x80"}, {1}, WSF_CLOSE_INVALID},
        {"overlong '/'", {"\xc0\xaf"}, {2}, WSF_CLOSE_INVALID},
        {"overlong three bytes", {"\xe0\x80\xaf"}, {3}, WSF_CLOSE_INVALID},
        {"overlong four bytes", {"\xf0\x80\x80\xaf"}, {4}, WSF_CLOSE_INVALID},
        {"a surrogate", {"\xed\xa0\x80"}, {3}, WSF_CLOSE_INVALID},
        {"past U+10FFFF", {"\xf4\x90\x80\x80"}, {4}, WSF_CLOSE_INVALID},
        {"a sequence cut at the message end", {"ok\xe2\x82"}, {4}, WSF_CLOSE_INVALID},
        {"cut at the end of the last fragment", {"a", "\xc3"}, {1, 1}, WSF_CLOSE_INVALID},
        {"bad in a later fragment", {"fine", "\xfe"}, {4, 1}, WSF_CLOSE_INVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        size_t np = 0;
        while (np < 3 && cases[i].parts[np])
            np++;
        for (size_t k = 0; k < np; k++)
            frame(&b, (k + 1 == np ? FIN : 0) | (k ? WSF_OP_CONT : WSF_OP_TEXT), cases[i].parts[k],
                  cases[i].lens[k]);
        rec_t *r = rec_new();
        int rc = feed_limited(&b, 0, r, NULL);
        if (rc != cases[i].rc)
            fail_msg("%s: returned %d, want %d", cases[i].what, rc, cases[i].rc);
        /* nothing of a bad piece is delivered */
        size_t got = 0;
        for (size_t k = 0; k < r->nev; k++)
            got += r->ev[k].n;
        if (!rc) {
            size_t want = 0;
            for (size_t k = 0; k < np; k++)
                want += cases[i].lens[k];
            assert_int_equal(got, want);
        }
        rec_free(r);
        sbuf_free(&b);
    }
    /* binary frames are not text: any bytes */
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    frame(&b, FIN | WSF_OP_BINARY, "\xff\xfe\xc0", 3);
    rec_t *r = rec_new();
    assert_int_equal(feed_limited(&b, 0, r, NULL), 0);
    assert_int_equal(r->nev, 1);
    rec_free(r);
    /* a text message after a bad-looking binary one starts clean */
    frame(&b, FIN | WSF_OP_TEXT, "\xc3\xa9", 2);
    r = rec_new();
    assert_int_equal(feed_limited(&b, 0, r, NULL), 0);
    assert_int_equal(r->nev, 2);
    rec_free(r);
    sbuf_free(&b);
}

static void rx_close_payload_checked(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *pl;
        size_t n;
        int rc;
    } cases[] = {
        {"no payload", "", 0, 0},
        {"1000", "\x03\xe8", 2, 0},
        {"1001 with a reason", "\x03\xe9going away", 12, 0},
        {"1000 with a UTF-8 reason", "\x03\xe8\xc3\xa9t\xc3\xa9", 7, 0},
        {"4999", "\x13\x87", 2, 0},
        {"3000", "\x0b\xb8", 2, 0},
        {"a reason that is not UTF-8", "\x03\xe8\xff\xfe", 4, WSF_CLOSE_INVALID},
        {"a reason cut inside a sequence", "\x03\xe8" "ab\xe2\x82", 6, WSF_CLOSE_INVALID},
        {"one byte", "\x03", 1, WSF_CLOSE_PROTOCOL},
        {"code 999", "\x03\xe7", 2, WSF_CLOSE_PROTOCOL},
        {"code 1004", "\x03\xec", 2, WSF_CLOSE_PROTOCOL},
        {"code 1005 (report only)", "\x03\xed", 2, WSF_CLOSE_PROTOCOL},
        {"code 1006 (report only)", "\x03\xee", 2, WSF_CLOSE_PROTOCOL},
        {"code 1015 (report only)", "\x03\xf7", 2, WSF_CLOSE_PROTOCOL},
        {"code 5000", "\x13\x88", 2, WSF_CLOSE_PROTOCOL},
        {"code 0", "\x00\x00", 2, WSF_CLOSE_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        frame(&b, FIN | WSF_OP_CLOSE, cases[i].pl, cases[i].n);
        rec_t *r = rec_new();
        int rc = feed_limited(&b, 0, r, NULL);
        if (rc != cases[i].rc)
            fail_msg("close %s: returned %d, want %d", cases[i].what, rc, cases[i].rc);
        assert_int_equal(r->nev, rc ? 0 : 1); /* a bad close is not handed over */
        rec_free(r);
        sbuf_free(&b);
    }
}

static void rx_too_big_on_the_header(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    /* 2^63-1 announced, no payload: refused on the header, not waited for */
    static const unsigned char huge[] = {0x81, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    put(&b, huge, sizeof(huge));
    rec_t *r = rec_new();
    assert_int_equal(feed_limited(&b, 1 << 20, r, NULL), WSF_CLOSE_TOO_BIG);
    assert_int_equal(r->nev, 0);
    rec_free(r);
    r = rec_new(); /* without a limit the parser just waits for the payload */
    assert_int_equal(feed_limited(&b, 0, r, NULL), 0);
    rec_free(r);
    /* fragments count together: 600 + 600 > 1000 is refused at the second header */
    sbuf_reset(&b);
    static unsigned char pl[600];
    memset(pl, 'a', sizeof(pl));
    frame(&b, WSF_OP_TEXT, pl, 600);
    frame(&b, FIN | WSF_OP_PING, "", 0);
    frame(&b, FIN | WSF_OP_CONT, pl, 600);
    r = rec_new();
    size_t one = 0;
    assert_int_equal(feed_limited(&b, 1000, r, &one), WSF_CLOSE_TOO_BIG);
    assert_int_equal(r->nev, 2); /* the first fragment and the ping */
    rec_free(r);
    /* exactly the limit is fine, and the next message starts from 0 */
    sbuf_reset(&b);
    frame(&b, WSF_OP_TEXT, pl, 400);
    frame(&b, FIN | WSF_OP_CONT, pl, 600);
    frame(&b, FIN | WSF_OP_TEXT, pl, 600);
    frame(&b, FIN | WSF_OP_PING, pl, 125); /* control frames do not count */
    r = rec_new();
    assert_int_equal(feed_limited(&b, 1000, r, NULL), 0);
    rec_free(r);
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rx_text_must_be_utf8),
        cmocka_unit_test(rx_close_payload_checked),
        cmocka_unit_test(rx_too_big_on_the_header),
        cmocka_unit_test(handshake_key_base64),
        cmocka_unit_test(handshake_request_lines),
        cmocka_unit_test(handshake_response_accepts),
        cmocka_unit_test(handshake_response_incomplete),
        cmocka_unit_test(handshake_response_frames_follow),
        cmocka_unit_test(handshake_response_refusals),
        cmocka_unit_test(header_encodings),
        cmocka_unit_test(mask_reference),
        cmocka_unit_test(rx_single_text),
        cmocka_unit_test(rx_fragmented),
        cmocka_unit_test(rx_ping_between_fragments),
        cmocka_unit_test(rx_empty_frames),
        cmocka_unit_test(rx_close),
        cmocka_unit_test(rx_split_anywhere),
        cmocka_unit_test(rx_split_in_extended_length),
        cmocka_unit_test(rx_protocol_errors),
        cmocka_unit_test(rx_callback_return_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
