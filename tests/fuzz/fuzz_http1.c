#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
/* fuzz_http1: the incremental response parser fed arbitrary bytes in arbitrary
 * pieces. The first input byte picks the body limit, the second seeds the split
 * points. The parser must never crash, never consume more than it was given, and —
 * for inputs without NUL bytes — reach the same outcome (result, status, body,
 * keep-alive, bytes consumed) whether fed at once, in random pieces or one byte at
 * a time.
 *
 * Differentially, against Debian's http_parser (libhttp-parser-dev, the parser
 * Node used for years) as the oracle: whenever ours accepts a response, the oracle
 * must accept the same bytes as a complete response with the same status, the
 * same body and the same length (the bytes the response took). A response whose
 * framing two parsers read two ways is how a response is smuggled, so that is
 * the property checked. Ours may refuse what the oracle accepts: it is stricter
 * on purpose (RFC 9112 §6 and §2.2), and those are the documented exceptions:
 *   - two Content-Length headers with the same value: accepted by ours (RFC 9110
 *     §8.6 allows it), refused by http_parser (HPE_UNEXPECTED_CONTENT_LENGTH);
 *   - refused by ours, accepted by http_parser: any Transfer-Encoding but a single
 *     "chunked" (we decode no other coding), TE with Content-Length, TE in
 *     HTTP/1.0, bare LF line ends, obs-fold, a 1xx or 204 with a body length,
 *     headers over 16 KiB, bodies over the limit;
 *   - a header named "Transfer-EncodingX..." is an unknown header to ours;
 *     http_parser 2.9 treats it as Transfer-Encoding and refuses it with a
 *     Content-Length (HPE_UNEXPECTED_CONTENT_LENGTH): an oracle quirk;
 *   - a tab as white space around a Content-Length value: OWS to RFC 9110,
 *     refused by http_parser 2.9 (HPE_INVALID_CONTENT_LENGTH);
 *   - a trailer field of a chunked answer that http_parser refuses (a bad
 *     Content-Length there): trailers never frame a message, ours skips them;
 *   - 1xx, 204 and 304 have no body whatever their headers say (RFC 9110 §15):
 *     the oracle is told so from on_headers_complete, as its documentation says
 *     a client must do for such responses. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1.h"

#include <http_parser.h>

#include "fuzz_check.h"

typedef struct outcome {
    int    rc;
    int    status;
    bool   keep_alive;
    size_t used;
    size_t body_len;
    char  *body;
} outcome_t;

/* Feeds p in pieces: step 0 = all at once, 1 = byte by byte, else pseudo-random
 * sizes from seed. Stops at the first DONE or ERROR; then signals EOF if needed. */
static outcome_t run(const char *p, size_t n, size_t max_body, unsigned step, unsigned seed)
{
    http1_resp_t r;
    http1_resp_init(&r, max_body);
    outcome_t o = {HTTP1_MORE, 0, false, 0, 0, NULL};
    size_t off = 0;
    while (off < n) {
        size_t len = n - off;
        if (step == 1) {
            len = 1;
        } else if (step > 1) {
            seed = seed * 1103515245u + 12345u;
            size_t want = (seed >> 16) % 64 + 1;
            len = want < len ? want : len;
        }
        /* each piece in its own allocation, so over-reads are caught */
        char *piece = malloc(len);
        CHECK(piece);
        memcpy(piece, p + off, len);
        size_t used = (size_t)-1;
        int rc = http1_resp_feed(&r, piece, len, &used);
        free(piece);
        CHECK(rc == HTTP1_MORE || rc == HTTP1_DONE || rc == HTTP1_ERROR);
        if (rc == HTTP1_ERROR) {
            CHECK(r.error != NULL);
            o.rc = rc;
            break;
        }
        CHECK(used <= len);
        off += used;
        o.used = off;
        if (rc == HTTP1_DONE) {
            o.rc = rc;
            break;
        }
        CHECK(used == len); /* MORE means everything was taken */
    }
    if (o.rc == HTTP1_MORE) {
        o.rc = http1_resp_eof(&r);
        CHECK(o.rc == HTTP1_DONE || (o.rc == HTTP1_ERROR && r.error));
    }
    if (o.rc == HTTP1_DONE) {
        o.status = r.status;
        o.keep_alive = r.keep_alive;
        CHECK(r.status >= 200 && r.status <= 999);
        CHECK(r.body.len <= max_body);
        CHECK(!(r.body_until_close && r.keep_alive));
        o.body_len = r.body.len;
        o.body = malloc(r.body.len + 1);
        CHECK(o.body);
        if (r.body.len)
            memcpy(o.body, sbuf_data(&r.body), r.body.len);
    }
    http1_resp_free(&r);
    return o;
}

