/* fuzz_jscan: jscan_validate on arbitrary bytes, with three oracles:
 *  - input that is not valid UTF-8 is never valid JSON (bytes >= 0x80 may only
 *    appear inside strings, which jscan must check);
 *  - a valid document is walked recursively: every member/item span validates on
 *    its own with the same type, every string unescapes, jobj_get finds the last
 *    member of each name;
 *  - the member index (jscan_validate_ix) gives the same verdict and error offset,
 *    and every object it holds yields through jmembers what walking its text
 *    yields;
 *  - on UTF-8 input without NUL bytes the verdict must match jansson's
 *    json_loadb(JSON_DECODE_ANY), and so must the decoded tree. Known, legitimate
 *    differences are excluded: jansson refuses integers beyond long long, reals
 *    that overflow a double, "\u0000" and lone surrogate escapes (RFC 8259 allows
 *    them; JavaScript accepts them), and nesting deeper than our limit;
 *  - a refusal for depth (JSCAN_E_DEPTH) is only ever at a bracket that really
 *    is one level too deep (jansson, up to its own limit, agrees), and is never
 *    given for input that is bad JSON before that bracket;
 *  - jscan_root_scalar (the recovery of a too-deep frame's id) stays inside its
 *    input, returns only numbers and literals, and on valid objects agrees with
 *    jobj_get. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jscan.h"

#include "fuzz_check.h"
#include "jindex_oracle.h"

/* Strict UTF-8 (Unicode 15, table 3-7): no overlongs, surrogates or > U+10FFFF. */
static int utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c == 0xe0) { len = 3; lo = 0xa0; }
        else if (c >= 0xe1 && c <= 0xec) len = 3;
        else if (c == 0xed) { len = 3; hi = 0x9f; }
        else if (c >= 0xee && c <= 0xef) len = 3;
        else if (c == 0xf0) { len = 4; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) len = 4;
        else if (c == 0xf4) { len = 4; hi = 0x8f; }
        else return 0;
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf)
                return 0;
        i += len;
    }
    return 1;
}

static unsigned hex4(const char *p)
{
    char tmp[5] = {p[0], p[1], p[2], p[3], 0};
    return (unsigned)strtoul(tmp, NULL, 16);
}

/* A string span holding "\u0000" or a surrogate escape that is not half of a pair. */
static int str_jansson_refuses(jspan_t s)
{
    const char *p = s.p + 1, *end = s.p + s.n - 1;
    while (p < end) {
        if (*p != '\\') {
            p++;
            continue;
        }
        if (p[1] != 'u') {
            p += 2;
            continue;
        }
        unsigned cp = hex4(p + 2);
        p += 6;
        if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
            return 1;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                return 1;
            unsigned lo = hex4(p + 2);
            if (lo < 0xdc00 || lo > 0xdfff)
                return 1;
            p += 6;
        }
    }
    return 0;
}

/* A number jansson cannot hold: an integer outside long long, a real overflowing. */
static int num_jansson_refuses(jspan_t s)
{
    char *buf = malloc(s.n + 1);
    CHECK(buf);
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    int refuses;
    errno = 0;
    if (strpbrk(buf, ".eE")) {
        double d = strtod(buf, NULL);
        refuses = isinf(d);
    } else {
        (void)strtoll(buf, NULL, 10);
        refuses = errno == ERANGE;
    }
    free(buf);
    return refuses;
}

static char *unescape(jspan_t s, size_t *n)
{
    char *buf = malloc(s.n + 1);
    CHECK(buf);
    CHECK(jstr_get(s, buf, s.n + 1, n) == 0);
    CHECK(buf[*n] == '\0');
    return buf;
}

typedef struct member {
    jspan_t k, v;
    char   *key;
    size_t  klen;
    int     last; /* no later member has the same name */
} member_t;

static member_t *members(jspan_t obj, size_t *count)
{
    size_t n = 0, cap = 8;
    member_t *m = malloc(cap * sizeof(*m));
    CHECK(m);
    jiter_t it;
    jspan_t k, v;
    jobj_iter(&it, obj);
    while (jobj_next(&it, &k, &v)) {
        if (n == cap) {
            cap *= 2;
            m = realloc(m, cap * sizeof(*m));
            CHECK(m);
        }
        CHECK(k.t == JT_STRING);
        m[n].k = k;
        m[n].v = v;
        m[n].key = unescape(k, &m[n].klen);
        m[n].last = 1;
        for (size_t i = 0; i < n; i++)
            if (m[i].klen == m[n].klen && !memcmp(m[i].key, m[n].key, m[n].klen))
                m[i].last = 0;
        n++;
    }
    *count = n;
    return m;
}

