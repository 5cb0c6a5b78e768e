#include "utf8.h"

size_t utf8_decode(const char *str, size_t n, unsigned *out)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len;
    unsigned cp;

    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *out = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range or a surrogate */
    *out = cp;
    return len;
}

bool utf8_is_control(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
           cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
           cp == 0xfeff;
}

bool utf8_valid(const char *s, size_t n)
{
    unsigned cp;

    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_decode(s + i, n - i, &cp);
        if (k == 0)
            return false;
    }
    return true;
}

bool utf8_valid_text(const char *s, size_t n)
{
    unsigned cp;

    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_decode(s + i, n - i, &cp);
        if (k == 0 || utf8_is_control(cp))
            return false;
    }
    return true;
}

void utf8_stream_reset(utf8_stream_t *st)
{
    st->need = 0;
    st->lo = 0x80;
    st->hi = 0xbf;
}

bool utf8_stream_feed(utf8_stream_t *st, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    unsigned need = st->need, lo = st->lo, hi = st->hi;

    if (need == 0)
        lo = 0x80, hi = 0xbf; /* a zeroed stream */
    for (size_t i = 0; i < n; i++) {
        unsigned b = p[i];
        if (need) {
            if (b < lo || b > hi)
                return false;
            need--;
            lo = 0x80;
            hi = 0xbf;
            continue;
        }
        if (b < 0x80)
            continue;
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            if (b == 0xe0)
                lo = 0xa0; /* overlong */
            else if (b == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            if (b == 0xf0)
                lo = 0x90; /* overlong */
            else if (b == 0xf4)
                hi = 0x8f; /* past U+10FFFF */
        } else {
            return false;
        }
    }
    st->need = (unsigned char)need;
    st->lo = (unsigned char)lo;
    st->hi = (unsigned char)hi;
    return true;
}

bool utf8_stream_complete(const utf8_stream_t *st)
{
    return st->need == 0;
}
