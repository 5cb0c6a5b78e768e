#include "http1.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { S_HEAD, S_BODY_LEN, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_CRLF, S_TRAILER, S_UNTIL_CLOSE, S_DONE };

void http1_resp_init(http1_resp_t *r, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    sbuf_init(&r->head, 0, HTTP1_MAX_HEADER);
    sbuf_init(&r->body, 0, max_body);
    r->content_length = -1;
}

void http1_resp_reset(http1_resp_t *r)
{
    sbuf_reset(&r->head);
    sbuf_reset(&r->body);
    r->state = S_HEAD;
    r->status = 0;
    r->content_length = -1;
    r->chunked = r->keep_alive = r->body_until_close = false;
    r->chunk_left = 0;
    r->ctype[0] = '\0';
    r->error = NULL;
}

void http1_resp_free(http1_resp_t *r)
{
    sbuf_free(&r->head);
    sbuf_free(&r->body);
}

static int fail(http1_resp_t *r, const char *why)
{
    r->error = why;
    return HTTP1_ERROR;
}

static bool token_in(const char *v, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = v; (p = strcasestr(p, tok)) != NULL; p += n) {
        bool start = p == v || p[-1] == ',' || p[-1] == ' ' || p[-1] == '\t';
        bool end = !p[n] || p[n] == ',' || p[n] == ' ' || p[n] == '\t';
        if (start && end)
            return true;
    }
    return false;
}

/* RFC 9110 §5.6.2 tchar */
static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Transfer-Encoding: we decode chunked only, so anything but one header whose
 * value is exactly "chunked" (optional white space around it) is refused, list
 * forms with empty elements (", chunked") included: parsers disagree on those,
 * and a response whose framing two parsers read two ways is how a response is
 * smuggled. A 502, never a guess. */
static int add_codings(http1_resp_t *r, const char *v)
{
    const char *p = v, *e;
    while (*p == ' ' || *p == '\t')
        p++;
    e = p + strlen(p);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if ((size_t)(e - p) != 7 || strncasecmp(p, "chunked", 7) || r->chunked)
        return fail(r, "unsupported Transfer-Encoding (only a single chunked is accepted)");
    r->chunked = true;
    return HTTP1_MORE;
}

/* Parses the status line and headers held in r->head (NUL-terminated, CRLF
 * line ends, no bare CR or LF: checked by the caller). RFC 9112 strictly: a
 * bad status line, a header name that is not a token, whitespace before the
 * colon, obsolete line folding, control bytes in a value, Content-Length that
 * is not one number or disagrees with another, and Transfer-Encoding beside
 * Content-Length (or in HTTP/1.0) are all errors: each of them is read one way
 * by one parser and another way by the next, which is how responses are
 * smuggled. */