static void free_members(member_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].key);
    free(m);
}

/* Walks a validated value; returns 1 when it holds something jansson refuses. */
static int walk(jspan_t v)
{
    jspan_t r;
    CHECK(jscan_validate(v.p, v.n, &r, NULL) == 0);
    CHECK(r.p == v.p && r.n == v.n && r.t == v.t);
    int refuses = 0;
    switch (v.t) {
    case JT_OBJECT: {
        size_t n;
        member_t *m = members(v, &n);
        CHECK(jobj_empty(v) == (n == 0));
        for (size_t i = 0; i < n; i++) {
            refuses |= str_jansson_refuses(m[i].k);
            refuses |= walk(m[i].v);
            jspan_t got;
            if (m[i].last && !memchr(m[i].key, '\0', m[i].klen) && m[i].klen < 255) {
                CHECK(jobj_get(v, m[i].key, &got));
                CHECK(got.p == m[i].v.p && got.n == m[i].v.n && got.t == m[i].v.t);
            }
        }
        free_members(m, n);
        break;
    }
    case JT_ARRAY: {
        jiter_t it;
        jspan_t item;
        jarr_iter(&it, v);
        while (jarr_next(&it, &item))
            refuses |= walk(item);
        break;
    }
    case JT_STRING: {
        size_t n;
        free(unescape(v, &n));
        refuses = str_jansson_refuses(v);
        break;
    }
    case JT_NUMBER: {
        uint64_t u;
        double d;
        if (jnum_u53(v, &u) == 0) {
            CHECK(u <= 9007199254740991ULL);
            if (jnum_double(v, &d) == 0)
                CHECK((double)u == d);
        }
        refuses = num_jansson_refuses(v);
        break;
    }
    case JT_TRUE: CHECK(v.n == 4 && !memcmp(v.p, "true", 4)); break;
    case JT_FALSE: CHECK(v.n == 5 && !memcmp(v.p, "false", 5)); break;
    case JT_NULL: CHECK(v.n == 4 && !memcmp(v.p, "null", 4)); break;
    default: CHECK(!"bad type");
    }
    return refuses;
}

