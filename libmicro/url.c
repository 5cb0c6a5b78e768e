#include "url.h"

#include <stdbool.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Segments are split at '/' and '\' (some servers treat a backslash as a
 * separator), raw or encoded, so "..%2f" and "..\" are dot segments too. */
static bool is_sep(int c) { return c == '/' || c == '\\'; }

int url_check(const char *p, size_t n) { return url_check_max(p, n, URL_MAX); }

int url_check_max(const char *p, size_t n, size_t max)
{
    if (!p || n == 0 || p[0] != '/')
        return URL_E_EMPTY;
    if (n > max)
        return URL_E_LONG;
    size_t seg_len = 0;  /* decoded bytes in the current path segment */
    size_t seg_dots = 0; /* how many of them are '.' */
    bool in_path = true;
    for (size_t i = 0; i <= n; i++) {
        int c = -1;         /* the byte as the app sees it once decoded; -1 at the end */
        bool raw = true;    /* c was written as itself, not as %HH */
        if (i < n) {
            unsigned char b = (unsigned char)p[i];
            if (b <= 0x20 || b >= 0x7f)
                return URL_E_CHAR;
            if (b == '#')
                return URL_E_FRAGMENT;
            c = b;
            if (b == '%') {
                if (n - i < 3)
                    return URL_E_ESCAPE;
                int hi = hexval((unsigned char)p[i + 1]), lo = hexval((unsigned char)p[i + 2]);
                if (hi < 0 || lo < 0)
                    return URL_E_ESCAPE;
                c = hi << 4 | lo;
                if (c < 0x20 || c == 0x7f)
                    return URL_E_CONTROL;
                raw = false;
                i += 2;
            }
        }
        if (!in_path)
            continue;
        bool query = c == '?' && raw; /* an encoded '?' is data; a raw one starts the query */
        if (c == -1 || is_sep(c) || query) {
            if (seg_len && seg_len == seg_dots && seg_len <= 2)
                return URL_E_DOT;
            seg_len = seg_dots = 0;
            in_path = !query;
            continue;
        }
        seg_len++;
        if (c == '.')
            seg_dots++;
    }
    return URL_OK;
}

const char *url_strerror(int err)
{
    switch (err) {
    case URL_OK: return "ok";
    case URL_E_EMPTY: return "must start with /";
    case URL_E_LONG: return "longer than 1023 bytes";
    case URL_E_CHAR: return "only visible ASCII is allowed (no spaces, CR, LF, control or non-ASCII bytes; percent-encode them)";
    case URL_E_FRAGMENT: return "no fragment (#) allowed";
    case URL_E_ESCAPE: return "every % must start a %HH escape";
    case URL_E_CONTROL: return "no percent-encoded control bytes (%00-%1f, %7f)";
    case URL_E_DOT: return "no . or .. path segments (literal or percent-encoded)";
    }
    return "bad url";
}
