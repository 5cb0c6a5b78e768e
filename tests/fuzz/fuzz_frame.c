/* fuzz_frame: frame_decode on arbitrary bytes. A frame that decodes is encoded
 * again from its pieces with the frame_put_* encoders, and that text must decode
 * to the same frame. A REQUEST's payload also goes through frame_payload_with_cid,
 * whose output must be a JSON object carrying the correlation id it reported.
 * A frame refused for its depth is one jscan refuses for depth at FRAME_MAX_DEPTH,
 * and what it recovers to answer the sender with is a valid id and mode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "util.h"

#include "fuzz_check.h"

static int span_eq(jspan_t a, jspan_t b)
{
    return a.t == b.t && a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Unescaped string span into a malloc'd buffer (unescaping never grows a string). */
static char *unescape(jspan_t s, size_t *n)
{
    char *buf = malloc(s.n + 1);
    CHECK(buf);
    CHECK(jstr_get(s, buf, s.n + 1, n) == 0);
    return buf;
}

static void check_cid(const frame_t *f)
{
    sbuf_t out;
    char cid[64];
    sbuf_init(&out, 0, 0);
    int rc = frame_payload_with_cid(&out, f->payload.p, f->payload.n, f->payload.t, NULL, cid,
                                    sizeof(cid));
    CHECK(rc == 0);
    jspan_t root, v;
    CHECK(jscan_validate(sbuf_data(&out), out.len, &root, NULL) == 0);
    CHECK(root.t == JT_OBJECT);
    CHECK(jobj_get(root, "_correlationId", &v));
    if (f->payload.t != JT_OBJECT) {
        /* wrapped: {"_correlationId": <new uuid>, "data": <payload>} */
        CHECK(v.t == JT_STRING && v.n == 38 && memcmp(v.p + 1, cid, 36) == 0);
        jspan_t d;
        CHECK(jobj_get(root, "data", &d) == (f->payload.t != JT_NONE));
        if (f->payload.t != JT_NONE)
            CHECK(span_eq(d, f->payload));
    }
    /* the lookup through the frame's member index agrees with walking the text */
    sbuf_t a, b;
    char ca[64], cb[64];
    sbuf_init(&a, 0, 0);
    sbuf_init(&b, 0, 0);
    CHECK(frame_payload_with_cid(&a, f->payload.p, f->payload.n, f->payload.t, "fz", ca,
                                 sizeof(ca)) == 0);
    CHECK(frame_payload_with_cid_ix(&b, f->payload.p, f->payload.n, f->payload.t, &f->ix,
                                    f->payload_slot, "fz", cb, sizeof(cb)) == 0);
    CHECK(a.len == b.len && memcmp(sbuf_data(&a), sbuf_data(&b), a.len) == 0 && !strcmp(ca, cb));
    sbuf_free(&a);
    sbuf_free(&b);
    sbuf_free(&out);
}

static void check_request(const frame_t *f)
{
    size_t ulen;
    char *url = unescape(f->url, &ulen);
    sbuf_t b;
    sbuf_init(&b, 16, 0);
    CHECK(frame_put_request(&b, f->id, f->twoway, url, ulen,
                            f->payload.t != JT_NONE ? f->payload.p : NULL, f->payload.n) == 0);
    frame_t g;
    CHECK(frame_decode(sbuf_data(&b), b.len, &g) == FRAME_OK);
    CHECK(g.mode == FRAME_REQUEST && g.id == f->id && g.twoway == f->twoway && !g.stream);
    CHECK(span_eq(g.payload, f->payload));
    size_t glen;
    char *gurl = unescape(g.url, &glen);
    CHECK(glen == ulen && memcmp(gurl, url, ulen) == 0);
    free(gurl);
    free(url);
    sbuf_free(&b);
    check_cid(f);
}

static void check_response(const frame_t *f)
{
    sbuf_t b;
    sbuf_init(&b, 16, 0);
    if (f->status == 200) {
        CHECK(frame_put_response_ok(&b, f->id, f->result.t != JT_NONE ? f->result.p : NULL,
                                    f->result.n) == 0);
    } else {
        size_t mlen = 0;
        char *msg = f->message.t == JT_STRING ? unescape(f->message, &mlen) : NULL;
        CHECK(frame_put_response_err(&b, f->id, f->status, msg, mlen) == 0);
        free(msg);
    }
    frame_t g;
    CHECK(frame_decode(sbuf_data(&b), b.len, &g) == FRAME_OK);
    CHECK(g.mode == FRAME_RESPONSE && g.id == f->id && !g.twoway);
    /* a status that is not a positive integer goes on the wire as 500 */
    CHECK(g.status == (f->status > 0 ? f->status : 500));
    if (f->status == 200) {
        CHECK(span_eq(g.result, f->result));
    } else {
        CHECK(g.result.t == JT_NULL);
        CHECK(g.message.t == JT_STRING);
        if (f->message.t == JT_STRING) {
            size_t a, c;
            char *m1 = unescape(f->message, &a), *m2 = unescape(g.message, &c);
            CHECK(a == c && memcmp(m1, m2, a) == 0);
            free(m1);
            free(m2);
        }
    }
    sbuf_free(&b);
}

static void check_abort(const frame_t *f)
{
    sbuf_t b;
    sbuf_init(&b, 16, 0);
    CHECK(frame_put_abort(&b, f->id, f->target) == 0);
    frame_t g;
    CHECK(frame_decode(sbuf_data(&b), b.len, &g) == FRAME_OK);
    CHECK(g.mode == FRAME_ABORT && g.id == f->id && g.target == f->target && !g.twoway);
    sbuf_free(&b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rng_seed(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so that reads past the end are caught by ASan. */
    char *p = malloc(size ? size : 1);
    CHECK(p);
    memcpy(p, data, size);
    frame_t f;
    int rc = frame_decode(p, size, &f);
    CHECK(rc == FRAME_OK || rc == FRAME_E_JSON || rc == FRAME_E_SHAPE || rc == FRAME_E_DEPTH);
    if (rc == FRAME_E_DEPTH) {
        CHECK(jscan_validate_max(p, size, NULL, NULL, NULL, 0, FRAME_MAX_DEPTH) == JSCAN_E_DEPTH);
        CHECK(f.mode >= -1 && f.mode <= FRAME_ABORT);
        if (f.mode >= 0)
            CHECK(f.id <= FRAME_ID_MAX);
    }
    if (rc == FRAME_OK) {
        CHECK(f.id <= FRAME_ID_MAX);
        switch (f.mode) {
        case FRAME_REQUEST: check_request(&f); break;
        case FRAME_RESPONSE: check_response(&f); break;
        case FRAME_ABORT: check_abort(&f); break;
        default: CHECK(!"mode out of range");
        }
    }
    /* the id salvage for refused frames reads any bytes in bounds and only
     * ever reports an id and mode a frame could have */
    uint64_t sid = 0;
    int smode = -1;
    if (frame_salvage_id(p, size, &sid, &smode) == 0) {
        CHECK(sid <= FRAME_ID_MAX);
        CHECK(smode >= 0 && smode <= 2);
    }
    /* retryAfter is finite, positive and at most a day, or 0 */
    if (rc == FRAME_OK && f.mode == FRAME_RESPONSE)
        CHECK(f.retry_after == 0 || (f.retry_after > 0 && f.retry_after <= FRAME_RETRY_AFTER_MAX));
    free(p);
    return 0;
}