static size_t jansson_depth(const json_t *j)
{
    size_t d = 0;
    if (json_is_object(j)) {
        const char *k;
        size_t kl;
        json_t *v;
        json_object_keylen_foreach((json_t *)j, k, kl, v) {
            size_t c = jansson_depth(v);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            size_t c = jansson_depth(json_array_get(j, i));
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

/* Both parsers accepted: the trees must agree. */
static void compare(jspan_t v, const json_t *j)
{
    switch (v.t) {
    case JT_OBJECT: {
        CHECK(json_is_object(j));
        size_t n, distinct = 0;
        member_t *m = members(v, &n);
        for (size_t i = 0; i < n; i++) {
            if (!m[i].last)
                continue;
            distinct++;
            json_t *jv = json_object_getn(j, m[i].key, m[i].klen);
            CHECK(jv);
            compare(m[i].v, jv);
        }
        CHECK(distinct == json_object_size(j));
        free_members(m, n);
        break;
    }
    case JT_ARRAY: {
        CHECK(json_is_array(j));
        jiter_t it;
        jspan_t item;
        size_t i = 0;
        jarr_iter(&it, v);
        while (jarr_next(&it, &item)) {
            CHECK(i < json_array_size(j));
            compare(item, json_array_get(j, i++));
        }
        CHECK(i == json_array_size(j));
        break;
    }
    case JT_STRING: {
        CHECK(json_is_string(j));
        size_t n;
        char *s = unescape(v, &n);
        CHECK(n == json_string_length(j) && !memcmp(s, json_string_value(j), n));
        free(s);
        break;
    }
    case JT_NUMBER: {
        CHECK(json_is_number(j));
        double d;
        if (jnum_double(v, &d) == 0)
            CHECK(d == json_number_value(j));
        break;
    }
    case JT_TRUE: CHECK(json_is_true(j)); break;
    case JT_FALSE: CHECK(json_is_false(j)); break;
    case JT_NULL: CHECK(json_is_null(j)); break;
    default: CHECK(!"bad type");
    }
}

/* Nesting at offset pos (brackets outside strings) of text that validated up
 * to pos: the number of containers open there. */
static size_t depth_at(const char *p, size_t pos)
{
    size_t d = 0;
    for (size_t i = 0; i < pos; i++) {
        if (p[i] == '"') {
            for (i++; i < pos && p[i] != '"'; i++)
                if (p[i] == '\\')
                    i++;
        } else if (p[i] == '{' || p[i] == '[') {
            d++;
        } else if (p[i] == '}' || p[i] == ']') {
            d--;
        }
    }
    return d;
}

static void check_root_scalar(const char *p, size_t size, int ok, jspan_t root)
{
    static const char *const names[] = {"id", "mode", "twoway", "a"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        jspan_t v, w;
        bool got = jscan_root_scalar(p, size, names[i], &v);
        if (got) {
            CHECK(v.p >= p && v.p + v.n <= p + size && v.n > 0);
            CHECK(v.t == JT_NUMBER || v.t == JT_TRUE || v.t == JT_FALSE || v.t == JT_NULL);
        }
        if (ok && root.t == JT_OBJECT) {
            bool want = jobj_get(root, names[i], &w) && w.t != JT_STRING && w.t != JT_OBJECT &&
                        w.t != JT_ARRAY;
            if (got) /* what it finds is what jobj_get finds */
                CHECK(want && w.p == v.p && w.n == v.n && w.t == v.t);
            else if (!memchr(p, '\\', size)) /* keys without escapes: the same verdict */
                CHECK(!want);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    CHECK(p);
    memcpy(p, data, size);
    jspan_t root;
    size_t errpos = (size_t)-1;
    int rc = jscan_validate(p, size, &root, &errpos);
    int ok = rc == JSCAN_OK;
    CHECK(rc == JSCAN_OK || rc == JSCAN_E_SYNTAX || rc == JSCAN_E_DEPTH);
    if (rc == JSCAN_E_DEPTH) {
        CHECK(errpos < size && (p[errpos] == '{' || p[errpos] == '['));
        CHECK(depth_at(p, errpos) == JSCAN_MAX_DEPTH);
    }
    /* a lower limit refuses at the same place or earlier, never later */
    size_t lerr = (size_t)-1;
    int lrc = jscan_validate_max(p, size, NULL, &lerr, NULL, 0, (int)(size % 7));
    if (ok)
        CHECK(lrc == JSCAN_OK || lrc == JSCAN_E_DEPTH);
    else
        CHECK(lrc != JSCAN_OK && lerr <= errpos);
    check_root_scalar(p, size, ok, root);
    static jindex_t ix;
    jspan_t iroot;
    size_t ierrpos = (size_t)-1;
    CHECK((jscan_validate_ix(p, size, &iroot, &ierrpos, &ix, (int)(size % 4) + 1) == 0) == ok);
    if (ok) {
        CHECK(iroot.p == root.p && iroot.n == root.n && iroot.t == root.t);
        if (root.t == JT_OBJECT)
            CHECK(jindex_agrees_with_text(&ix, JIX_ROOT, root) == 0);
    } else {
        CHECK(ierrpos == errpos);
    }
    int refuses = 0;
    if (ok) {
        CHECK(root.p >= p && root.p + root.n <= p + size && root.n > 0);
        refuses = walk(root);
    } else {
        CHECK(errpos <= size);
    }
    int utf8 = utf8_valid((const unsigned char *)p, size);
    if (!utf8)
        CHECK(!ok);
    if (utf8 && !memchr(p, '\0', size)) {
        json_error_t err;
        json_t *j = json_loadb(p, size, JSON_DECODE_ANY, &err);
        if (ok && !j && !refuses) {
            fprintf(stderr, "jscan accepts, jansson refuses: %s (at %d)\n", err.text, err.position);
            abort();
        }
        if (rc == JSCAN_E_DEPTH && j)
            CHECK(jansson_depth(j) > JSCAN_MAX_DEPTH);
        if (!ok && j && jansson_depth(j) <= JSCAN_MAX_DEPTH) {
            fprintf(stderr, "jansson accepts, jscan refuses at offset %zu\n", errpos);
            abort();
        }
        if (ok && j)
            compare(root, j);
        json_decref(j);
    }
    free(p);
    return 0;
}
