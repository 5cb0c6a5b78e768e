#include "addrlist.h"

#include <string.h>

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int addr_list_parse(const char *s, size_t len, addr_list_t *out, size_t *bad)
{
    addr_list_t l; /* a scratch list: *out stays untouched on error */
    size_t i = 0;

    l.n = 0;
    if (bad)
        *bad = 0;
    for (;;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - s) : len;
        size_t a = i, b = end;
        while (a < b && is_blank(s[a]))
            a++;
        while (b > a && is_blank(s[b - 1]))
            b--;
        if (bad)
            *bad = l.n;
        if (a == b)
            return ADDR_LIST_E_EMPTY;
        if (l.n == ADDR_LIST_MAX)
            return ADDR_LIST_E_TOO_MANY;
        int rc = addr_parse_key(s + a, b - a, &l.v[l.n]);
        if (rc)
            return rc;
        for (size_t k = 0; k < l.n; k++)
            if (l.v[k].port == l.v[l.n].port && !strcmp(l.v[k].host, l.v[l.n].host))
                return ADDR_LIST_E_DUP;
        l.n++;
        if (!comma)
            break;
        i = end + 1;
    }
    memcpy(out, &l, sizeof(l));
    return 0;
}

const char *addr_list_strerror(int err)
{
    switch (err) {
    case ADDR_LIST_E_EMPTY:
        return "empty entry";
    case ADDR_LIST_E_TOO_MANY:
        return "too many entries (at most 16)";
    case ADDR_LIST_E_DUP:
        return "the same address twice";
    default:
        return addr_strerror(err);
    }
}
