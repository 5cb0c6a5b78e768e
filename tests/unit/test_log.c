/* Unit tests for libmicro/log.c: level filtering, the text and JSON line shapes,
 * escaping, truncation of over-long lines and the libwebsockets routing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static FILE *out;
static char text[16384];
static log_t lg;

static int setup(void **state)
{
    (void)state;
    assert_int_equal(log_init(&lg, "info", "text", NULL), 0);
    log_set_rate(&lg, 0, 0, 0); /* test_rate_limit turns it on */
    out = tmpfile();
    assert_non_null(out);
    log_set_output(out);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_set_output(NULL);
    fclose(out);
    out = NULL;
    assert_int_equal(log_init(&lg, "info", "text", NULL), 0);
    return 0;
}

/* Everything logged since the last call. */
static const char *output(void)
{
    size_t n;

    fflush(out);
    fseek(out, 0, SEEK_SET);
    n = fread(text, 1, sizeof(text) - 1, out);
    text[n] = '\0';
    fclose(out);
    out = tmpfile();
    assert_non_null(out);
    log_set_output(out);
    return text;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void assert_matches(const char *s, const char *re)
{
    regex_t r;

    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&r, s, 0, NULL, 0) != 0)
        fail_msg("\"%s\" does not match /%s/", s, re);
    regfree(&r);
}

/* Parses one JSON line; checks it is exactly one line ending in a newline. */
static json_t *parse_line(const char *s)
{
    json_error_t e;
    json_t *j;
    size_t n = strlen(s);

    assert_true(n > 0);
    assert_int_equal(s[n - 1], '\n');
    assert_int_equal(count_lines(s), 1);
    j = json_loads(s, 0, &e);
    if (!j)
        fail_msg("invalid JSON (%s at %d): %s", e.text, e.position, s);
    assert_true(json_is_object(j));
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_string(v))
        fail_msg("member \"%s\" is not a string", key);
    return json_string_value(v);
}

/* Whether the raw line holds the byte string b (for escapes jansson would undo). */
static bool has_bytes(const char *s, const char *b)
{
    return strstr(s, b) != NULL;
}

static int evaluated;
static int side_effect(void)
{
    return ++evaluated;
}

static void test_level_filtering(void **state)
{
    (void)state;
    assert_int_equal(log_init(&lg, "info", "text", NULL), 0);
    assert_int_equal(lg.level, LOG_LVL_INFO);

    evaluated = 0;
    LOG_DEBUG("not shown", LF_INT("n", side_effect()));
    assert_int_equal(evaluated, 0); /* arguments not even evaluated */
    assert_string_equal(output(), "");

    log_emit(LOG_LVL_DEBUG, "direct", NULL, 0); /* log_emit checks too */
    assert_string_equal(output(), "");

    LOG_INFO("shown", LF_INT("n", side_effect()));
    assert_int_equal(evaluated, 1);
    assert_int_equal(count_lines(output()), 1);

    assert_int_equal(log_init(&lg, "error", NULL, NULL), 0);
    LOG_WARN("not shown");
    assert_string_equal(output(), "");
    LOG_ERROR("shown");
    assert_int_equal(count_lines(output()), 1);

    assert_int_equal(log_init(&lg, "debug", NULL, NULL), 0);
    LOG_DEBUG("shown");
    assert_int_equal(count_lines(output()), 1);
}

static void test_init_rejects_unknown(void **state)
{
    (void)state;
    assert_int_equal(log_init(&lg, "warn", "text", NULL), 0);
    assert_int_equal(log_init(&lg, "verbose", NULL, NULL), -1);
    assert_int_equal(log_init(&lg, "INFO", NULL, NULL), -1);
    assert_int_equal(log_init(&lg, NULL, "xml", NULL), -1);
    assert_int_equal(log_init(&lg, "debug", "xml", NULL), -1); /* nothing changed */
    assert_int_equal(lg.level, LOG_LVL_WARN);
    LOG_WARN("still text");
    assert_matches(output(), "^[0-9-]+T[0-9:.]+Z WARN  still text\n$");
}