static int parse_head(http1_resp_t *r)
{
    char *s = sbuf_data(&r->head);
    char *line = s, *next = strstr(s, "\r\n");
    if (next)
        *next = '\0';
    if (strncmp(line, "HTTP/1.", 7) || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]) || (line[12] && line[12] != ' '))
        return fail(r, "bad status line");
    int minor = line[7] - '0';
    r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (r->status < 100)
        return fail(r, "bad status code");
    r->keep_alive = minor >= 1;
    bool have_cl = false;
    int nte = 0;
    while (next) {
        line = next + 2;
        next = strstr(line, "\r\n");
        if (next)
            *next = '\0';
        if (!*line)
            continue;
        if (line[0] == ' ' || line[0] == '\t')
            return fail(r, "obsolete line folding in response headers");
        char *colon = line;
        while (is_tchar((unsigned char)*colon))
            colon++;
        if (colon == line || *colon != ':')
            return fail(r, "bad header line");
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        char *ve = v + strlen(v);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            *--ve = '\0';
        for (const char *q = v; *q; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return fail(r, "control byte in a response header");
        if (!strcasecmp(line, "content-length")) {
            size_t nd = strspn(v, "0123456789");
            if (!nd || v[nd] || nd > 18)
                return fail(r, "bad content-length");
            long long cl = strtoll(v, NULL, 10);
            if (have_cl && cl != r->content_length)
                return fail(r, "conflicting Content-Length headers");
            have_cl = true;
            r->content_length = cl;
        } else if (!strcasecmp(line, "transfer-encoding")) {
            nte++; /* present, even empty: framing is TE's, and it must be chunked */
            if (add_codings(r, v))
                return HTTP1_ERROR;
        } else if (!strcasecmp(line, "connection")) {
            if (token_in(v, "close"))
                r->keep_alive = false;
            else if (token_in(v, "keep-alive"))
                r->keep_alive = true;
        } else if (!strcasecmp(line, "content-type")) {
            snprintf(r->ctype, sizeof(r->ctype), "%s", v);
        }
    }
    if (nte && minor == 0)
        return fail(r, "Transfer-Encoding in an HTTP/1.0 response");
    if (nte && have_cl)
        return fail(r, "both Transfer-Encoding and Content-Length in a response");
    if ((r->status == 204 || r->status < 200) && (nte || r->content_length > 0))
        return fail(r, "a 1xx or 204 response with a body");
    if (r->status < 200 || r->status == 204 || r->status == 304) {
        r->state = S_DONE;
    } else if (r->chunked) {
        r->state = S_CHUNK_SIZE;
    } else if (r->content_length >= 0) {
        if ((size_t)r->content_length > r->body.limit)
            return fail(r, "response body too large");
        r->state = r->content_length ? S_BODY_LEN : S_DONE;
    } else {
        r->state = S_UNTIL_CLOSE;
        r->body_until_close = true;
        r->keep_alive = false;
    }
    return HTTP1_MORE;
}

/* Reads one CRLF-terminated line into r->head (reused as a line buffer). */
static int take_line(http1_resp_t *r, const char **p, const char *end, bool *complete)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) + 1 : (size_t)(end - *p);
    if (r->head.len + n > 1024)
        return fail(r, "chunk line too long");
    sbuf_add(&r->head, *p, n);
    *p += n;
    *complete = nl != NULL;
    if (!*complete)
        return HTTP1_MORE;
    /* CRLF only, as in the head: a bare CR or LF is read differently elsewhere */
    const char *l = sbuf_data(&r->head);
    size_t len = r->head.len;
    if (len < 2 || l[len - 2] != '\r' || memchr(l, '\r', len - 2) || memchr(l, '\0', len))
        return fail(r, "chunk or trailer line not ended by CRLF");
    return HTTP1_MORE;
}

/* A trailer line ("name: value"): the same rules as a header line. */
static bool trailer_ok(const char *line)
{
    const char *c = line;
    while (is_tchar((unsigned char)*c))
        c++;
    if (c == line || *c != ':')
        return false;
    for (c++; *c != '\r'; c++)
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
            return false;
    return true;
}

