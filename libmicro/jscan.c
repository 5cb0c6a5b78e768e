#include "jscan.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct scanner {
    const char *p, *end;
} scanner_t;

static void skip_ws(scanner_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Validates one UTF-8 sequence starting at a byte >= 0x80; returns its length or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; min = 0x10000; }
    else return 0;
    if ((size_t)(end - p) < n)
        return 0;
    unsigned cp = c & (0x3f >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int scan_string(scanner_t *s)
{
    s->p++; /* opening quote */
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (++s->p >= s->end)
                return -1;
            switch (*s->p) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                s->p++;
                break;
            case 'u':
                if (s->end - s->p < 5)
                    return -1;
                for (int i = 1; i <= 4; i++)
                    if (hexval(s->p[i]) < 0)
                        return -1;
                s->p += 5;
                break;
            default:
                return -1;
            }
        } else if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)s->p, (const unsigned char *)s->end);
            if (!n)
                return -1;
            s->p += n;
        } else {
            s->p++;
        }
    }
    return -1;
}

static int digits(scanner_t *s)
{
    const char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start ? 0 : -1;
}

static int scan_number(scanner_t *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return -1;
    if (*s->p == '0')
        s->p++;
    else if (digits(s))
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s))
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s))
            return -1;
    }
    return 0;
}

static int scan_lit(scanner_t *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n))
        return -1;
    s->p += n;
    return 0;
}

/* Levels whose containers' members may be recorded in an index, and whose
 * start is kept for the span of the member that holds them. */
#define IX_LEVELS (JIX_MAX_DEPTH + 1)

