/* sbuf: a growable byte buffer with a hard size limit and optional headroom
 * (libwebsockets needs LWS_PRE bytes before every frame it writes). Used to build
 * frames, HTTP messages and metrics text without a sprintf per field. */
#ifndef MICRO_SBUF_H
#define MICRO_SBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct sbuf {
    char  *buf;   /* allocation: [headroom][data...] */
    size_t head;  /* headroom bytes before data */
    size_t len;   /* data length */
    size_t cap;   /* allocation size */
    size_t limit; /* max data length; 0 = 64 MiB */
    int    err;   /* sticky: set once an append failed (limit or OOM) */
} sbuf_t;

void  sbuf_init(sbuf_t *b, size_t headroom, size_t limit);
void  sbuf_free(sbuf_t *b);
void  sbuf_reset(sbuf_t *b);
int   sbuf_reserve(sbuf_t *b, size_t more);
int   sbuf_add(sbuf_t *b, const void *p, size_t n);
int   sbuf_adds(sbuf_t *b, const char *s);
int   sbuf_addc(sbuf_t *b, char c);
int   sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int   sbuf_add_u64(sbuf_t *b, unsigned long long v);
int   sbuf_add_json_str(sbuf_t *b, const char *s, size_t n); /* quoted, escaped */
/* A double as a JSON number (%.17g, shortest of %g that reads back the same);
 * NaN and infinities, which JSON cannot hold, become null. */
int   sbuf_add_json_num(sbuf_t *b, double v);
static inline char *sbuf_data(const sbuf_t *b) { return b->buf ? b->buf + b->head : NULL; }
/* Hands the allocation to the caller (data at returned + headroom); the sbuf is reset. */
char *sbuf_steal(sbuf_t *b);

#endif