static void same(const outcome_t *a, const outcome_t *b)
{
    CHECK(a->rc == b->rc);
    if (a->rc != HTTP1_DONE)
        return;
    CHECK(a->status == b->status);
    CHECK(a->keep_alive == b->keep_alive);
    CHECK(a->used == b->used);
    CHECK(a->body_len == b->body_len && !memcmp(a->body, b->body, a->body_len));
}

/* ---- the oracle ---- */

typedef struct oracle {
    int    n_cl, n_te; /* Content-Length and Transfer-Encoding headers seen */
    bool   complete;
    int    status;
    size_t body_len;
    char  *body;
    size_t cap;
} oracle_t;

static int o_header_field(http_parser *p, const char *at, size_t len)
{
    oracle_t *o = p->data;
    /* the whole input is given in one call, so each name comes in one piece */
    if (len == 14 && !strncasecmp(at, "content-length", 14))
        o->n_cl++;
    if (len == 17 && !strncasecmp(at, "transfer-encoding", 17))
        o->n_te++;
    return 0;
}

/* Whether every Content-Length line in the head of p[0..n) has the same value
 * as a number (the oracle stops at the second one, so this reads the text itself). */
static bool cl_values_equal(const char *p, size_t n)
{
    const char *end = memmem(p, n, "\r\n\r\n", 4), *first = NULL;
    size_t first_len = 0;
    if (!end)
        end = p + n;
    for (const char *l = p; l < end;) {
        const char *nl = memmem(l, (size_t)(end - l), "\r\n", 2);
        const char *le = nl ? nl : end;
        if (le - l > 15 && !strncasecmp(l, "content-length:", 15)) {
            const char *v = l + 15, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            while (ve - v > 1 && *v == '0') /* "05" and "5" are one length */
                v++;
            if (!first) {
                first = v;
                first_len = (size_t)(ve - v);
            } else if ((size_t)(ve - v) != first_len || memcmp(v, first, first_len)) {
                return false;
            }
        }
        l = nl ? nl + 2 : end;
    }
    return true;
}

/* Whether a Content-Length line of the head carries a tab as white space
 * (RFC 9110 §5.6.3 OWS; http_parser 2.9 only skips spaces there). */
static bool cl_has_tab(const char *p, size_t n)
{
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        end = p + n;
    for (const char *l = p; l < end;) {
        const char *nl = memmem(l, (size_t)(end - l), "\r\n", 2);
        const char *le = nl ? nl : end;
        if (le - l > 15 && !strncasecmp(l, "content-length:", 15) && memchr(l + 15, '\t', (size_t)(le - l - 15)))
            return true;
        l = nl ? nl + 2 : end;
    }
    return false;
}

static int o_headers_complete(http_parser *p)
{
    /* no body for 1xx, 204, 304 (what a client knows from the status) */
    return p->status_code < 200 || p->status_code == 204 || p->status_code == 304;
}