int http1_resp_feed(http1_resp_t *r, const char *p, size_t n, size_t *used)
{
    const char *start = p, *end = p + n;
    while (p < end && r->state != S_DONE) {
        switch (r->state) {
        case S_HEAD: {
            /* Append no more than the header limit allows: the rest of a large
             * read is body, handled once the blank line is found. */
            size_t before = r->head.len, room = HTTP1_MAX_HEADER - before;
            size_t take = (size_t)(end - p) < room ? (size_t)(end - p) : room;
            if (sbuf_add(&r->head, p, take))
                return fail(r, "response headers too large");
            char *h = sbuf_data(&r->head);
            size_t from = before > 3 ? before - 3 : 0;
            char *blank = memmem(h + from, r->head.len - from, "\r\n\r\n", 4);
            if (!blank) {
                if (r->head.len >= HTTP1_MAX_HEADER)
                    return fail(r, "response headers too large");
                p += take;
                break;
            }
            size_t head_len = (size_t)(blank - h) + 4;
            if (memchr(h, '\0', head_len))
                return fail(r, "NUL byte in response headers");
            for (size_t i = 0; i < head_len; i++)
                if ((h[i] == '\r' && h[i + 1] != '\n') || (h[i] == '\n' && (i == 0 || h[i - 1] != '\r')))
                    return fail(r, "bare CR or LF in response headers");
            p += head_len - before;
            h[head_len - 2] = '\0';
            r->head.len = head_len - 2;
            int rc = parse_head(r);
            sbuf_reset(&r->head);
            if (rc)
                return rc;
            if (r->status < 200) /* 100 Continue and friends: wait for the real one */
                http1_resp_reset(r);
            break;
        }
        case S_BODY_LEN: {
            size_t want = (size_t)r->content_length - r->body.len;
            size_t take = (size_t)(end - p) < want ? (size_t)(end - p) : want;
            if (sbuf_add(&r->body, p, take))
                return fail(r, "response body too large");
            p += take;
            if (r->body.len == (size_t)r->content_length)
                r->state = S_DONE;
            break;
        }
        case S_UNTIL_CLOSE:
            if (sbuf_add(&r->body, p, (size_t)(end - p)))
                return fail(r, "response body too large");
            p = end;
            break;
        case S_CHUNK_SIZE:
        case S_CHUNK_CRLF:
        case S_TRAILER: {
            bool complete;
            if (take_line(r, &p, end, &complete))
                return HTTP1_ERROR;
            if (!complete)
                break;
            char *line = sbuf_data(&r->head);
            if (r->state == S_CHUNK_SIZE) {
                char *e;
                if (!isxdigit((unsigned char)line[0]) || (line[0] == '0' && (line[1] == 'x' || line[1] == 'X')))
                    return fail(r, "bad chunk size");
                unsigned long long sz = strtoull(line, &e, 16);
                /* RFC 9112 §7.1: chunk-size BWS [";" chunk-ext] CRLF; an extension
                 * holds no control byte but HTAB. Anything else after the size
                 * ("0 ,0", "0 " alone) is refused: parsers differ on it. */
                char *ws = e;
                while (*e == ' ' || *e == '\t')
                    e++;
                if (*e != ';' && e != ws) /* BWS only before an extension */
                    return fail(r, "bad chunk size");
                if (*e == ';') {
                    while (*e != '\r' && ((unsigned char)*e >= 0x20 || *e == '\t') && *e != 0x7f)
                        e++;
                }
                if (*e != '\r')
                    return fail(r, "bad chunk size");
                if (sz > r->body.limit - r->body.len)
                    return fail(r, "response body too large");
                r->chunk_left = (size_t)sz;
                r->state = sz ? S_CHUNK_DATA : S_TRAILER;
            } else if (r->state == S_CHUNK_CRLF) {
                if (strcmp(line, "\r\n"))
                    return fail(r, "chunk longer than its size");
                r->state = S_CHUNK_SIZE;
            } else if (!strcmp(line, "\r\n")) {
                r->state = S_DONE;
            } else if (!trailer_ok(line)) {
                return fail(r, "bad trailer line");
            }
            sbuf_reset(&r->head);
            break;
        }
        case S_CHUNK_DATA: {
            size_t take = (size_t)(end - p) < r->chunk_left ? (size_t)(end - p) : r->chunk_left;
            if (sbuf_add(&r->body, p, take))
                return fail(r, "response body too large");
            p += take;
            r->chunk_left -= take;
            if (!r->chunk_left)
                r->state = S_CHUNK_CRLF;
            break;
        }
        }
    }
    if (used)
        *used = (size_t)(p - start);
    return r->state == S_DONE ? HTTP1_DONE : HTTP1_MORE;
}

int http1_resp_eof(http1_resp_t *r)
{
    if (r->state == S_UNTIL_CLOSE || r->state == S_DONE) {
        r->state = S_DONE;
        return HTTP1_DONE;
    }
    return fail(r, "connection closed before the response was complete");
}
