/* Unit tests for libmicro/jscan.c: the strict validator against an RFC 8259 corpus
 * (numbers, strings, escapes, UTF-8, depth, white space), member and item
 * iteration, jobj_get, jstr_get/jstr_eq unescaping, the number helpers, and the
 * member index (jscan_validate_ix, jmembers_*) against walking the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "jindex_oracle.h"

typedef struct sample {
    const char *text;
    size_t      len; /* 0 = strlen */
} sample_t;

#define S(lit) {lit, sizeof(lit) - 1}

static const sample_t valid[] = {
    S("0"), S("-0"), S("1"), S("-1"), S("123"), S("0.5"), S("-0.0"), S("1e5"), S("1E5"),
    S("1e+5"), S("1e-5"), S("-1.25E-10"), S("0e0"), S("9007199254740993"),
    S("123456789012345678901234567890"), S("1e400"),
    S("true"), S("false"), S("null"), S("\"\""), S("\"abc\""),
    S("[]"), S("{}"), S("[ ]"), S("{ }"), S("[1,2,3]"), S("{\"a\":1,\"b\":[true,null]}"),
    S(" \t\r\n1 \t\r\n"), S(" [ 1 , { \"a\" : \"b\" } ] "),
    S("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041 \\u00e9 \\uD83D\\uDE00\""),
    S("\"\\ud800\""),                            /* lone surrogate escape: RFC allows */
    S("\"\\u0000\""),
    S("\"\x7f\""),                               /* DEL needs no escape */
    S("\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""), /* 2-, 3-, 4-byte UTF-8 */
    S("\"\xc2\x80\""), S("\"\xdf\xbf\""),        /* 2-byte range ends */
    S("\"\xe0\xa0\x80\""), S("\"\xef\xbf\xbf\""), /* 3-byte range ends (U+FFFF ok) */
    S("\"\xed\x9f\xbf\""), S("\"\xee\x80\x80\""), /* around the surrogates */
    S("\"\xf0\x90\x80\x80\""), S("\"\xf4\x8f\xbf\xbf\""), /* U+10000, U+10FFFF */
    S("{\"a\":1,\"a\":2}"),                      /* duplicate names are legal */
    S("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
};

static const sample_t invalid[] = {
    S(""), S(" "), S("\n\t"),
    /* numbers */
    S("01"), S("-01"), S("00"), S("-"), S("--1"), S("+1"), S(".5"), S("1."), S("1.e5"),
    S("1e"), S("1e+"), S("1E-"), S("0x10"), S("1_000"), S("NaN"), S("Infinity"),
    S("-Infinity"), S("- 1"), S("1 2"),
    /* literals */
    S("tru"), S("nul"), S("True"), S("NULL"), S("falsey"), S("undefined"),
    /* structure */
    S("[1,]"), S("[,1]"), S("[,]"), S("{\"a\":1,}"), S("{,}"), S("[1 2]"), S("{\"a\" 1}"),
    S("{\"a\":}"), S("{\"a\"}"), S("{a:1}"), S("{'a':1}"), S("{1:1}"), S("[1]]"), S("[[1]"),
    S("{}}"), S("{}{}"), S("[1] x"), S("["), S("{"), S("]"), S("}"), S("{\"a\":1"),
    /* strings */
    S("\"abc"), S("\"\\"), S("\"\\\""), S("'a'"), S("\"\t\""), S("\"\n\""), S("\"\x01\""),
    S("\"\x1f\""), S("\"\\x41\""), S("\"\\a\""), S("\"\\U0041\""), S("\"\\u12\""),
    S("\"\\u12g4\""), S("\"\\u\""), S("\"\\u123"), S("\"a\0b\""),
    /* UTF-8 */
    S("\"\x80\""), S("\"\xbf\""), S("\"\xc0\xaf\""), S("\"\xc1\xbf\""), /* continuation, overlong 2 */
    S("\"\xe0\x80\xaf\""), S("\"\xe0\x9f\xbf\""),                     /* overlong 3 */
    S("\"\xf0\x80\x80\xaf\""), S("\"\xf0\x8f\xbf\xbf\""),             /* overlong 4 */
    S("\"\xed\xa0\x80\""), S("\"\xed\xbf\xbf\""),                     /* UTF-16 surrogates */
    S("\"\xed\xa0\xbd\xed\xb8\x80\""),                                /* CESU-8 pair */
    S("\"\xf4\x90\x80\x80\""), S("\"\xf5\x80\x80\x80\""), S("\"\xf8\x88\x80\x80\x80\""),
    S("\"\xfe\""), S("\"\xff\""),
    S("\"\xc3\""), S("\"\xe2\x82\""), S("\"\xf0\x9f\x98\""),          /* truncated by the quote */
    S("\"\xc3"), S("\"\xe2\x82"), S("\"\xf0\x9f\x98"),                /* truncated by the end */
    S("\"\xc3\x28\""), S("\"\xe2\x28\xa1\""),
    S("\xc3\xa9"), S("\xef\xbb\xbf{}"),                               /* outside strings, BOM */
    /* white space is only space, tab, CR, LF */
    S("\f1"), S("\v1"), S("1\f"), S("\xc2\xa0" "1"), S("[1,\v2]"), S("\0"), S("1\0"),
};

static void corpus_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        jspan_t root = {NULL, 0, JT_NONE};
        size_t errpos = 12345;
        int rc = jscan_validate(valid[i].text, valid[i].len, &root, &errpos);
        if (rc != 0)
            fail_msg("valid[%zu] refused at %zu: %.*s", i, errpos, (int)valid[i].len,
                     valid[i].text);
        assert_int_not_equal(root.t, JT_NONE);
        assert_true(root.p >= valid[i].text && root.p + root.n <= valid[i].text + valid[i].len);
        assert_int_equal(errpos, 12345); /* untouched on success */
    }
}

