/* Unit tests for libmicro/http1.c, the incremental HTTP/1.1 response parser:
 * body framings (Content-Length, chunked, until close), bodiless statuses,
 * interim 1xx, keep-alive rules, limits, errors and split-independence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

/* Feeds text in pieces of `step` bytes (0 = all at once), each piece in its own
 * exact-size allocation; stops at DONE or ERROR. *used_total gets the bytes taken. */
static int feed(http1_resp_t *r, const char *text, size_t len, size_t step, size_t *used_total)
{
    size_t off = 0;
    int rc = HTTP1_MORE;
    while (off < len) {
        size_t n = step && step < len - off ? step : len - off;
        char *piece = malloc(n);
        memcpy(piece, text + off, n);
        size_t used = (size_t)-1;
        rc = http1_resp_feed(r, piece, n, &used);
        free(piece);
        if (rc == HTTP1_ERROR)
            break;
        assert_true(used <= n);
        off += used;
        if (rc == HTTP1_DONE)
            break;
        assert_int_equal(used, n);
    }
    if (used_total)
        *used_total = off;
    return rc;
}

static int feeds(http1_resp_t *r, const char *text, size_t step, size_t *used)
{
    return feed(r, text, strlen(text), step, used);
}

#define assert_body(r, lit)                                        \
    do {                                                           \
        assert_int_equal((r)->body.len, strlen(lit));              \
        if ((r)->body.len)                                         \
            assert_memory_equal(sbuf_data(&(r)->body), lit, strlen(lit)); \
    } while (0)

static void content_length(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    const char *t = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
                    "\r\n{\"a\":1}";
    size_t used;
    assert_int_equal(feeds(&r, t, 0, &used), HTTP1_DONE);
    assert_int_equal(used, strlen(t));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 7);
    assert_false(r.chunked);
    assert_true(r.keep_alive);
    assert_false(r.body_until_close);
    assert_string_equal(r.ctype, "application/json");
    assert_body(&r, "{\"a\":1}");
    /* fed again after DONE: nothing is taken */
    size_t u = 99;
    assert_int_equal(http1_resp_feed(&r, "xyz", 3, &u), HTTP1_DONE);
    assert_int_equal(u, 0);
    http1_resp_free(&r);
}

static void content_length_zero_and_leftover(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    const char *first = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    const char *second = "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nhi";
    char both[256];
    snprintf(both, sizeof(both), "%s%s", first, second);
    size_t used;
    assert_int_equal(feeds(&r, both, 0, &used), HTTP1_DONE);
    assert_int_equal(used, strlen(first)); /* the rest is the next response's */
    assert_int_equal(r.status, 200);
    assert_body(&r, "");
    http1_resp_reset(&r);
    assert_int_equal(feeds(&r, both + used, 0, &used), HTTP1_DONE);
    assert_int_equal(used, strlen(second));
    assert_int_equal(r.status, 201);
    assert_body(&r, "hi");
    http1_resp_free(&r);
}

static void chunked_with_extensions_and_trailers(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    const char *t = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "4;name=value\r\nWiki\r\n5\r\npedia\r\nE ; x=\"y\"\r\n in\r\n\r\nchunks.\r\n"
                    "a\r\n0123456789\r\nA\r\nABCDEFGHIJ\r\n"
                    "0;last\r\nExpires: never\r\nX-Trailer: 1\r\n\r\n";
    size_t used;
    assert_int_equal(feeds(&r, t, 0, &used), HTTP1_DONE);
    assert_int_equal(used, strlen(t));
    assert_true(r.chunked);
    assert_true(r.keep_alive);
    assert_body(&r, "Wikipedia in\r\n\r\nchunks.0123456789ABCDEFGHIJ");
    http1_resp_free(&r);
}

static void chunked_empty_body(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    const char *t = "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n0\r\n\r\nNEXT";
    size_t used;
    assert_int_equal(feeds(&r, t, 0, &used), HTTP1_DONE);
    assert_int_equal(used, strlen(t) - 4);
    assert_body(&r, "");
    http1_resp_free(&r);
}

