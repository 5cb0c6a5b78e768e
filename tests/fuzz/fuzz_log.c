/* fuzz_log: log_emit with arbitrary messages and typed fields (keys, strings with any
 * bytes, integers, booleans) in both formats. Oracle:
 *   - exactly one line, ending in '\n', at most 4,000 bytes, valid UTF-8 with no raw
 *     control character, U+2028/2029 or bidi control in it;
 *   - JSON: jansson parses it (duplicates rejected) into exactly ts, level, msg, prog
 *     and the fields given (bad keys and repeats dropped, reserved keys as "_key"),
 *     with the values given (invalid UTF-8 as U+FFFD), unless "truncated" says the
 *     line was cut: then the fields are a prefix of those, the last string maybe cut;
 *   - text: a strict reader gets the same message and fields back, byte for byte.
 * Input: byte 0 flags (bit 0 json, bit 1 prog, bits 2-3 level), then msg and fields
 * as records (see next_*). */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "utf8.h"

#include "fuzz_check.h"

#define MAX_FIELDS 24

struct in {
    const uint8_t *p;
    size_t n;
};

static unsigned next_byte(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* A length-prefixed byte string (2-byte length), cut at the input's end. */
static char *next_str(struct in *in, size_t *len)
{
    size_t n = next_byte(in) << 8;
    n |= next_byte(in);
    n %= 5000;
    if (n > in->n)
        n = in->n;
    char *s = malloc(n + 1);
    CHECK(s);
    memcpy(s, in->p, n);
    s[n] = '\0';
    in->p += n;
    in->n -= n;
    *len = n;
    return s;
}

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 48)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool reserved(const char *k)
{
    static const char *const r[] = {"ts", "level", "msg", "prog", "truncated", "suppressed"};
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
        if (!strcmp(k, r[i]))
            return true;
    return false;
}

/* What a JSON reader must get back for s: invalid bytes as U+FFFD. */
static char *json_expected(const char *s, size_t n)
{
    char *o = malloc(n * 3 + 1);
    size_t k, j = 0;
    unsigned cp;
    CHECK(o);
    for (size_t i = 0; i < n; i += k) {
        k = utf8_decode(s + i, n - i, &cp);
        if (!k) {
            memcpy(o + j, "\xef\xbf\xbd", 3);
            j += 3;
            k = 1;
        } else {
            memcpy(o + j, s + i, k);
            j += k;
        }
    }
    o[j] = '\0';
    return o;
}