static void corpus_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        jspan_t root;
        size_t errpos = 12345;
        if (jscan_validate(invalid[i].text, invalid[i].len, &root, &errpos) == 0)
            fail_msg("invalid[%zu] accepted: %.*s", i, (int)invalid[i].len, invalid[i].text);
        assert_true(errpos <= invalid[i].len);
        assert_int_equal(jscan_validate(invalid[i].text, invalid[i].len, NULL, NULL), -1);
    }
}

/* Validation must not read past n: each valid sample cut short is checked in an
 * exact-size heap copy (ASan catches over-reads). */
static void truncations_refused(void **state)
{
    (void)state;
    const char *doc = "{\"a\":[1,-2.5e+3,true,false,null,\"\\u00e9\xc3\xa9\"],\"b\":{}}";
    size_t n = strlen(doc);
    for (size_t cut = 0; cut < n; cut++) {
        char *p = malloc(cut ? cut : 1);
        memcpy(p, doc, cut);
        jspan_t root;
        int rc = jscan_validate(p, cut, &root, NULL);
        free(p);
        if (rc == 0)
            fail_msg("prefix of %zu bytes accepted", cut);
    }
    assert_int_equal(jscan_validate(doc, n, NULL, NULL), 0);
}

static void root_span_and_types(void **state)
{
    (void)state;
    jspan_t r;
    assert_int_equal(jscan_validate("  {\"a\":1}\n", 10, &r, NULL), 0);
    assert_int_equal(r.t, JT_OBJECT);
    assert_int_equal(r.n, 7);
    assert_memory_equal(r.p, "{\"a\":1}", 7);
    assert_int_equal(jscan_validate(" \"s\" ", 5, &r, NULL), 0);
    assert_int_equal(r.t, JT_STRING);
    assert_int_equal(r.n, 3); /* quotes included */
    struct { const char *t; jtype_t want; } types[] = {
        {"[1]", JT_ARRAY}, {"-1.5", JT_NUMBER}, {"true", JT_TRUE}, {"false", JT_FALSE},
        {"null", JT_NULL},
    };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(jscan_validate(types[i].t, strlen(types[i].t), &r, NULL), 0);
        assert_int_equal(r.t, types[i].want);
        assert_int_equal(r.n, strlen(types[i].t));
    }
}

static void error_positions(void **state)
{
    (void)state;
    size_t pos;
    assert_int_equal(jscan_validate("[1,]", 4, NULL, &pos), -1);
    assert_int_equal(pos, 3);
    assert_int_equal(jscan_validate("01", 2, NULL, &pos), -1);
    assert_int_equal(pos, 1);
    assert_int_equal(jscan_validate("{\"a\":tru}", 9, NULL, &pos), -1);
    assert_int_equal(pos, 5);
    assert_int_equal(jscan_validate("\"ab\x01\"", 5, NULL, &pos), -1);
    assert_int_equal(pos, 3);
}