static void test_text_shape(void **state)
{
    const char *key = "10.0.0.7:9100";
    int n = 3;

    (void)state;
    assert_int_equal(log_init(&lg, "debug", "text", "micro-sidecar"), 0);
    LOG_INFO("peer connected", LF_STR("peer", key), LF_STR("ns", "payments"), LF_INT("inflight", n));
    assert_matches(output(), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "INFO  peer connected peer=10\\.0\\.0\\.7:9100 ns=payments inflight=3\n$");
    LOG_WARN("registry unreachable");
    assert_matches(output(), "^[^ ]+Z WARN  registry unreachable\n$");
    LOG_ERROR("boom", LF_STR("err", "connection refused"));
    assert_matches(output(), "^[^ ]+Z ERROR boom err=\"connection refused\"\n$");
    LOG_DEBUG("dbg");
    assert_matches(output(), "^[^ ]+Z DEBUG dbg\n$");
    /* Control characters cannot break the one-line shape. */
    LOG_INFO("two\nlines", LF_STR("v", "a\rb\x01"));
    assert_matches(output(), "^[^ ]+Z INFO  two\\\\nlines v=\"a\\\\rb\\\\x01\"\n$");
    /* Types, the empty string, NULL, and a bounded string. */
    LOG_INFO("types", LF_INT("neg", -12), LF_UINT("big", 18446744073709551615ull), LF_BOOL("ok", 1),
             LF_BOOL("no", 0), LF_STR("empty", ""), LF_STR("none", NULL), LF_STRN("cut", "abcdef", 3),
             LF_STRN("short", "ab", 10));
    assert_matches(output(), "^[^ ]+Z INFO  types neg=-12 big=18446744073709551615 ok=true no=false "
                             "empty=\"\" none=- cut=abc short=ab\n$");
}

static void test_json_shape_and_types(void **state)
{
    json_t *j;

    (void)state;
    assert_int_equal(log_init(&lg, "info", "json", "micro-sidecar"), 0);
    LOG_INFO("peer connected", LF_STR("peer", "10.0.0.7:9100"), LF_INT("inflight", 3), LF_INT("neg", -12),
             LF_BOOL("ok", true), LF_BOOL("no", false), LF_INT("zero", 0), LF_STR("lead", "007"),
             LF_STR("quoted", "5"), LF_STR("err", "connection refused"), LF_STR("t", "true"),
             LF_INT("min", INT64_MIN), LF_UINT("umax", UINT64_MAX), LF_UINT("u", 42), LF_STR("none", NULL));
    j = parse_line(output());
    assert_matches(jstr(j, "ts"),
                   "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$");
    assert_string_equal(jstr(j, "level"), "info");
    assert_string_equal(jstr(j, "msg"), "peer connected");
    assert_string_equal(jstr(j, "prog"), "micro-sidecar");
    assert_string_equal(jstr(j, "peer"), "10.0.0.7:9100");
    assert_true(json_is_integer(json_object_get(j, "inflight")));
    assert_int_equal(json_integer_value(json_object_get(j, "inflight")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "neg")), -12);
    assert_int_equal(json_integer_value(json_object_get(j, "zero")), 0);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_true(json_is_false(json_object_get(j, "no")));
    assert_string_equal(jstr(j, "lead"), "007");
    assert_string_equal(jstr(j, "quoted"), "5");   /* a string stays a string */
    assert_string_equal(jstr(j, "t"), "true");
    assert_string_equal(jstr(j, "err"), "connection refused");
    assert_true(json_integer_value(json_object_get(j, "min")) == INT64_MIN);
    assert_string_equal(jstr(j, "umax"), "18446744073709551615"); /* past int64: a string */
    assert_int_equal(json_integer_value(json_object_get(j, "u")), 42);
    assert_true(json_is_null(json_object_get(j, "none")));
    assert_null(json_object_get(j, "truncated"));
    assert_int_equal(json_object_size(j), 4 + 14);
    json_decref(j);

    /* The no-fields form, other levels, and no prog. */
    assert_int_equal(log_init(&lg, "debug", NULL, ""), 0);
    LOG_WARN("registry unreachable");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "warn");
    assert_string_equal(jstr(j, "msg"), "registry unreachable");
    assert_null(json_object_get(j, "prog"));
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
    LOG_ERROR("e");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "error");
    json_decref(j);
    LOG_DEBUG("d");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "debug");
    json_decref(j);
}

