/* http1: an incremental HTTP/1.1 response parser (status line, headers,
 * Content-Length / chunked / read-until-close bodies) with hard limits on header
 * and body size. The sidecar's keep-alive client to the app feeds it socket data. */
#ifndef MICRO_HTTP1_H
#define MICRO_HTTP1_H

#include "sbuf.h"

#include <stdbool.h>
#include <stddef.h>

#define HTTP1_MAX_HEADER 16384

enum { HTTP1_MORE = 0, HTTP1_DONE = 1, HTTP1_ERROR = -1 };

typedef struct http1_resp {
    int       state;
    int       status;
    long long content_length;  /* -1 when absent */
    bool      chunked;
    bool      keep_alive;      /* false: the connection must close after this response */
    bool      body_until_close;
    size_t    chunk_left;
    char      ctype[128];
    sbuf_t    head;            /* header bytes until the blank line */
    sbuf_t    body;
    const char *error;         /* set on HTTP1_ERROR */
} http1_resp_t;

void http1_resp_init(http1_resp_t *r, size_t max_body);
void http1_resp_reset(http1_resp_t *r); /* for the next response on the connection */
void http1_resp_free(http1_resp_t *r);
/* Feeds bytes; *used gets how many were consumed (the rest belongs to the next
 * response, which a client that does not pipeline never has). */
int  http1_resp_feed(http1_resp_t *r, const char *p, size_t n, size_t *used);
/* The peer closed: completes a read-until-close body, else an error. */
int  http1_resp_eof(http1_resp_t *r);

#endif