static char *nest(const char *open, const char *close, int depth, const char *inner)
{
    size_t lo = strlen(open), lc = strlen(close), li = strlen(inner);
    char *s = malloc((size_t)depth * (lo + lc) + li + 1), *p = s;
    for (int i = 0; i < depth; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (int i = 0; i < depth; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

static void depth_limit(void **state)
{
    (void)state;
    size_t pos;
    /* what a Node peer sends: 1,000 deep is fine, and so is the limit itself */
    char *node = nest("[", "]", 1000, "1");
    char *ok = nest("[", "]", JSCAN_MAX_DEPTH, "1");
    char *deep = nest("[", "]", JSCAN_MAX_DEPTH + 1, "1");
    char *ok_obj = nest("{\"k\":", "}", JSCAN_MAX_DEPTH, "0");
    char *deep_obj = nest("{\"k\":[", "]}", JSCAN_MAX_DEPTH / 2 + 1, "");
    char *mixed = nest("{\"a\":[1,\"x\",{\"b\":", "}]}", 1000 / 3, "null");
    char *very_deep = nest("[", "]", 100000, "");
    assert_int_equal(jscan_validate(node, strlen(node), NULL, NULL), JSCAN_OK);
    assert_int_equal(jscan_validate(ok, strlen(ok), NULL, NULL), JSCAN_OK);
    assert_int_equal(jscan_validate(ok_obj, strlen(ok_obj), NULL, NULL), JSCAN_OK);
    assert_int_equal(jscan_validate(mixed, strlen(mixed), NULL, NULL), JSCAN_OK);
    /* one more level: refused as too deep (not as bad JSON), at that bracket */
    assert_int_equal(jscan_validate(deep, strlen(deep), NULL, &pos), JSCAN_E_DEPTH);
    assert_int_equal(pos, JSCAN_MAX_DEPTH);
    assert_int_equal(jscan_validate(deep_obj, strlen(deep_obj), NULL, &pos), JSCAN_E_DEPTH);
    assert_true(deep_obj[pos] == '[' || deep_obj[pos] == '{');
    assert_int_equal(jscan_validate(very_deep, strlen(very_deep), NULL, &pos), JSCAN_E_DEPTH);
    assert_int_equal(pos, JSCAN_MAX_DEPTH);
    /* bad JSON before the limit is a syntax error */
    ok[10] = '}';
    assert_int_equal(jscan_validate(ok, strlen(ok), NULL, &pos), JSCAN_E_SYNTAX);
    assert_int_equal(pos, 10);
    /* depth is nesting, not the number of containers */
    char wide[4096];
    strcpy(wide, "[");
    for (int i = 0; i < 600; i++)
        strcat(wide, i ? ",[]" : "[]");
    strcat(wide, "]");
    assert_int_equal(jscan_validate(wide, strlen(wide), NULL, NULL), 0);
    free(node);
    free(ok);
    free(deep);
    free(ok_obj);
    free(deep_obj);
    free(mixed);
    free(very_deep);
}

static void depth_limit_chosen(void **state)
{
    (void)state;
    size_t pos;
    char *d5 = nest("[", "]", 5, "");
    assert_int_equal(jscan_validate_max(d5, strlen(d5), NULL, NULL, NULL, 0, 5), JSCAN_OK);
    assert_int_equal(jscan_validate_max(d5, strlen(d5), NULL, &pos, NULL, 0, 4), JSCAN_E_DEPTH);
    assert_int_equal(pos, 4);
    assert_int_equal(jscan_validate_max("1", 1, NULL, NULL, NULL, 0, 0), JSCAN_OK); /* scalars need no level */
    assert_int_equal(jscan_validate_max("[]", 2, NULL, NULL, NULL, 0, 0), JSCAN_E_DEPTH);
    free(d5);
    /* a limit beyond the cap is the cap */
    char *cap = nest("[", "]", JSCAN_DEPTH_CAP, "");
    char *over = nest("[", "]", JSCAN_DEPTH_CAP + 1, "");
    assert_int_equal(jscan_validate_max(cap, strlen(cap), NULL, NULL, NULL, 0, 1 << 30), JSCAN_OK);
    assert_int_equal(jscan_validate_max(over, strlen(over), NULL, &pos, NULL, 0, 1 << 30), JSCAN_E_DEPTH);
    assert_int_equal(pos, JSCAN_DEPTH_CAP);
    free(cap);
    free(over);
}

/* The validator keeps no stack frame per level: documents at and far beyond
 * the limit validate on a 64 KiB thread stack (the recursive version needed
 * ~100 bytes per level, and more under the sanitizers). */
struct deep_job {
    const char *doc;
    int rc;
};

static void *validate_on_small_stack(void *arg)
{
    struct deep_job *j = arg;
    jindex_t ix;
    j->rc = jscan_validate_max(j->doc, strlen(j->doc), NULL, NULL, &ix, 3, JSCAN_DEPTH_CAP);
    return NULL;
}

static void no_stack_growth(void **state)
{
    (void)state;
    char *cap = nest("{\"k\":[", "]}", JSCAN_DEPTH_CAP / 2, "1");
    char *huge = nest("[", "]", 1000000, "");
    struct deep_job jobs[] = {{cap, 1}, {huge, 1}};
    for (size_t i = 0; i < 2; i++) {
        pthread_attr_t attr;
        pthread_t th;
        assert_int_equal(pthread_attr_init(&attr), 0);
        assert_int_equal(pthread_attr_setstacksize(&attr, 64 * 1024), 0);
        assert_int_equal(pthread_create(&th, &attr, validate_on_small_stack, &jobs[i]), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        pthread_attr_destroy(&attr);
    }
    assert_int_equal(jobs[0].rc, JSCAN_OK);
    assert_int_equal(jobs[1].rc, JSCAN_E_DEPTH);
    free(cap);
    free(huge);
}

/* Deep values leave the index of the shallow members intact. */
static void index_with_deep_values(void **state)
{
    (void)state;
    char *inner = nest("[", "]", 1000, "{\"x\":1}");
    size_t n = strlen(inner) + 64;
    char *doc = malloc(n);
    snprintf(doc, n, "{\"a\":{\"b\":%s,\"c\":2},\"d\":true}", inner);
    jindex_t ix;
    jspan_t root, v;
    int slot;
    assert_int_equal(jscan_validate_ix(doc, strlen(doc), &root, NULL, &ix, 3), JSCAN_OK);
    assert_true(ix.complete);
    assert_int_equal(ix.n, 4); /* a, b, c, d: nothing inside the arrays */
    assert_true(jmembers_get(&ix, JIX_ROOT, root, "a", &v, &slot));
    jspan_t b;
    assert_true(jmembers_get(&ix, slot, v, "b", &b, NULL));
    assert_int_equal(b.t, JT_ARRAY);
    assert_int_equal(b.n, strlen(inner));
    assert_memory_equal(b.p, inner, b.n);
    assert_true(jmembers_get(&ix, slot, v, "c", &b, NULL));
    assert_true(b.n == 1 && b.p[0] == '2');
    assert_true(jmembers_get(&ix, JIX_ROOT, root, "d", &v, NULL));
    assert_int_equal(v.t, JT_TRUE);
    free(inner);
    free(doc);
}

/* Recovering the id, mode and twoway of a frame refused for its depth. */
static void root_scalar_recovery(void **state)
{
    (void)state;
    char *deep = nest("[", "]", 5000, "1");
    size_t n = strlen(deep) + 128;
    char *frame = malloc(n);
    snprintf(frame, n, "{\"id\":42,\"twoway\":true,\"data\":{\"url\":\"/x\",\"data\":%s},\"mode\":0}", deep);
    assert_int_equal(jscan_validate(frame, strlen(frame), NULL, NULL), JSCAN_E_DEPTH);
    jspan_t v;
    assert_true(jscan_root_scalar(frame, strlen(frame), "id", &v));
    assert_true(v.t == JT_NUMBER && v.n == 2 && !memcmp(v.p, "42", 2));
    assert_true(jscan_root_scalar(frame, strlen(frame), "mode", &v));
    assert_true(v.t == JT_NUMBER && v.n == 1 && v.p[0] == '0');
    assert_true(jscan_root_scalar(frame, strlen(frame), "twoway", &v));
    assert_int_equal(v.t, JT_TRUE);
    assert_false(jscan_root_scalar(frame, strlen(frame), "data", &v)); /* not a scalar */
    assert_false(jscan_root_scalar(frame, strlen(frame), "nope", &v));
    /* the last occurrence wins; strings and broken scalars are not recovered */
    const char *twice = "{\"id\":1,\"id\":2}";
    assert_true(jscan_root_scalar(twice, strlen(twice), "id", &v));
    assert_true(v.n == 1 && v.p[0] == '2');
    const char *str = "{\"id\":\"1\"}", *bad = "{\"id\":1x}", *esc = "{\"i\\u0064\":1}";
    assert_false(jscan_root_scalar(str, strlen(str), "id", &v));
    assert_false(jscan_root_scalar(bad, strlen(bad), "id", &v));
    assert_false(jscan_root_scalar(esc, strlen(esc), "id", &v));
    /* the root's own members must be well formed to its end */
    const char *broken[] = {"", "[]", "{", "{}", "{\"id\":1", "{\"id\":1,}", "{\"id\" 1}", "{\"id\":1} x",
                            "{\"id\":1,\"d\":[[[}", "{\"id\":1,\"d\":\"abc}", "{id:1}"};
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
        assert_false(jscan_root_scalar(broken[i], strlen(broken[i]), "id", &v));
    /* brackets inside strings do not count */
    const char *strs = "{\"d\":[\"]]]\\\"\"],\"id\":7}";
    assert_true(jscan_root_scalar(strs, strlen(strs), "id", &v));
    assert_true(v.n == 1 && v.p[0] == '7');
    free(deep);
    free(frame);
}

static jspan_t parse(const char *s)
{
    jspan_t r;
    if (jscan_validate(s, strlen(s), &r, NULL))
        fail_msg("not valid: %s", s);
    return r;
}

static void member_iteration(void **state)
{
    (void)state;
    jspan_t obj = parse(" { \"a\" : 1 ,\"b\":[1,{\"c\":\"}]\"}] , \"c\\\"d\"\t:\n\"x,y\\\"\" ,"
                        "\"e\":{},\"f\":-2.5e3,\"g\":true,\"h\":null } ");
    struct { const char *key; const char *val; jtype_t t; } want[] = {
        {"\"a\"", "1", JT_NUMBER},
        {"\"b\"", "[1,{\"c\":\"}]\"}]", JT_ARRAY},
        {"\"c\\\"d\"", "\"x,y\\\"\"", JT_STRING},
        {"\"e\"", "{}", JT_OBJECT},
        {"\"f\"", "-2.5e3", JT_NUMBER},
        {"\"g\"", "true", JT_TRUE},
        {"\"h\"", "null", JT_NULL},
    };
    jiter_t it;
    jspan_t k, v;
    size_t i = 0;
    jobj_iter(&it, obj);
    while (jobj_next(&it, &k, &v)) {
        assert_true(i < 7);
        assert_int_equal(k.t, JT_STRING);
        assert_int_equal(k.n, strlen(want[i].key));
        assert_memory_equal(k.p, want[i].key, k.n);
        assert_int_equal(v.t, want[i].t);
        assert_int_equal(v.n, strlen(want[i].val));
        assert_memory_equal(v.p, want[i].val, v.n);
        i++;
    }
    assert_int_equal(i, 7);
    assert_false(jobj_next(&it, &k, &v)); /* stays exhausted */

    jobj_iter(&it, parse("{ }"));
    assert_false(jobj_next(&it, &k, &v));
    assert_true(jobj_empty(parse("{}")));
    assert_true(jobj_empty(parse("{ \n }")));
    assert_false(jobj_empty(parse("{\"\":0}")));
}

static void array_iteration(void **state)
{
    (void)state;
    jspan_t arr = parse("[ 1 , \"a]\" , [2,[3]] ,{\"k\":\"v\"}, null,-0.5,\"\\\\\",false ]");
    const char *want[] = {"1", "\"a]\"", "[2,[3]]", "{\"k\":\"v\"}", "null", "-0.5",
                          "\"\\\\\"", "false"};
    jtype_t types[] = {JT_NUMBER, JT_STRING, JT_ARRAY, JT_OBJECT, JT_NULL, JT_NUMBER,
                       JT_STRING, JT_FALSE};
    jiter_t it;
    jspan_t v;
    size_t i = 0;
    jarr_iter(&it, arr);
    while (jarr_next(&it, &v)) {
        assert_true(i < 8);
        assert_int_equal(v.t, types[i]);
        assert_int_equal(v.n, strlen(want[i]));
        assert_memory_equal(v.p, want[i], v.n);
        i++;
    }
    assert_int_equal(i, 8);
    jarr_iter(&it, parse("[ ]"));
    assert_false(jarr_next(&it, &v));
    jarr_iter(&it, parse("[[]]"));
    assert_true(jarr_next(&it, &v));
    assert_int_equal(v.t, JT_ARRAY);
    assert_int_equal(v.n, 2);
    assert_false(jarr_next(&it, &v));
}

static void obj_get_last_wins(void **state)
{
    (void)state;
    jspan_t obj = parse("{\"a\":1,\"b\":{\"a\":9},\"a\":\"two\",\"\\u0063\":3}"), v;
    assert_true(jobj_get(obj, "a", &v));
    assert_int_equal(v.t, JT_STRING);
    assert_int_equal(v.n, 5);
    assert_memory_equal(v.p, "\"two\"", 5);
    assert_true(jobj_get(obj, "b", &v)); /* only top-level members */
    assert_int_equal(v.t, JT_OBJECT);
    assert_true(jobj_get(obj, "c", &v)); /* names compare unescaped */
    assert_memory_equal(v.p, "3", 1);
    assert_false(jobj_get(obj, "d", &v));
    assert_false(jobj_get(obj, "", &v));
    assert_false(jobj_get(obj, "aa", &v));
    assert_false(jobj_get(parse("[\"a\",1]"), "a", &v)); /* not an object */
    assert_false(jobj_get(parse("\"a\""), "a", &v));
    assert_true(jobj_get(parse("{\"\":5}"), "", &v));
    assert_memory_equal(v.p, "5", 1);
}

/* jobj_get compares names unescaped: the member written "\n" (a newline) is not
 * the name backslash-n, and must not shadow the member that is. */
static void obj_get_escaped_name_not_raw(void **state)
{
    (void)state;
    jspan_t v, obj = parse("{\"\\\\n\":1,\"\\n\":2}"); /* names: backslash-n, newline */
    assert_true(jobj_get(obj, "\n", &v));
    assert_memory_equal(v.p, "2", 1);
    assert_true(jobj_get(obj, "\\n", &v));
    assert_memory_equal(v.p, "1", 1);
    assert_false(jstr_eq(parse("\"\\n\""), "\\n"));
    assert_true(jstr_eq(parse("\"\\n\""), "\n"));
    assert_true(jstr_eq(parse("\"\\\\n\""), "\\n"));
}

static void str_eq(void **state)
{
    (void)state;
    assert_true(jstr_eq(parse("\"id\""), "id"));
    assert_true(jstr_eq(parse("\"\\u0069d\""), "id"));
    assert_true(jstr_eq(parse("\"\\/x\""), "/x"));
    assert_true(jstr_eq(parse("\"\""), ""));
    assert_false(jstr_eq(parse("\"id\""), "i"));
    assert_false(jstr_eq(parse("\"id\""), "idx"));
    assert_false(jstr_eq(parse("\"\\u0069x\""), "id"));
    assert_false(jstr_eq(parse("1"), "1"));
    assert_false(jstr_eq(parse("null"), "null"));
}

static void expect_str(const char *json, const char *want, size_t wantn)
{
    char out[64];
    size_t n = 999;
    memset(out, 'Z', sizeof(out));
    if (jstr_get(parse(json), out, sizeof(out), &n))
        fail_msg("jstr_get failed on %s", json);
    assert_int_equal(n, wantn);
    assert_memory_equal(out, want, wantn);
    assert_int_equal(out[n], '\0');
}

static void str_get_unescapes(void **state)
{
    (void)state;
    expect_str("\"\"", "", 0);
    expect_str("\"plain\"", "plain", 5);
    expect_str("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
    expect_str("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6);
    expect_str("\"\\u0000x\"", "\0x", 2);
    expect_str("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
               "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 11);
    /* surrogate pairs, both cases of hex */
    expect_str("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
    expect_str("\"\\uD83D\\uDE00!\"", "\xf0\x9f\x98\x80!", 5);
    expect_str("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4);
    expect_str("\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4);
    /* lone surrogates become U+FFFD, and what follows is kept */
    expect_str("\"\\ud800\"", "\xef\xbf\xbd", 3);
    expect_str("\"\\udc00x\"", "\xef\xbf\xbdx", 4);
    expect_str("\"\\ud800\\u0041\"", "\xef\xbf\xbd" "A", 4);
    expect_str("\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80", 7);
    expect_str("\"\\ud800\\n\"", "\xef\xbf\xbd\n", 4);
    /* raw UTF-8 passes through */
    expect_str("\"caf\xc3\xa9\"", "caf\xc3\xa9", 5);
}

static void str_get_bounds(void **state)
{
    (void)state;
    char out[8];
    size_t n = 0;
    jspan_t s = parse("\"abc\"");
    assert_int_equal(jstr_get(s, out, 4, &n), 0); /* 3 + NUL fits exactly */
    assert_string_equal(out, "abc");
    assert_int_equal(jstr_get(s, out, 3, &n), -1);
    assert_int_equal(jstr_get(parse("\"\\u20ac\""), out, 3, &n), -1); /* 3 bytes + NUL */
    assert_int_equal(jstr_get(parse("\"\\u20ac\""), out, 4, NULL), 0);
    assert_int_equal(jstr_get(parse("1"), out, sizeof(out), &n), -1);   /* not a string */
    assert_int_equal(jstr_get(parse("null"), out, sizeof(out), &n), -1);
}

/* "-1 if it does not fit": with no room at all, not even the NUL may be written. */
static void str_get_zero_outlen(void **state)
{
    (void)state;
    char guard[2] = {'G', 'G'};
    assert_int_equal(jstr_get(parse("\"\""), guard, 0, NULL), -1);
    assert_int_equal(guard[0], 'G');
}

static void num_u53(void **state)
{
    (void)state;
    struct { const char *t; int rc; uint64_t v; } cases[] = {
        {"0", 0, 0},
        {"7", 0, 7},
        {"9007199254740991", 0, 9007199254740991ULL},   /* 2^53-1 */
        {"9007199254740992", -1, 0},                    /* 2^53 */
        {"9007199254740993", -1, 0},
        {"12345678901234567890", -1, 0},
        {"99999999999999999999999", -1, 0},
        {"5.0", 0, 5},
        {"5.000", 0, 5},
        {"5e0", 0, 5},
        {"1e2", 0, 100},
        {"0.5e1", 0, 5},
        {"1E15", 0, 1000000000000000ULL},
        {"9007199254740991.0", 0, 9007199254740991ULL},
        {"9007199254740992.0", -1, 0},
        {"1e16", -1, 0},
        {"1e400", -1, 0},
        {"5.5", -1, 0},
        {"0.1", -1, 0},
        {"-1", -1, 0},
        {"-1.0", -1, 0},
        {"-1e-400", 0, 0},      /* -0 after underflow: an integral value, 0 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 4242;
        int rc = jnum_u53(parse(cases[i].t), &v);
        if (rc != cases[i].rc)
            fail_msg("jnum_u53(%s) = %d, want %d", cases[i].t, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].v)
            fail_msg("jnum_u53(%s) gave %llu", cases[i].t, (unsigned long long)v);
    }
    uint64_t v;
    assert_int_equal(jnum_u53(parse("\"5\""), &v), -1);
    assert_int_equal(jnum_u53(parse("true"), &v), -1);
    assert_int_equal(jnum_u53(parse("[5]"), &v), -1);
    jspan_t none = {NULL, 0, JT_NONE};
    assert_int_equal(jnum_u53(none, &v), -1);
}

static void num_double(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(jnum_double(parse("-2.5e3"), &d), 0);
    assert_true(d == -2500.0);
    assert_int_equal(jnum_double(parse("0.1"), &d), 0);
    assert_true(d == 0.1);
    assert_int_equal(jnum_double(parse("\"1\""), &d), -1);
}

/* ---- the member index ---- */

static void check_index_matches_text(const jindex_t *ix, int parent, jspan_t obj)
{
    assert_int_equal(jindex_agrees_with_text(ix, parent, obj), 0);
}

static void index_levels_and_parents(void **state)
{
    (void)state;
    const char *doc = "{\"id\":7,\"data\":{\"url\":\"/x\",\"data\":{\"a\":[{\"in\":1}],"
                      "\"b\":{\"deep\":{\"deeper\":1}}}},\"mode\":0}";
    jindex_t ix;
    jspan_t root, v;
    int slot, data, payload;
    assert_int_equal(jscan_validate_ix(doc, strlen(doc), &root, NULL, &ix, 3), 0);
    assert_true(ix.complete);
    /* id, data, url, data, a, b, mode: "in" is inside an array, "deep"'s own
     * members are below depth 3 */
    assert_int_equal(ix.n, 7);
    assert_true(jmembers_get(&ix, JIX_ROOT, root, "data", &v, &data));
    assert_int_equal(ix.m[data].level, 1);
    assert_true(jmembers_get(&ix, JIX_ROOT, root, "mode", &v, &slot));
    assert_int_equal(v.n, 1);
    assert_true(jmembers_get(&ix, data, v = ix.m[data].val, "data", &v, &payload));
    assert_int_equal(ix.m[payload].parent, data);
    assert_true(jmembers_get(&ix, payload, ix.m[payload].val, "b", &v, &slot));
    assert_int_equal(ix.m[slot].level, 3);
    /* b's members are not indexed: asking for them walks the text */
    assert_true(jmembers_get(&ix, slot, v, "deep", &v, &slot));
    assert_int_equal(slot, JIX_NONE);
    assert_int_equal(v.t, JT_OBJECT);
    assert_false(jmembers_get(&ix, JIX_ROOT, root, "in", &v, NULL));
    check_index_matches_text(&ix, JIX_ROOT, root);
}

static void index_last_wins_and_escaped_names(void **state)
{
    (void)state;
    const char *doc = "{\"k\":1,\"\\u006b\":2,\"x\":{},\"k\":3}";
    jindex_t ix;
    jspan_t root, v;
    assert_int_equal(jscan_validate_ix(doc, strlen(doc), &root, NULL, &ix, 1), 0);
    assert_true(jmembers_get(&ix, JIX_ROOT, root, "k", &v, NULL));
    assert_int_equal(v.n, 1);
    assert_int_equal(v.p[0], '3');
    assert_true(jmembers_get(NULL, JIX_NONE, root, "k", &v, NULL)); /* no index: same */
    assert_int_equal(v.p[0], '3');
    check_index_matches_text(&ix, JIX_ROOT, root);
}

/* More members than JIX_MAX: the index says so and lookups walk the text. */
static void index_overflow_falls_back(void **state)
{
    (void)state;
    char doc[4096];
    size_t n = 0;
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "{\"o\":{");
    for (int i = 0; i < JIX_MAX + 6; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s\"m%d\":%d", i ? "," : "", i, i);
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "},\"last\":true}");
    jindex_t ix;
    jspan_t root, o, v;
    int slot;
    assert_int_equal(jscan_validate_ix(doc, n, &root, NULL, &ix, 2), 0);
    assert_false(ix.complete);
    assert_int_equal(ix.n, JIX_MAX);
    assert_true(jmembers_get(&ix, JIX_ROOT, root, "last", &v, NULL));
    assert_int_equal(v.t, JT_TRUE);
    assert_true(jmembers_get(&ix, JIX_ROOT, root, "o", &o, &slot));
    assert_int_equal(slot, JIX_NONE);
    assert_true(jmembers_get(&ix, slot, o, "m69", &v, NULL));
    assert_int_equal(v.n, 2);
    check_index_matches_text(&ix, JIX_ROOT, root);
}

/* A document that fails validation fails the same with or without an index. */
static void index_same_verdicts(void **state)
{
    (void)state;
    jindex_t ix;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        size_t len = valid[i].len ? valid[i].len : strlen(valid[i].text);
        jspan_t r;
        assert_int_equal(jscan_validate_ix(valid[i].text, len, &r, NULL, &ix, 3), 0);
        if (r.t == JT_OBJECT)
            check_index_matches_text(&ix, JIX_ROOT, r);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        size_t len = invalid[i].len ? invalid[i].len : strlen(invalid[i].text);
        size_t p1 = 0, p2 = 0;
        assert_int_equal(jscan_validate_ix(invalid[i].text, len, NULL, &p1, &ix, 3), -1);
        assert_int_equal(jscan_validate(invalid[i].text, len, NULL, &p2), -1);
        assert_int_equal(p1, p2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_valid),
        cmocka_unit_test(corpus_invalid),
        cmocka_unit_test(truncations_refused),
        cmocka_unit_test(root_span_and_types),
        cmocka_unit_test(error_positions),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(depth_limit_chosen),
        cmocka_unit_test(no_stack_growth),
        cmocka_unit_test(index_with_deep_values),
        cmocka_unit_test(root_scalar_recovery),
        cmocka_unit_test(member_iteration),
        cmocka_unit_test(array_iteration),
        cmocka_unit_test(obj_get_last_wins),
        cmocka_unit_test(obj_get_escaped_name_not_raw),
        cmocka_unit_test(str_eq),
        cmocka_unit_test(str_get_unescapes),
        cmocka_unit_test(str_get_bounds),
        cmocka_unit_test(str_get_zero_outlen),
        cmocka_unit_test(num_u53),
        cmocka_unit_test(num_double),
        cmocka_unit_test(index_levels_and_parents),
        cmocka_unit_test(index_last_wins_and_escaped_names),
        cmocka_unit_test(index_overflow_falls_back),
        cmocka_unit_test(index_same_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