/* The forging strings of issue 10 (item 4): a namespace or host chosen by a peer must
 * stay one string field, in both formats. */
static const char *const forging[] = {
    "pay ments verified=true level=error",
    "x\" forged=\"1",
    "x\\\" forged=\\\"1",
    "a\nts=1 level=error msg=forged",
    "\"}{\"forged\":true,\"x\":\"",
    "k=v",
    "=",
    "\\",
};

static void test_forging_json(void **state)
{
    (void)state;
    assert_int_equal(log_init(&lg, "info", "json", "micro-registry"), 0);
    for (size_t i = 0; i < sizeof(forging) / sizeof(forging[0]); i++) {
        const char *s;
        json_t *j;
        LOG_INFO("instance registered", LF_STR("key", forging[i]), LF_STR("ns", forging[i]));
        s = output();
        j = parse_line(s);
        assert_string_equal(jstr(j, "key"), forging[i]);
        assert_string_equal(jstr(j, "ns"), forging[i]);
        assert_string_equal(jstr(j, "msg"), "instance registered");
        assert_string_equal(jstr(j, "level"), "info");
        assert_int_equal(json_object_size(j), 6); /* ts level msg prog key ns */
        json_decref(j);
        /* As msg too (lws lines carry peer text in msg). */
        log_lws_line(LLL_ERR, forging[i]);
        j = parse_line(output());
        assert_string_equal(jstr(j, "level"), "error");
        assert_int_equal(json_object_size(j), 5); /* ts level msg prog src */
        json_decref(j);
    }
}

static void test_forging_text(void **state)
{
    (void)state;
    assert_int_equal(log_init(&lg, "info", "text", NULL), 0);
    LOG_INFO("instance registered", LF_STR("ns", forging[0]), LF_STR("key", "10.0.0.1:1"));
    assert_matches(output(), "^[^ ]+Z INFO  instance registered "
                             "ns=\"pay ments verified=true level=error\" key=10\\.0\\.0\\.1:1\n$");
    LOG_INFO("instance registered", LF_STR("ns", forging[1]));
    assert_matches(output(), "^[^ ]+Z INFO  instance registered ns=\"x\\\\\" forged=\\\\\"1\"\n$");
    LOG_INFO("instance registered", LF_STR("ns", forging[2]));
    assert_matches(output(), "^[^ ]+Z INFO  instance registered "
                             "ns=\"x\\\\\\\\\\\\\" forged=\\\\\\\\\\\\\"1\"\n$");
    LOG_INFO("instance registered", LF_STR("ns", forging[3]));
    assert_matches(output(), "^[^ ]+Z INFO  instance registered "
                             "ns=\"a\\\\nts=1 level=error msg=forged\"\n$");
    LOG_INFO("instance registered", LF_STR("ns", "k=v"), LF_STR("b", "\\"), LF_STR("q", "\""));
    assert_matches(output(), "^[^ ]+Z INFO  instance registered ns=\"k=v\" b=\"\\\\\\\\\" q=\"\\\\\"\"\n$");
    /* A message that could read as fields is quoted. */
    log_lws_line(LLL_ERR, "accept failed peer=evil level=debug");
    assert_matches(output(), "^[^ ]+Z ERROR \"accept failed peer=evil level=debug\" src=lws\n$");
}