static void until_close_and_eof(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    assert_int_equal(feeds(&r, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", 0, NULL),
                     HTTP1_MORE);
    assert_true(r.body_until_close);
    assert_false(r.keep_alive); /* the close ends the body, so it ends the connection */
    assert_int_equal(feeds(&r, " world", 0, NULL), HTTP1_MORE);
    assert_int_equal(http1_resp_eof(&r), HTTP1_DONE);
    assert_body(&r, "hello world");
    assert_string_equal(r.ctype, "text/plain");
    http1_resp_free(&r);
}

static void bodiless_statuses(void **state)
{
    (void)state;
    const char *cases[] = {
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    };
    for (size_t i = 0; i < 3; i++) {
        http1_resp_t r;
        http1_resp_init(&r, 1 << 20);
        char t[256];
        snprintf(t, sizeof(t), "%sHTTP/1.1 200 OK\r\n", cases[i]);
        size_t used;
        assert_int_equal(feeds(&r, t, 0, &used), HTTP1_DONE);
        assert_int_equal(used, strlen(cases[i]));
        assert_body(&r, "");
        assert_true(r.keep_alive);
        http1_resp_free(&r);
    }
}

static void continue_then_final(void **state)
{
    (void)state;
    const char *t = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: 1\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    for (size_t step = 0; step < 3; step++) {
        http1_resp_t r;
        http1_resp_init(&r, 1 << 20);
        size_t used;
        assert_int_equal(feeds(&r, t, step, &used), HTTP1_DONE);
        assert_int_equal(used, strlen(t));
        assert_int_equal(r.status, 200);
        assert_body(&r, "ok");
        assert_false(r.keep_alive);
        http1_resp_free(&r);
    }
    /* the interim response alone is not the answer */
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    assert_int_equal(feeds(&r, "HTTP/1.1 100 Continue\r\n\r\n", 0, NULL), HTTP1_MORE);
    assert_int_equal(http1_resp_eof(&r), HTTP1_ERROR);
    http1_resp_free(&r);
}

static int keep_alive_of(const char *t)
{
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    int rc = feeds(&r, t, 0, NULL);
    assert_int_equal(rc, HTTP1_DONE);
    int ka = r.keep_alive;
    http1_resp_free(&r);
    return ka;
}

static void keep_alive_rules(void **state)
{
    (void)state;
    assert_true(keep_alive_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert_false(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    assert_false(keep_alive_of("HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: 0\r\n\r\n"));
    assert_false(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\n"
                               "Content-Length: 0\r\n\r\n"));
    assert_true(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"));
    assert_true(keep_alive_of("HTTP/1.1 200 OK\r\nConnection: closed-caption\r\n"
                              "Content-Length: 0\r\n\r\n")); /* a token, not a substring */
    /* HTTP/1.0 closes unless it says keep-alive */
    assert_false(keep_alive_of("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert_true(keep_alive_of("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"));
    assert_false(keep_alive_of("HTTP/1.0 204 No Content\r\n\r\n"));
}

static void header_limit(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    char *big = malloc(HTTP1_MAX_HEADER + 200);
    strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    size_t n = strlen(big);
    memset(big + n, 'a', HTTP1_MAX_HEADER + 100 - n);
    big[HTTP1_MAX_HEADER + 100] = '\0';
    assert_int_equal(feeds(&r, big, 1000, NULL), HTTP1_ERROR);
    assert_non_null(r.error);
    http1_resp_free(&r);

    /* a header block just under the limit is fine */
    http1_resp_init(&r, 1 << 20);
    size_t fill = HTTP1_MAX_HEADER - 64;
    strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    n = strlen(big);
    memset(big + n, 'b', fill - n);
    strcpy(big + fill, "\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(feeds(&r, big, 0, NULL), HTTP1_DONE);
    http1_resp_free(&r);
    free(big);
}

static void body_limits(void **state)
{
    (void)state;
    const char *cases[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n01234567890",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http1_resp_t r;
        http1_resp_init(&r, 10);
        int rc = feeds(&r, cases[i], 0, NULL);
        if (rc != HTTP1_ERROR)
            fail_msg("case %zu: rc %d, body %zu bytes", i, rc, r.body.len);
        assert_non_null(r.error);
        http1_resp_free(&r);
    }
    /* exactly at the limit is fine */
    http1_resp_t r;
    http1_resp_init(&r, 10);
    assert_int_equal(feeds(&r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0, NULL),
                     HTTP1_DONE);
    http1_resp_free(&r);
}

/* A socket read often holds the head and a large part of the body: the header
 * limit applies to the header block, not to everything that arrived with it. */
static void large_body_in_one_read(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n";
    size_t hl = strlen(head), total = hl + 20000;
    char *t = malloc(total);
    memcpy(t, head, hl);
    memset(t + hl, 'x', 20000);
    size_t used = 0;
    int rc = feed(&r, t, total, 0, &used);
    const char *error = r.error ? r.error : "-";
    size_t body_len = r.body.len;
    http1_resp_free(&r);
    free(t);
    if (rc != HTTP1_DONE)
        fail_msg("rc %d (%s)", rc, error);
    assert_int_equal(used, total);
    assert_int_equal(body_len, 20000);
}

/* RFC 9112 §6: framing that two parsers could read two ways is an error (the
 * sidecar answers 502), never a guess. */
static void ambiguous_framing_refused(void **state)
{
    (void)state;
    const struct {
        const char *text, *why;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 3\r\n\r\n{\"a\":123}", "conflicting Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", "bad content-length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", "bad content-length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "bad content-length"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\t,\t0\r\n\r\n", "bad chunk size"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\t\r\n\r\n", "bad chunk size"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;\x01x=y\r\nabc\r\n0\r\n\r\n", "bad chunk size"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding:, chunked\r\n\r\n0\r\n\r\n", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", "both Transfer-Encoding and Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "both Transfer-Encoding and Content-Length"},
        {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.0"},
        /* found by the differential fuzzer: an empty TE is still a TE */
        {"HTTP/1.1 200\r\nTransfer-Encoding:\r\nContent-Length:3\r\n\r\nabc", "unsupported Transfer-Encoding"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", "CRLF"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", "bad trailer line"},
        {"HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc", "bad header line"},
        {"HTTP/1.1 200 OK\r\n Content-Length: 3\r\n\r\nabc", "obsolete line folding"},
        {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obsolete line folding"},
        {"HTTP/1.1 200 OK\r\nX: a\rContent-Length: 3\r\n\r\nabc", "bare CR or LF"},
        {"HTTP/1.1 200 OK\nContent-Length: 3\r\n\r\nabc", "bare CR or LF"},
        {"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n", "control byte"},
        {"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", "204"},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", "204"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t step = 0; step < 2; step++) {
            http1_resp_t r;
            http1_resp_init(&r, 1 << 20);
            int rc = feeds(&r, cases[i].text, step, NULL);
            if (rc != HTTP1_ERROR)
                fail_msg("case %zu step %zu: rc %d", i, step, rc);
            if (!strstr(r.error, cases[i].why))
                fail_msg("case %zu: error \"%s\", want \"%s\"", i, r.error, cases[i].why);
            http1_resp_free(&r);
        }
    }
    /* the same length twice is one length (RFC 9110 §8.6) */
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    assert_int_equal(feeds(&r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 0, NULL),
                     HTTP1_DONE);
    assert_body(&r, "abc");
    http1_resp_free(&r);
}

static void errors(void **state)
{
    (void)state;
    const char *cases[] = {
        "FOO 200 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1200 OK\r\n\r\n",
        "HTTP/1.x 200 OK\r\n\r\n",
        "HTTP/1.1 abc\r\n\r\n",
        "HTTP/1.1 99 Low\r\n\r\n",
        "HTTP/1.1 1000 High\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
        "<html>\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t step = 0; step < 2; step++) {
            http1_resp_t r;
            http1_resp_init(&r, 1 << 20);
            int rc = feeds(&r, cases[i], step, NULL);
            if (rc != HTTP1_ERROR)
                fail_msg("case %zu step %zu: rc %d", i, step, rc);
            assert_non_null(r.error);
            http1_resp_free(&r);
        }
    }
    /* an endless chunk-size line */
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    char line[2048];
    memset(line, '0', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    assert_int_equal(feeds(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, NULL),
                     HTTP1_MORE);
    assert_int_equal(feeds(&r, line, 0, NULL), HTTP1_ERROR);
    http1_resp_free(&r);
}

/* Chunk data must be followed by CRLF; more data than the chunk size announced
 * is a framing error, not something to skip. */
static void chunk_longer_than_announced(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    int rc = feeds(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabcdef\r\n0\r\n\r\n", 0, NULL);
    char body[32] = "";
    if (r.body.len < sizeof(body) && r.body.len)
        memcpy(body, sbuf_data(&r.body), r.body.len);
    http1_resp_free(&r);
    if (rc != HTTP1_ERROR)
        fail_msg("rc %d, body \"%s\"", rc, body);
}

static void eof_errors(void **state)
{
    (void)state;
    const char *cases[] = {
        "",
        "HTTP/1.1 200 OK\r\nContent-Len",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http1_resp_t r;
        http1_resp_init(&r, 1 << 20);
        assert_int_equal(feeds(&r, cases[i], 0, NULL), HTTP1_MORE);
        if (http1_resp_eof(&r) != HTTP1_ERROR)
            fail_msg("case %zu: eof accepted", i);
        assert_non_null(r.error);
        http1_resp_free(&r);
    }
    /* eof after a complete response is fine */
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    assert_int_equal(feeds(&r, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, NULL), HTTP1_DONE);
    assert_int_equal(http1_resp_eof(&r), HTTP1_DONE);
    assert_body(&r, "x");
    http1_resp_free(&r);
}

static const char *samples[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "HTTP/1.1 204 No Content\r\n\r\n",
    ("HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nConnection: close\r\n"
     "Content-Length: 15\r\n\r\n{\"error\":\"bad\"}"),
    "HTTP/1.1 200 OK\r\n\r\nuntil the end",
    "HTTP/1.1 200 OK\r\nX: a\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
    "GARBAGE\r\n\r\n",
};

typedef struct result {
    int    rc;
    int    status;
    bool   keep_alive;
    size_t used;
    char   body[128];
    size_t body_len;
    char   ctype[128];
} result_t;

static result_t run(const char *t, size_t step)
{
    result_t res;
    memset(&res, 0, sizeof(res));
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    res.rc = feeds(&r, t, step, &res.used);
    if (res.rc == HTTP1_MORE)
        res.rc = http1_resp_eof(&r);
    if (res.rc != HTTP1_DONE)
        res.used = 0; /* where an error is noticed may depend on the split */
    if (res.rc == HTTP1_DONE) {
        res.status = r.status;
        res.keep_alive = r.keep_alive;
        res.body_len = r.body.len;
        assert_true(r.body.len < sizeof(res.body));
        if (r.body.len)
            memcpy(res.body, sbuf_data(&r.body), r.body.len);
        strcpy(res.ctype, r.ctype);
    }
    http1_resp_free(&r);
    return res;
}

static void byte_at_a_time_same_result(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        result_t whole = run(samples[i], 0);
        for (size_t step = 1; step <= 7; step++) {
            result_t split = run(samples[i], step);
            if (memcmp(&whole, &split, sizeof(whole)) != 0)
                fail_msg("sample %zu: step %zu differs (rc %d/%d, body %zu/%zu)", i, step,
                         whole.rc, split.rc, whole.body_len, split.body_len);
        }
    }
}

/* A NUL byte in the header block must not make the outcome depend on how the
 * bytes were split across reads. */
static void nul_in_headers_split_independent(void **state)
{
    (void)state;
    const char t[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok";
    int rcs[2];
    for (size_t step = 0; step < 2; step++) {
        http1_resp_t r;
        http1_resp_init(&r, 1 << 20);
        rcs[step] = feed(&r, t, sizeof(t) - 1, step, NULL);
        if (rcs[step] == HTTP1_MORE)
            rcs[step] = http1_resp_eof(&r);
        http1_resp_free(&r);
    }
    if (rcs[0] != rcs[1])
        fail_msg("all at once: %d, byte by byte: %d", rcs[0], rcs[1]);
}

static void reset_reuses_parser(void **state)
{
    (void)state;
    http1_resp_t r;
    http1_resp_init(&r, 1 << 20);
    assert_int_equal(feeds(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                               "Content-Type: a/b\r\n\r\n1\r\nx\r\n0\r\n\r\n", 0, NULL), HTTP1_DONE);
    http1_resp_reset(&r);
    assert_int_equal(r.content_length, -1);
    assert_string_equal(r.ctype, "");
    assert_int_equal(r.body.len, 0);
    assert_int_equal(feeds(&r, "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\ny", 1, NULL),
                     HTTP1_DONE);
    assert_int_equal(r.status, 404);
    assert_false(r.chunked);
    assert_body(&r, "y");
    http1_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(content_length),
        cmocka_unit_test(content_length_zero_and_leftover),
        cmocka_unit_test(chunked_with_extensions_and_trailers),
        cmocka_unit_test(chunked_empty_body),
        cmocka_unit_test(until_close_and_eof),
        cmocka_unit_test(bodiless_statuses),
        cmocka_unit_test(continue_then_final),
        cmocka_unit_test(keep_alive_rules),
        cmocka_unit_test(header_limit),
        cmocka_unit_test(body_limits),
        cmocka_unit_test(large_body_in_one_read),
        cmocka_unit_test(errors),
        cmocka_unit_test(ambiguous_framing_refused),
        cmocka_unit_test(chunk_longer_than_announced),
        cmocka_unit_test(eof_errors),
        cmocka_unit_test(byte_at_a_time_same_result),
        cmocka_unit_test(nul_in_headers_split_independent),
        cmocka_unit_test(reset_reuses_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