static inline bool bit_get(const uint64_t *b, int i) { return (b[i >> 6] >> (i & 63)) & 1; }
static inline void bit_put(uint64_t *b, int i, bool v)
{
    if (v)
        b[i >> 6] |= (uint64_t)1 << (i & 63);
    else
        b[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* One pass, no recursion: the open containers are a bitset (object or array per
 * level), so a document costs the same few hundred bytes of stack at any depth,
 * and nesting beyond max_depth is refused with JSCAN_E_DEPTH at its bracket. */
int jscan_validate_max(const char *p, size_t n, jspan_t *root, size_t *errpos, jindex_t *ix,
                       int ixdepth, int max_depth)
{
    scanner_t sc = {p, p + n};
    scanner_t *s = &sc;
    uint64_t isobj[JSCAN_DEPTH_CAP / 64];
    /* per level below IX_LEVELS: where the container starts, the parent its
     * members are recorded under (JIX_NONE: not recorded), and the slot of the
     * member whose value is being scanned */
    const char *cstart[IX_LEVELS];
    int cparent[IX_LEVELS], cslot[IX_LEVELS];
    int depth = 0, rc;
    const char *vstart;
    jtype_t vt;

    if (max_depth > JSCAN_DEPTH_CAP)
        max_depth = JSCAN_DEPTH_CAP;
    if (ix) {
        ix->n = 0;
        ix->depth = ixdepth < 0 ? 0 : ixdepth > JIX_MAX_DEPTH ? JIX_MAX_DEPTH : ixdepth;
        ix->complete = true;
    }

value: /* a value starts here (after white space) */
    skip_ws(s);
    if (s->p >= s->end)
        goto fail;
    vstart = s->p;
    switch (*s->p) {
    case '{':
    case '[': {
        const bool obj = *s->p == '{';
        if (depth >= max_depth) {
            rc = JSCAN_E_DEPTH;
            goto out;
        }
        bit_put(isobj, depth, obj);
        if (depth < IX_LEVELS) {
            /* indexing: this object's members are recorded when its parent was
             * (or it is the root) and it is not too deep; nothing inside an array */
            int par = JIX_NONE;
            if (ix && obj && depth < ix->depth)
                par = depth == 0 ? JIX_ROOT : bit_get(isobj, depth - 1) ? cslot[depth - 1] : JIX_NONE;
            cstart[depth] = s->p;
            cparent[depth] = par;
            cslot[depth] = JIX_NONE;
        }
        depth++;
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == (obj ? '}' : ']')) {
            s->p++;
            depth--;
            vt = obj ? JT_OBJECT : JT_ARRAY;
            goto done;
        }
        if (obj)
            goto member;
        goto value;
    }
    case '"': vt = JT_STRING; rc = scan_string(s); break;
    case 't': vt = JT_TRUE; rc = scan_lit(s, "true", 4); break;
    case 'f': vt = JT_FALSE; rc = scan_lit(s, "false", 5); break;
    case 'n': vt = JT_NULL; rc = scan_lit(s, "null", 4); break;
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
            vt = JT_NUMBER;
            rc = scan_number(s);
        } else {
            rc = -1;
        }
    }
    if (rc)
        goto fail;
    goto done;

member: { /* a key is due (after white space) in the object at depth - 1 */
    const int d = depth - 1;
    const char *kp = s->p;
    if (s->p >= s->end || *s->p != '"' || scan_string(s))
        goto fail;
    if (d < IX_LEVELS) {
        cslot[d] = JIX_NONE;
        if (cparent[d] != JIX_NONE) {
            if (ix->n < JIX_MAX) {
                jix_member_t *m = &ix->m[ix->n];
                m->key = (jspan_t){kp, (size_t)(s->p - kp), JT_STRING};
                m->parent = cparent[d];
                m->level = d + 1;
                cslot[d] = ix->n++;
            } else {
                ix->complete = false;
            }
        }
    }
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
        goto fail;
    s->p++;
    goto value;
}

done: /* a value of type vt ended at s->p; for a container, its start is kept */
    if (vt == JT_OBJECT || vt == JT_ARRAY)
        vstart = depth < IX_LEVELS ? cstart[depth] : NULL;
    if (depth == 0)
        goto finish;
    {
        const int d = depth - 1;
        const bool obj = bit_get(isobj, d);
        if (obj && d < IX_LEVELS && cslot[d] >= 0)
            ix->m[cslot[d]].val = (jspan_t){vstart, (size_t)(s->p - vstart), vt};
        skip_ws(s);
        if (s->p >= s->end)
            goto fail;
        if (*s->p == ',') {
            s->p++;
            if (!obj)
                goto value;
            skip_ws(s);
            goto member;
        }
        if (*s->p != (obj ? '}' : ']'))
            goto fail;
        s->p++;
        depth--;
        vt = obj ? JT_OBJECT : JT_ARRAY;
        goto done;
    }

finish: {
    const char *vend = s->p;
    skip_ws(s);
    if (s->p == s->end) {
        if (root)
            *root = (jspan_t){vstart, (size_t)(vend - vstart), vt};
        return JSCAN_OK;
    }
}
fail:
    rc = JSCAN_E_SYNTAX;
out:
    if (errpos)
        *errpos = (size_t)(s->p - p);
    return rc;
}

int jscan_validate(const char *p, size_t n, jspan_t *root, size_t *errpos)
{
    return jscan_validate_max(p, n, root, errpos, NULL, 0, JSCAN_MAX_DEPTH);
}

int jscan_validate_ix(const char *p, size_t n, jspan_t *root, size_t *errpos, jindex_t *ix,
                      int depth)
{
    return jscan_validate_max(p, n, root, errpos, ix, depth, JSCAN_MAX_DEPTH);
}

/* From an opening quote of a validated string to just past its closing quote:
 * memchr to each quote, which is the end unless an odd run of backslashes
 * escapes it. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return end;
        size_t bs = 0;
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (!(bs & 1))
            return q + 1;
        p = q + 1;
    }
    return end;
}

/* Skips one already-validated value; cheap because no checks are repeated. */
static const char *skip_value(const char *p, const char *end, jtype_t *t)
{
    switch (*p) {
    case '"':
        *t = JT_STRING;
        return skip_string(p, end);
    case '{':
    case '[': {
        *t = *p == '{' ? JT_OBJECT : JT_ARRAY;
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = skip_string(p, end) - 1;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
        }
        return end;
    }
    case 't': *t = JT_TRUE; return p + 4;
    case 'f': *t = JT_FALSE; return p + 5;
    case 'n': *t = JT_NULL; return p + 4;
    default:
        *t = JT_NUMBER;
        while (p < end && (strchr("+-.eE", *p) || (*p >= '0' && *p <= '9')))
            p++;
        return p;
    }
}

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

