#include "sbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SBUF_DEFAULT_LIMIT (64u << 20)

void sbuf_init(sbuf_t *b, size_t headroom, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->head = headroom;
    b->limit = limit ? limit : SBUF_DEFAULT_LIMIT;
}

void sbuf_free(sbuf_t *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

void sbuf_reset(sbuf_t *b)
{
    b->len = 0;
    b->err = 0;
}

int sbuf_reserve(sbuf_t *b, size_t more)
{
    if (b->err)
        return -1;
    if (more > b->limit - b->len) {
        b->err = 1;
        return -1;
    }
    size_t need = b->head + b->len + more + 1; /* +1 keeps room for a NUL */
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    char *n = realloc(b->buf, ncap);
    if (!n) {
        b->err = 1;
        return -1;
    }
    b->buf = n;
    b->cap = ncap;
    return 0;
}

int sbuf_add(sbuf_t *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, n))
        return -1;
    if (n) /* p may be NULL when n is 0; memcpy must not see it */
        memcpy(b->buf + b->head + b->len, p, n);
    b->len += n;
    b->buf[b->head + b->len] = '\0';
    return 0;
}

int sbuf_adds(sbuf_t *b, const char *s) { return sbuf_add(b, s, strlen(s)); }

int sbuf_addc(sbuf_t *b, char c) { return sbuf_add(b, &c, 1); }

int sbuf_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[256];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(tmp))
        return sbuf_add(b, tmp, (size_t)n);
    if (sbuf_reserve(b, (size_t)n))
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->head + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int sbuf_add_u64(sbuf_t *b, unsigned long long v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return sbuf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Strings we quote come from apps, peers and callers: bytes that are not UTF-8
 * become U+FFFD (as \ufffd), one per byte, so what we emit is always valid JSON
 * (a peer drops a frame that is not). */
int sbuf_add_json_str(sbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (sbuf_reserve(b, n + 2))
        return -1;
    sbuf_addc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
            continue;
        if (c >= 0x80) {
            size_t len = utf8_seq((const unsigned char *)s + i, n - i);
            if (len) {
                i += len - 1;
                continue;
            }
            sbuf_add(b, s + start, i - start);
            start = i + 1;
            sbuf_add(b, "\\ufffd", 6);
            continue;
        }
        sbuf_add(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': sbuf_add(b, "\\\"", 2); break;
        case '\\': sbuf_add(b, "\\\\", 2); break;
        case '\n': sbuf_add(b, "\\n", 2); break;
        case '\r': sbuf_add(b, "\\r", 2); break;
        case '\t': sbuf_add(b, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sbuf_add(b, u, 6);
        }
        }
    }
    sbuf_add(b, s + start, n - start);
    return sbuf_addc(b, '"');
}

int sbuf_add_json_num(sbuf_t *b, double v)
{
    char tmp[32];
    if (!isfinite(v))
        return sbuf_add(b, "null", 4);
    /* the shortest of %.15g..%.17g that reads back as the same double */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v)
            break;
    }
    return sbuf_adds(b, tmp);
}

char *sbuf_steal(sbuf_t *b)
{
    char *p = b->buf;
    b->buf = NULL;
    b->len = b->cap = 0;
    b->err = 0;
    return p;
}