static int o_body(http_parser *p, const char *at, size_t len)
{
    oracle_t *o = p->data;
    if (o->body_len + len > o->cap) {
        size_t cap = (o->body_len + len) * 2;
        char *nb = realloc(o->body, cap);
        CHECK(nb);
        o->body = nb;
        o->cap = cap;
    }
    memcpy(o->body + o->body_len, at, len);
    o->body_len += len;
    return 0;
}

static int o_message_complete(http_parser *p)
{
    oracle_t *o = p->data;
    if (p->status_code < 200) { /* an interim answer: ours skips it too */
        o->body_len = 0;
        return 0;
    }
    o->complete = true;
    o->status = p->status_code;
    http_parser_pause(p, 1); /* one response: what follows belongs to the next */
    return 0;
}

/* Ours accepted p[0..n) as *a: the oracle must agree on status, body and length. */
static void differential(const char *p, size_t n, const outcome_t *a)
{
    http_parser_settings st;
    http_parser_settings_init(&st);
    st.on_header_field = o_header_field;
    st.on_headers_complete = o_headers_complete;
    st.on_body = o_body;
    st.on_message_complete = o_message_complete;
    http_parser hp;
    http_parser_init(&hp, HTTP_RESPONSE);
    oracle_t o = {0};
    hp.data = &o;
    size_t used = http_parser_execute(&hp, &st, p, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&hp);
    if (!o.complete && err == HPE_OK && used == n)
        http_parser_execute(&hp, &st, NULL, 0); /* EOF ends a read-until-close body */
    err = HTTP_PARSER_ERRNO(&hp);
    if ((err == HPE_UNEXPECTED_CONTENT_LENGTH && !o.n_te && (o.n_cl < 2 || cl_values_equal(p, n))) ||
        (err == HPE_INVALID_CONTENT_LENGTH && cl_has_tab(p, n)) || hp.upgrade) {
        /* exceptions: a repeated equal Content-Length (see the top); a header
         * whose name only starts with "Transfer-Encoding" (http_parser 2.9 takes
         * it for one and refuses it beside a length); an upgrade, where the
         * oracle stops parsing HTTP */
        free(o.body);
        return;
    }
    if (!o.complete && (hp.flags & F_TRAILING) && o.body_len == a->body_len &&
        (!o.body_len || !memcmp(o.body, a->body, o.body_len))) {
        /* exception: the oracle read the whole chunked body and then refused a
         * trailer field (it checks a Content-Length there); trailers never frame
         * a message (RFC 9110 §6.5.1) and ours skips them */
        free(o.body);
        return;
    }
    if (!o.complete)
        fprintf(stderr, "oracle: no complete response (%s) where ours read status %d, %zu body bytes\n",
                http_errno_name(err), a->status, a->body_len);
    CHECK(o.complete);
    CHECK(o.status == a->status);
    CHECK(o.body_len == a->body_len && (!o.body_len || !memcmp(o.body, a->body, o.body_len)));
    /* the same length: ours stops after the response, the oracle pauses there
     * (a read-until-close body ends at the end of the input for both) */
    CHECK(err == HPE_PAUSED ? used == a->used : a->used == n);
    free(o.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const size_t limits[] = {0, 1, 16, 1024, 1 << 20};
    size_t max_body = limits[data[0] % 5];
    unsigned seed = data[1];
    const char *p = (const char *)data + 2;
    size_t n = size - 2;
    if (!max_body)
        max_body = 1; /* sbuf treats 0 as its default (64 MiB): keep it small */
    outcome_t whole = run(p, n, max_body, 0, 0);
    outcome_t split = run(p, n, max_body, 2, seed);
    outcome_t bytes = run(p, n, max_body, 1, 0);
    if (!memchr(p, '\0', n)) {
        same(&whole, &split);
        same(&whole, &bytes);
        if (whole.rc == HTTP1_DONE)
            differential(p, n, &whole);
    }
    free(whole.body);
    free(split.body);
    free(bytes.body);
    return 0;
}