void jobj_iter(jiter_t *it, jspan_t obj)
{
    it->p = obj.p + 1;
    it->end = obj.p + obj.n - 1;
}

bool jobj_next(jiter_t *it, jspan_t *key, jspan_t *val)
{
    const char *p = ws(it->p, it->end);
    if (p < it->end && *p == ',')
        p = ws(p + 1, it->end);
    if (p >= it->end || *p != '"')
        return false;
    key->p = p;
    p = skip_value(p, it->end, &key->t);
    key->n = (size_t)(p - key->p);
    p = ws(p, it->end);
    p = ws(p + 1, it->end); /* ':' */
    val->p = p;
    p = skip_value(p, it->end, &val->t);
    val->n = (size_t)(p - val->p);
    it->p = p;
    return true;
}

void jarr_iter(jiter_t *it, jspan_t arr) { jobj_iter(it, arr); }

bool jarr_next(jiter_t *it, jspan_t *val)
{
    const char *p = ws(it->p, it->end);
    if (p < it->end && *p == ',')
        p = ws(p + 1, it->end);
    if (p >= it->end)
        return false;
    val->p = p;
    p = skip_value(p, it->end, &val->t);
    val->n = (size_t)(p - val->p);
    it->p = p;
    return true;
}

bool jobj_get(jspan_t obj, const char *name, jspan_t *val)
{
    if (obj.t != JT_OBJECT)
        return false;
    jiter_t it;
    jspan_t k, v;
    bool found = false;
    jobj_iter(&it, obj);
    while (jobj_next(&it, &k, &v))
        if (jstr_eq(k, name)) {
            *val = v;
            found = true;
        }
    return found;
}

bool jobj_empty(jspan_t obj)
{
    return ws(obj.p + 1, obj.p + obj.n - 1) >= obj.p + obj.n - 1;
}

bool jstr_eq(jspan_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.t != JT_STRING)
        return false;
    if (!memchr(s.p, '\\', s.n)) /* no escapes: the raw bytes are the value */
        return s.n == n + 2 && memcmp(s.p + 1, lit, n) == 0;
    char buf[256];
    size_t got;
    return n < sizeof(buf) && jstr_get(s, buf, sizeof(buf), &got) == 0 && got == n &&
           memcmp(buf, lit, n) == 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f)); return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

int jstr_get(jspan_t s, char *out, size_t outlen, size_t *outn)
{
    if (s.t != JT_STRING || s.n < 2 || outlen == 0)
        return -1;
    const char *p = s.p + 1, *end = s.p + s.n - 1;
    size_t o = 0;
    while (p < end) {
        char tmp[4];
        size_t k = 1;
        if (*p != '\\') {
            tmp[0] = *p++;
        } else {
            p++;
            switch (*p) {
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                unsigned cp = hex4(p + 1);
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 7 && p[1] == '\\' && p[2] == 'u') {
                    unsigned lo = hex4(p + 3);
                    if (lo >= 0xdc00 && lo <= 0xdfff) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        p += 6;
                    }
                }
                if (cp >= 0xd800 && cp <= 0xdfff)
                    cp = 0xfffd; /* lone surrogate */
                k = put_utf8(tmp, cp);
                break;
            }
            default: tmp[0] = *p; /* " \ / */
            }
            p++;
        }
        if (o + k >= outlen)
            return -1;
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o] = '\0';
    if (outn)
        *outn = o;
    return 0;
}

int jnum_double(jspan_t s, double *out)
{
    char buf[64], *p = buf;
    if (s.t != JT_NUMBER)
        return -1;
    if (s.n >= sizeof(buf) && !(p = malloc(s.n + 1))) /* JSON numbers have no length limit */
        return -1;
    memcpy(p, s.p, s.n);
    p[s.n] = '\0';
    double d = strtod(p, NULL);
    if (p != buf)
        free(p);
    if (!isfinite(d)) /* 1e400 overflows to infinity: not a number we can use or print */
        return -1;
    *out = d;
    return 0;
}

