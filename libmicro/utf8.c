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