/* Whole line: UTF-8, nothing a terminal acts on, one '\n' at the end. */
static void check_line_bytes(const char *s, size_t n)
{
    unsigned cp;
    size_t k;
    CHECK(n >= 2 && n <= 4000 && s[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i += k) {
        k = utf8_decode(s + i, n - 1 - i, &cp);
        CHECK(k > 0);
        CHECK(!utf8_is_control(cp));
    }
}

struct exp_field {
    char key[64];
    int type;
    char *s; /* expected bytes: JSON form or raw (text) */
    size_t slen;
    bool null;
    long long i;
    unsigned long long u;
    bool b;
};

static void check_json(const char *line, size_t n, const char *msg, size_t msglen, bool prog,
                       int level, const struct exp_field *f, size_t nf)
{
    static const char *const lv[] = {"error", "warn", "info", "debug"};
    json_error_t e;
    json_t *j = json_loadb(line, n, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fprintf(stderr, "json: %s at %d: %.*s\n", e.text, e.position, (int)n, line);
    CHECK(j && json_is_object(j));
    bool cut = json_is_true(json_object_get(j, "truncated"));
    CHECK(cut || !json_object_get(j, "truncated"));
    CHECK(json_is_string(json_object_get(j, "ts")));
    CHECK(!strcmp(json_string_value(json_object_get(j, "level")), lv[level]));
    json_t *m = json_object_get(j, "msg");
    CHECK(json_is_string(m));
    char *em = json_expected(msg, msglen);
    if (cut)
        CHECK(!strncmp(json_string_value(m), em, json_string_length(m)));
    else
        CHECK(!strcmp(json_string_value(m), em) && json_string_length(m) == strlen(em));
    free(em);
    size_t fixed = 3 + (cut ? 1 : 0);
    if (json_object_get(j, "prog")) {
        /* a cut line may cut the program name too: then it is a prefix */
        const char *pv = json_string_value(json_object_get(j, "prog"));
        CHECK(prog && pv && (cut ? !strncmp(pv, "fuzz", strlen(pv)) : !strcmp(pv, "fuzz")));
        fixed++;
    } else {
        CHECK(!prog || cut);
    }
    size_t seen = 0;
    bool gap = false;
    for (size_t i = 0; i < nf; i++) {
        json_t *v = json_object_get(j, f[i].key);
        if (!v) {
            CHECK(cut);
            gap = true; /* every later field is gone too */
            continue;
        }
        CHECK(!gap);
        seen++;
        switch (f[i].type) {
        case LOG_F_STR:
            if (f[i].null) {
                CHECK(json_is_null(v));
            } else {
                CHECK(json_is_string(v));
                size_t vl = json_string_length(v);
                if (cut) /* only the last one present can be cut, but any may be whole */
                    CHECK(vl <= f[i].slen && !memcmp(json_string_value(v), f[i].s, vl));
                else
                    CHECK(vl == f[i].slen && !memcmp(json_string_value(v), f[i].s, vl));
            }
            break;
        case LOG_F_INT:
            CHECK(json_is_integer(v) && json_integer_value(v) == f[i].i);
            break;
        case LOG_F_UINT:
            if (f[i].u > (unsigned long long)INT64_MAX) {
                char b[32];
                snprintf(b, sizeof(b), "%llu", f[i].u);
                CHECK(json_is_string(v) && !strcmp(json_string_value(v), b));
            } else {
                CHECK(json_is_integer(v) && (unsigned long long)json_integer_value(v) == f[i].u);
            }
            break;
        case LOG_F_BOOL:
            CHECK(json_is_boolean(v) && json_is_true(v) == f[i].b);
            break;
        }
    }
    CHECK(json_object_size(j) == fixed + seen);
    json_decref(j);
}

/* ---- text reader ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Undoes the text escapes of s[0..n) into out; returns the length, or -1. */
static long unescape(const char *s, size_t n, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[j++] = s[i];
            continue;
        }
        if (++i >= n)
            return -1;
        switch (s[i]) {
        case 'n': out[j++] = '\n'; break;
        case 'r': out[j++] = '\r'; break;
        case 't': out[j++] = '\t'; break;
        case '"': out[j++] = '"'; break;
        case '\\': out[j++] = '\\'; break;
        case 'x':
            if (i + 2 >= n)
                return -1;
            {
                int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
                if (a < 0 || b < 0)
                    return -1;
                out[j++] = (char)(a << 4 | b);
                i += 2;
            }
            break;
        case 'u': {
            unsigned cp = 0;
            if (i + 4 >= n)
                return -1;
            for (int k = 1; k <= 4; k++) {
                int d = hexval(s[i + k]);
                if (d < 0)
                    return -1;
                cp = cp << 4 | (unsigned)d;
            }
            i += 4;
            if (cp < 0x80) {
                out[j++] = (char)cp;
            } else if (cp < 0x800) {
                out[j++] = (char)(0xc0 | cp >> 6);
                out[j++] = (char)(0x80 | (cp & 0x3f));
            } else {
                out[j++] = (char)(0xe0 | cp >> 12);
                out[j++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[j++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            return -1;
        }
    }
    return (long)j;
}

/* A quoted string at s[*i] (the opening quote): its raw content span. */
static bool quoted_span(const char *s, size_t n, size_t *i, size_t *start, size_t *len)
{
    size_t k = *i + 1;
    *start = k;
    while (k < n && s[k] != '"') {
        if (s[k] == '\\')
            k++;
        k++;
    }
    if (k >= n)
        return false;
    *len = k - *start;
    *i = k + 1;
    return true;
}

static void check_text(const char *line, size_t n, const char *msg, size_t msglen,
                       const struct exp_field *f, size_t nf)
{
    char *buf = malloc(n + 1);
    CHECK(buf);
    n--; /* the newline */
    CHECK(n >= 31 && line[24] == ' ' && line[30] == ' '); /* TS LEVEL msg */
    size_t i = 31, st, ln;
    long ul;
    bool cut = n >= 15 && !memcmp(line + n - 15, " truncated=true", 15);
    if (cut) {
        free(buf);
        return; /* a cut line: the byte checks above are what holds */
    }
    /* msg */
    if (i < n && line[i] == '"') {
        CHECK(quoted_span(line, n, &i, &st, &ln));
    } else {
        const char *eq = memchr(line + i, '=', n - i);
        size_t end = n;
        if (eq) {
            end = (size_t)(eq - line);
            while (end > i && line[end] != ' ')
                end--;
        }
        st = i;
        ln = end - i;
        i = end;
    }
    ul = unescape(line + st, ln, buf);
    CHECK(ul >= 0 && (size_t)ul == msglen && !memcmp(buf, msg, msglen));
    /* fields */
    for (size_t fi = 0; fi < nf; fi++) {
        char want[80];
        int wl = snprintf(want, sizeof(want), " %s=", f[fi].key);
        CHECK(i + (size_t)wl <= n && !memcmp(line + i, want, (size_t)wl));
        i += (size_t)wl;
        if (i < n && line[i] == '"') {
            CHECK(quoted_span(line, n, &i, &st, &ln));
            ul = unescape(line + st, ln, buf);
            CHECK(f[fi].type == LOG_F_STR && !f[fi].null);
            CHECK(ul >= 0 && (size_t)ul == f[fi].slen && !memcmp(buf, f[fi].s, f[fi].slen));
        } else {
            st = i;
            while (i < n && line[i] != ' ')
                i++;
            ln = i - st;
            char v[40];
            switch (f[fi].type) {
            case LOG_F_STR:
                if (f[fi].null) {
                    CHECK(ln == 1 && line[st] == '-');
                } else {
                    CHECK(!memchr(line + st, '\\', ln) && !memchr(line + st, '"', ln) &&
                          !memchr(line + st, '=', ln));
                    CHECK(ln == f[fi].slen && !memcmp(line + st, f[fi].s, ln));
                }
                break;
            case LOG_F_INT:
                snprintf(v, sizeof(v), "%lld", f[fi].i);
                CHECK(ln == strlen(v) && !memcmp(line + st, v, ln));
                break;
            case LOG_F_UINT:
                snprintf(v, sizeof(v), "%llu", f[fi].u);
                CHECK(ln == strlen(v) && !memcmp(line + st, v, ln));
                break;
            case LOG_F_BOOL:
                snprintf(v, sizeof(v), "%s", f[fi].b ? "true" : "false");
                CHECK(ln == strlen(v) && !memcmp(line + st, v, ln));
                break;
            }
        }
    }
    CHECK(i == n);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    unsigned flags = next_byte(&in);
    bool json = flags & 1, prog = flags & 2;
    int level = (int)((flags >> 2) & 3);
    log_field_t fields[MAX_FIELDS];
    char *keys[MAX_FIELDS], *vals[MAX_FIELDS];
    struct exp_field exp[MAX_FIELDS];
    size_t nf = 0, ne = 0, msglen;

    static log_t lg;
    CHECK(log_init(&lg, "debug", json ? "json" : "text", prog ? "fuzz" : NULL) == 0);
    log_set_rate(&lg, 0, 0, 0); /* every line comes out */
    char *msg = next_str(&in, &msglen);
    msglen = strlen(msg);
    memset(vals, 0, sizeof(vals));
    while (in.n && nf < MAX_FIELDS) {
        unsigned t = next_byte(&in);
        size_t kl, vl;
        keys[nf] = next_str(&in, &kl);
        if (kl > 60)
            keys[nf][60] = '\0';
        log_field_t *lf = &fields[nf];
        switch (t % 6) {
        case 0:
        case 1:
            vals[nf] = next_str(&in, &vl);
            *lf = LF_STR(keys[nf], vals[nf]);
            break;
        case 2:
            vals[nf] = next_str(&in, &vl);
            *lf = LF_STRN(keys[nf], vals[nf], next_byte(&in));
            break;
        case 3: {
            long long v = 0;
            for (int k = 0; k < 8; k++)
                v = (long long)((unsigned long long)v << 8 | next_byte(&in));
            *lf = LF_INT(keys[nf], v);
            break;
        }
        case 4: {
            unsigned long long v = 0;
            for (int k = 0; k < 8; k++)
                v = v << 8 | next_byte(&in);
            *lf = LF_UINT(keys[nf], v);
            break;
        }
        default:
            *lf = t & 0x80 ? LF_STR(keys[nf], NULL) : LF_BOOL(keys[nf], t & 0x40);
            break;
        }
        nf++;
    }
    /* What must come out: valid keys, first of each, reserved ones as _key. */
    for (size_t i = 0; i < nf; i++) {
        bool dup = false;
        if (!key_ok(keys[i]))
            continue;
        for (size_t k = 0; k < i; k++)
            if (key_ok(keys[k]) && !strcmp(keys[k], keys[i]))
                dup = true;
        if (dup)
            continue;
        struct exp_field *e = &exp[ne++];
        memset(e, 0, sizeof(*e));
        snprintf(e->key, sizeof(e->key), "%s%s", reserved(keys[i]) ? "_" : "", keys[i]);
        e->type = fields[i].type;
        if (e->type == LOG_F_STR) {
            if (!fields[i].v.s) {
                e->null = true;
            } else {
                size_t sl = fields[i].len == (size_t)-1 ? strlen(fields[i].v.s)
                                                        : strnlen(fields[i].v.s, fields[i].len);
                e->s = json ? json_expected(fields[i].v.s, sl) : strndup(fields[i].v.s, sl);
                CHECK(e->s);
                e->slen = strlen(e->s);
            }
        }
        if (e->type == LOG_F_INT)
            e->i = fields[i].v.i;
        else if (e->type == LOG_F_UINT)
            e->u = fields[i].v.u;
        else if (e->type == LOG_F_BOOL)
            e->b = fields[i].v.b;
    }

    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    CHECK(f);
    log_set_output(f);
    log_emit(level, msg, fields, nf);
    log_set_output(NULL);
    fclose(f);

    check_line_bytes(out, outlen);
    CHECK(memchr(out, '\n', outlen) == out + outlen - 1);
    if (json)
        check_json(out, outlen, msg, msglen, prog, level, exp, ne);
    else
        check_text(out, outlen, msg, msglen, exp, ne);

    free(out);
    free(msg);
    for (size_t i = 0; i < nf; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    for (size_t i = 0; i < ne; i++)
        free(exp[i].s);
    return 0;
}