int jnum_u53(jspan_t s, uint64_t *out)
{
    if (s.t != JT_NUMBER)
        return -1;
    /* fast path: plain digits */
    if (s.n <= 16 && s.p[0] != '-') {
        uint64_t v = 0;
        size_t i;
        for (i = 0; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++)
            v = v * 10 + (uint64_t)(s.p[i] - '0');
        if (i == s.n) {
            if (v > 9007199254740991ULL)
                return -1;
            *out = v;
            return 0;
        }
    }
    double d;
    if (jnum_double(s, &d) || !(d >= 0) || d > 9007199254740991.0 || floor(d) != d)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

/* ---- the member index ---- */

/* Whether ix holds the members of the object at `parent`. */
static bool ix_holds(const jindex_t *ix, int parent)
{
    if (!ix || !ix->complete)
        return false;
    if (parent == JIX_ROOT)
        return ix->depth >= 1;
    return parent >= 0 && parent < ix->n && ix->m[parent].level < ix->depth;
}

void jmembers_init(jmembers_t *ms, const jindex_t *ix, int parent, jspan_t obj)
{
    ms->ix = ix_holds(ix, parent) ? ix : NULL;
    ms->parent = parent;
    /* the children of a slot come after it */
    ms->i = parent >= 0 ? parent + 1 : 0;
    jobj_iter(&ms->it, obj);
}

bool jmembers_next(jmembers_t *ms, jspan_t *key, jspan_t *val, int *slot)
{
    if (!ms->ix) {
        if (slot)
            *slot = JIX_NONE;
        return jobj_next(&ms->it, key, val);
    }
    while (ms->i < ms->ix->n) {
        int i = ms->i++;
        const jix_member_t *m = &ms->ix->m[i];
        if (m->parent != ms->parent)
            continue;
        *key = m->key;
        *val = m->val;
        if (slot)
            *slot = i;
        return true;
    }
    return false;
}

bool jmembers_get(const jindex_t *ix, int parent, jspan_t obj, const char *name, jspan_t *val,
                  int *slot)
{
    jmembers_t ms;
    jspan_t k, v;
    int sl, found = 0;
    jmembers_init(&ms, ix, parent, obj);
    while (jmembers_next(&ms, &k, &v, &sl)) {
        if (jstr_eq(k, name)) { /* the last one wins, as in JavaScript */
            *val = v;
            if (slot)
                *slot = sl;
            found = 1;
        }
    }
    return found;
}

/* ---- recovery from a refused (too deep) frame ---- */

/* Past a string from its opening quote; escapes are skipped, not checked.
 * NULL when it does not end. */
static const char *lax_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (++p >= end)
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Past one value of any depth, counting brackets (a counter, not a stack);
 * NULL when it does not end. Nothing inside is validated. */
static const char *lax_value(const char *p, const char *end)
{
    if (*p == '"')
        return lax_string(p, end);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                if (!(p = lax_string(p, end)))
                    return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if ((*p == '}' || *p == ']') && --depth == 0) {
                return p + 1;
            }
        }
        return NULL;
    }
    const char *q = p;
    while (q < end && ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                       *q == '-' || *q == '+' || *q == '.'))
        q++;
    return q > p ? q : NULL;
}

bool jscan_root_scalar(const char *p, size_t n, const char *name, jspan_t *val)
{
    const char *end = p + n;
    const size_t nl = strlen(name);
    bool found = false;
    jspan_t got = {NULL, 0, JT_NONE};
    p = ws(p, end);
    if (p >= end || *p != '{')
        return false;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return false;
    for (;;) {
        if (p >= end || *p != '"')
            return false;
        const char *k = p;
        if (!(p = lax_string(p, end)))
            return false;
        const bool match = (size_t)(p - k) == nl + 2 && !memcmp(k + 1, name, nl);
        p = ws(p, end);
        if (p >= end || *p != ':')
            return false;
        p = ws(p + 1, end);
        if (p >= end)
            return false;
        const char *v = p;
        if (!(p = lax_value(p, end)))
            return false;
        if (match) { /* the last one wins, as in JavaScript */
            jspan_t sv;
            found = jscan_validate(v, (size_t)(p - v), &sv, NULL) == 0 && sv.t != JT_STRING &&
                    sv.t != JT_OBJECT && sv.t != JT_ARRAY;
            if (found)
                got = sv;
        }
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            break;
        return false;
    }
    if (ws(p + 1, end) != end || !found)
        return false;
    *val = got;
    return true;
}
