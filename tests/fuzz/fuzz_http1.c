/* fuzz_http1: the incremental response parser fed arbitrary bytes in arbitrary
 * pieces. The first input byte picks the body limit, the second seeds the split
 * points. The parser must never crash, never consume more than it was given, and —
 * for inputs without NUL bytes — reach the same outcome (result, status, body,
 * keep-alive, bytes consumed) whether fed at once, in random pieces or one byte at
 * a time. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

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
    }
    free(whole.body);
    free(split.body);
    free(bytes.body);
    return 0;
}