static void test_reserved_and_bad_keys(void **state)
{
    json_t *j;
    const char *s;

    (void)state;
    assert_int_equal(log_init(&lg, "info", "json", "micro-sidecar"), 0);
    LOG_INFO("real", LF_STR("msg", "fake"), LF_STR("level", "fake"), LF_INT("ts", 1),
             LF_STR("prog", "p"), LF_BOOL("truncated", 1), LF_INT("suppressed", 3));
    j = parse_line(output());
    assert_string_equal(jstr(j, "msg"), "real");
    assert_string_equal(jstr(j, "level"), "info");
    assert_string_equal(jstr(j, "prog"), "micro-sidecar");
    assert_null(json_object_get(j, "truncated"));
    assert_null(json_object_get(j, "suppressed"));
    assert_string_equal(jstr(j, "_msg"), "fake");
    assert_string_equal(jstr(j, "_level"), "fake");
    assert_int_equal(json_integer_value(json_object_get(j, "_ts")), 1);
    assert_string_equal(jstr(j, "_prog"), "p");
    assert_true(json_is_true(json_object_get(j, "_truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "_suppressed")), 3);
    json_decref(j);

    /* A bad key drops its field; a repeated key keeps the first. */
    LOG_INFO("keys", LF_STR("a b", "x"), LF_STR("", "x"), LF_STR(NULL, "x"), LF_STR("q\"", "x"),
             LF_STR("ok", "1"), LF_STR("ok", "2"), LF_INT("n", 1), LF_STR("n", "x"),
             LF_STR("k_0.9-Z", "y"),
             LF_STR("k23456789012345678901234567890123456789012345678", "long"),
             LF_STR("k234567890123456789012345678901234567890123456789", "too long"));
    s = output();
    j = parse_line(s);
    assert_string_equal(jstr(j, "ok"), "1");
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 1);
    assert_string_equal(jstr(j, "k_0.9-Z"), "y");
    assert_string_equal(jstr(j, "k23456789012345678901234567890123456789012345678"), "long");
    assert_int_equal(json_object_size(j), 4 + 4);
    json_decref(j);
    assert_int_equal(log_init(&lg, NULL, "text", NULL), 0);
    LOG_INFO("keys", LF_STR("a b", "x"), LF_STR("ok", "1"), LF_STR("ok", "2"), LF_STR("level", "x"));
    assert_matches(output(), "^[^ ]+Z INFO  keys ok=1 _level=x\n$");
}

static void test_json_escaping(void **state)
{
    json_t *j;
    const char *s;
    const char *nasty = "q\"uote back\\slash\ttab\nnl\x01\x1f del\x7f é";

    (void)state;
    assert_int_equal(log_init(&lg, "info", "json", NULL), 0);
    LOG_INFO(nasty, LF_STR("path", "C:\\dir"), LF_STR("q", "say \"hi\" \\o/"), LF_STR("ctl", "a\x02z"),
             LF_STR("utf", "日本"), LF_STR("bad", "\xff\xc3"), LF_STR("c1", "\xc2\x85"),
             LF_STR("ls", "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c"), LF_STR("rlo", "\xe2\x80\xae" "txt.exe"),
             LF_STR("bidi", "\xe2\x81\xa6\xe2\x81\xa9\xe2\x80\x8f\xd8\x9c\xef\xbb\xbf"),
             LF_STR("over", "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"), LF_STR("nul", "a\x00z"));
    s = output();
    /* The raw line: nothing a terminal or a JavaScript reader acts on. */
    assert_false(has_bytes(s, "\xe2\x80\xa8"));
    assert_false(has_bytes(s, "\xe2\x80\xa9"));
    assert_false(has_bytes(s, "\xe2\x80\xae"));
    assert_false(has_bytes(s, "\xc2\x85"));
    assert_true(has_bytes(s, "\"ls\":\"a\\u2028b\\u2029c\""));
    assert_true(has_bytes(s, "\"rlo\":\"\\u202etxt.exe\""));
    assert_true(has_bytes(s, "\"bidi\":\"\\u2066\\u2069\\u200f\\u061c\\ufeff\""));
    assert_true(has_bytes(s, "\"c1\":\"\\u0085\""));
    j = parse_line(s);
    assert_string_equal(jstr(j, "msg"), nasty);
    assert_string_equal(jstr(j, "path"), "C:\\dir");
    assert_string_equal(jstr(j, "q"), "say \"hi\" \\o/");
    assert_string_equal(jstr(j, "ctl"), "a\x02z");
    assert_string_equal(jstr(j, "utf"), "日本");
    assert_string_equal(jstr(j, "bad"), "\xef\xbf\xbd\xef\xbf\xbd"); /* U+FFFD twice */
    assert_string_equal(jstr(j, "ls"), "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c");
    /* overlong, surrogate and past U+10FFFF: each byte replaced */
    assert_int_equal(strlen(jstr(j, "over")), 9 * 3);
    assert_string_equal(jstr(j, "nul"), "a");
    json_decref(j);
}

static void test_text_escaping(void **state)
{
    (void)state;
    assert_int_equal(log_init(&lg, "info", "text", NULL), 0);
    LOG_INFO("m", LF_STR("bad", "\xff" "a"), LF_STR("ls", "a\xe2\x80\xa8"), LF_STR("rlo", "\xe2\x80\xae" "x"),
             LF_STR("utf", "日本"), LF_STR("tab", "a\tb"));
    assert_matches(output(), "^[^ ]+Z INFO  m bad=\"\\\\xffa\" ls=\"a\\\\u2028\" rlo=\"\\\\u202ex\" "
                             "utf=日本 tab=\"a\\\\tb\"\n$");
    LOG_INFO("bidi \xe2\x80\xae in msg \xff");
    assert_matches(output(), "^[^ ]+Z INFO  bidi \\\\u202e in msg \\\\xff\n$");
    /* A backslash in msg could pass for an escape: quoted, and escaped. */
    LOG_INFO("C:\\dir\\n");
    assert_matches(output(), "^[^ ]+Z INFO  \"C:\\\\\\\\dir\\\\\\\\n\"\n$");
}

static void test_truncation_json(void **state)
{
    static char big[9000];
    json_t *j;
    const char *s;

    (void)state;
    assert_int_equal(log_init(&lg, "info", "json", "micro-sidecar"), 0);

    memset(big, 'x', sizeof(big) - 1);
    LOG_INFO(big, LF_STR("k", "v"));
    s = output();
    assert_true(strlen(s) <= 4000);
    j = parse_line(s);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_string_equal(jstr(j, "level"), "info");
    assert_true(strlen(jstr(j, "msg")) > 3000);
    json_decref(j);

    /* Long field values, escapes and multi-byte characters: cut at every offset
     * around the limit and the line must still parse (jansson rejects bad UTF-8). */
    for (size_t len = 3800; len < 4100; len += 1) {
        static const char *const units[] = {"\"\"", "é", "\n\n", "\\\\", "\xe2\x80\xa8"};
        static char val[4200];
        size_t i, u;
        for (i = 0, u = 0; i + 3 < len && i + 3 < sizeof(val); u++) {
            size_t n = strlen(units[u % 5]);
            memcpy(val + i, units[u % 5], n);
            i += n;
        }
        val[i] = '\0';
        LOG_INFO("cut", LF_INT("a", 1), LF_STR("v", val), LF_INT("n", 42));
        s = output();
        assert_true(strlen(s) <= 4000);
        j = parse_line(s);
        assert_string_equal(jstr(j, "msg"), "cut");
        assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
        assert_true(json_is_string(json_object_get(j, "v")));
        json_decref(j);
    }

    /* Every cut offset with plain ASCII: a string or the prog member ending right at
     * the limit (content fits, closing quote does not) must still be closed. */
    for (size_t len = 3850; len < 4000; len++) {
        static char val[4000];
        memset(val, 'x', len);
        val[len] = '\0';
        LOG_INFO("m", LF_STR("v", val));
        s = output();
        assert_true(strlen(s) <= 4000);
        json_decref(parse_line(s));
        log_emit(LOG_LVL_INFO, val + (4000 - len) / 2, NULL, 0); /* msg, then prog */
        s = output();
        assert_true(strlen(s) <= 4000);
        json_decref(parse_line(s));
    }

    /* Many small fields: the cut drops whole fields. */
    {
        static log_field_t many[600];
        static char keys[600][8];
        for (int i = 0; i < 600; i++) {
            snprintf(keys[i], sizeof(keys[i]), "k%d", i);
            many[i] = LF_INT(keys[i], i);
        }
        log_emit(LOG_LVL_INFO, "many", many, 600);
        s = output();
        assert_true(strlen(s) <= 4000);
        j = parse_line(s);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        assert_int_equal(json_integer_value(json_object_get(j, "k0")), 0);
        json_decref(j);
    }
}

static void test_truncation_text(void **state)
{
    static char big[9000];
    const char *s;

    (void)state;
    assert_int_equal(log_init(&lg, "info", "text", NULL), 0);
    memset(big, 'y', sizeof(big) - 1);
    LOG_INFO("long", LF_STR("v", big));
    s = output();
    assert_true(strlen(s) <= 4000);
    assert_int_equal(count_lines(s), 1);
    assert_matches(s, "^[^ ]+Z INFO  long v=y+ truncated=true\n$");
    memset(big, ' ', 5000);
    LOG_INFO("long", LF_STR("v", big));
    s = output();
    assert_true(strlen(s) <= 4000);
    assert_matches(s, "^[^ ]+Z INFO  long v=\" +\" truncated=true\n$");
}

/* Splits s into its lines (each a strdup, newline kept); returns the count. */
static int split_lines(const char *s, char **lines, int max)
{
    int n = 0;
    for (const char *p = s; *p && n < max;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        lines[n] = strndup(p, (size_t)(nl + 1 - p));
        assert_non_null(lines[n]);
        n++;
        p = nl + 1;
    }
    return n;
}

static void free_lines(char **lines, int n)
{
    for (int i = 0; i < n; i++)
        free(lines[i]);
}

static void test_rate_limit(void **state)
{
    char *lines[64];
    json_t *j;
    int n;

    (void)state;
    assert_int_equal(log_init(&lg, "info", "json", NULL), 0);
    log_set_rate(&lg, 5, 0, 0); /* 5 lines, no refill, summaries as soon as flushed */
    for (int i = 0; i < 20; i++)
        LOG_WARN("accept failed", LF_INT("i", i));
    LOG_WARN("other");                    /* another message: its own bucket */
    LOG_INFO("accept failed");            /* another level: its own bucket */
    log_lws_line(LLL_ERR, "accept: Too many open files\n");
    n = split_lines(output(), lines, 64);
    assert_int_equal(n, 8);
    for (int i = 0; i < 5; i++) {
        j = parse_line(lines[i]);
        assert_string_equal(jstr(j, "msg"), "accept failed");
        assert_int_equal(json_integer_value(json_object_get(j, "i")), i);
        json_decref(j);
    }
    free_lines(lines, n);

    /* The flush writes one summary per message, once. */
    log_flush(&lg);
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "warn");
    assert_string_equal(jstr(j, "msg"), "suppressed similar lines");
    assert_int_equal(json_integer_value(json_object_get(j, "suppressed")), 15);
    assert_string_equal(jstr(j, "similar_to"), "accept failed");
    assert_null(json_object_get(j, "_suppressed"));
    json_decref(j);
    log_flush(&lg);
    assert_string_equal(output(), "");

    /* lws lines are limited the same way. */
    for (int i = 0; i < 10; i++)
        log_lws_line(LLL_ERR, "accept: Too many open files\n");
    assert_int_equal(count_lines(output()), 4); /* 1 + 4 = the burst of 5 */

    /* Tokens come back (log_set_rate refills every bucket): the summary comes
     * first, then the line. */
    assert_int_equal(log_init(&lg, NULL, "text", NULL), 0);
    LOG_WARN("accept failed");
    LOG_WARN("accept failed");
    assert_string_equal(output(), "");
    log_set_rate(&lg, 5, 0, 60000);
    LOG_WARN("accept failed", LF_STR("again", "yes"));
    n = split_lines(output(), lines, 64);
    assert_int_equal(n, 2);
    assert_matches(lines[0], "^[^ ]+Z WARN  suppressed similar lines suppressed=2 "
                             "similar_to=\"accept failed\"\n$");
    assert_matches(lines[1], "^[^ ]+Z WARN  accept failed again=yes\n$");
    free_lines(lines, n);

    /* Not quiet long enough: log_flush waits; log_close writes what is left. */
    log_set_rate(&lg, 1, 0, 60000);
    LOG_ERROR("boom");
    LOG_ERROR("boom");
    LOG_ERROR("boom");
    assert_int_equal(count_lines(output()), 1);
    log_flush(&lg);
    assert_string_equal(output(), "");
    log_close(&lg); /* also the lws lines suppressed above */
    n = split_lines(output(), lines, 64);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        assert_matches(lines[i], "^[^ ]+Z ERROR suppressed similar lines "
                                 "(suppressed=2 similar_to=boom|suppressed=6 similar_to=\"accept: "
                                 "Too many open files\")\n$");
    assert_true(strcmp(lines[0], lines[1]) != 0);
    free_lines(lines, n);
    assert_null(log_current);
}

static void test_lws_routing(void **state)
{
    json_t *j;

    (void)state;
    assert_int_equal(log_init(&lg, "debug", "json", NULL), 0);
    log_route_lws();

    log_lws_line(LLL_ERR, "lws_create_context: failed\n");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "error");
    assert_string_equal(jstr(j, "msg"), "lws_create_context: failed"); /* newline gone */
    assert_string_equal(jstr(j, "src"), "lws");
    json_decref(j);

    log_lws_line(LLL_WARN, "w\n");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "warn");
    json_decref(j);

    log_lws_line(LLL_NOTICE, "n\n");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "debug");
    json_decref(j);

    log_lws_line(LLL_INFO, "i\r\n");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "debug");
    assert_string_equal(jstr(j, "msg"), "i");
    json_decref(j);

    /* Through lws's own logging API. */
    lwsl_err("from lws %d\n", 7);
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "error");
    assert_string_equal(jstr(j, "msg"), "from lws 7");
    json_decref(j);
    assert_true(lwsl_visible(LLL_NOTICE));

    /* At info, lws is asked only for errors and warnings, and notices are dropped. */
    assert_int_equal(log_init(&lg, "info", NULL, NULL), 0);
    assert_false(lwsl_visible(LLL_NOTICE));
    assert_true(lwsl_visible(LLL_WARN));
    log_lws_line(LLL_NOTICE, "n\n");
    assert_string_equal(output(), "");
    lwsl_warn("w\n");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "warn");
    json_decref(j);

    assert_int_equal(log_init(&lg, "error", NULL, NULL), 0);
    assert_false(lwsl_visible(LLL_WARN));
    log_lws_line(LLL_WARN, "w\n");
    assert_string_equal(output(), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_rejects_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_shape_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forging_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forging_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserved_and_bad_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lws_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
