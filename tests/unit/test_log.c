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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static FILE *out;
static char text[16384];

static int setup(void **state)
{
    (void)state;
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
    assert_int_equal(log_init("info", "text", NULL), 0);
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

static int evaluated;
static int side_effect(void)
{
    return ++evaluated;
}

static void test_level_filtering(void **state)
{
    (void)state;
    assert_int_equal(log_init("info", "text", NULL), 0);
    assert_int_equal(log_level_current, LOG_LVL_INFO);

    evaluated = 0;
    LOG_DEBUG("not shown", "n=%d", side_effect());
    assert_int_equal(evaluated, 0); /* arguments not even evaluated */
    assert_string_equal(output(), "");

    log_emit(LOG_LVL_DEBUG, "direct", "n=%d", 1); /* log_emit checks too */
    assert_string_equal(output(), "");

    LOG_INFO("shown", "n=%d", side_effect());
    assert_int_equal(evaluated, 1);
    assert_int_equal(count_lines(output()), 1);

    assert_int_equal(log_init("error", NULL, NULL), 0);
    LOG_WARN("not shown");
    assert_string_equal(output(), "");
    LOG_ERROR("shown");
    assert_int_equal(count_lines(output()), 1);

    assert_int_equal(log_init("debug", NULL, NULL), 0);
    LOG_DEBUG("shown");
    assert_int_equal(count_lines(output()), 1);
}

static void test_init_rejects_unknown(void **state)
{
    (void)state;
    assert_int_equal(log_init("warn", "text", NULL), 0);
    assert_int_equal(log_init("verbose", NULL, NULL), -1);
    assert_int_equal(log_init("INFO", NULL, NULL), -1);
    assert_int_equal(log_init(NULL, "xml", NULL), -1);
    assert_int_equal(log_init("debug", "xml", NULL), -1); /* nothing changed */
    assert_int_equal(log_level_current, LOG_LVL_WARN);
    LOG_WARN("still text");
    assert_matches(output(), "^[0-9-]+T[0-9:.]+Z WARN  still text\n$");
}

static void test_text_shape(void **state)
{
    const char *key = "10.0.0.7:9100";
    int n = 3;

    (void)state;
    assert_int_equal(log_init("debug", "text", "micro-sidecar"), 0);
    LOG_INFO("peer connected", "peer=%s ns=%s inflight=%d", key, "payments", n);
    assert_matches(output(), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "INFO  peer connected peer=10\\.0\\.0\\.7:9100 ns=payments inflight=3\n$");
    LOG_WARN("registry unreachable");
    assert_matches(output(), "^[^ ]+Z WARN  registry unreachable\n$");
    LOG_ERROR("boom", "err=\"%s\"", "connection refused");
    assert_matches(output(), "^[^ ]+Z ERROR boom err=\"connection refused\"\n$");
    LOG_DEBUG("dbg");
    assert_matches(output(), "^[^ ]+Z DEBUG dbg\n$");
    /* Control characters cannot break the one-line shape. */
    LOG_INFO("two\nlines", "v=%s", "a\rb\x01");
    assert_matches(output(), "^[^ ]+Z INFO  two\\\\nlines v=a\\\\rb\\\\x01\n$");
}

static void test_json_shape_and_types(void **state)
{
    json_t *j;

    (void)state;
    assert_int_equal(log_init("info", "json", "micro-sidecar"), 0);
    LOG_INFO("peer connected", "peer=%s inflight=%d neg=%d ok=%s no=%s zero=0 lead=007 "
             "quoted=\"5\" err=\"%s\" flag big=12345678901234567890 float=1.5",
             "10.0.0.7:9100", 3, -12, "true", "false", "connection refused");
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
    assert_string_equal(jstr(j, "lead"), "007");   /* not a JSON number */
    assert_string_equal(jstr(j, "quoted"), "5");   /* quoted = always a string */
    assert_string_equal(jstr(j, "err"), "connection refused");
    assert_true(json_is_true(json_object_get(j, "flag"))); /* bare word */
    assert_string_equal(jstr(j, "big"), "12345678901234567890");
    assert_string_equal(jstr(j, "float"), "1.5");
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);

    /* The no-fields form, other levels, and no prog. */
    assert_int_equal(log_init("debug", NULL, ""), 0);
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

    /* A field cannot overwrite ts, level or msg. */
    LOG_INFO("real", "msg=fake level=fake ts=1");
    j = parse_line(output());
    assert_string_equal(jstr(j, "msg"), "real");
    assert_string_equal(jstr(j, "level"), "info");
    assert_string_equal(jstr(j, "_msg"), "fake");
    assert_int_equal(json_integer_value(json_object_get(j, "_ts")), 1);
    json_decref(j);
}

static void test_json_escaping(void **state)
{
    json_t *j;
    const char *nasty = "q\"uote back\\slash\ttab\nnl\x01\x1f del\x7f é";

    (void)state;
    assert_int_equal(log_init("info", "json", NULL), 0);
    LOG_INFO(nasty, "path=%s q=\"say \\\"hi\\\" \\\\o/\" ctl=a\x02z utf=%s bad=%s", "C:\\dir",
             "日本", "\xff\xc3");
    j = parse_line(output());
    assert_string_equal(jstr(j, "msg"), nasty);
    assert_string_equal(jstr(j, "path"), "C:\\dir");
    assert_string_equal(jstr(j, "q"), "say \"hi\" \\o/");
    assert_string_equal(jstr(j, "ctl"), "a\x02z");
    assert_string_equal(jstr(j, "utf"), "日本");
    assert_string_equal(jstr(j, "bad"), "\xef\xbf\xbd\xef\xbf\xbd"); /* U+FFFD twice */
    json_decref(j);

    /* An unterminated quote runs to the end of the fields and stays valid. */
    LOG_INFO("m", "a=1 b=\"open ended");
    j = parse_line(output());
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
    assert_string_equal(jstr(j, "b"), "open ended");
    json_decref(j);
}

static void test_truncation_json(void **state)
{
    static char big[9000];
    json_t *j;
    const char *s;

    (void)state;
    assert_int_equal(log_init("info", "json", "micro-sidecar"), 0);

    memset(big, 'x', sizeof(big) - 1);
    LOG_INFO(big, "k=v");
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
        static const char *const units[] = {"\\\"", "é", "\n\n", "\\\\"};
        static char val[4200];
        size_t i;
        for (i = 0; i + 2 < len && i + 2 < sizeof(val); i += 2)
            memcpy(val + i, units[(i / 2) % 4], 2);
        val[i] = '\0';
        LOG_INFO("cut", "a=1 v=\"%s\" n=%d", val, 42);
        s = output();
        assert_true(strlen(s) <= 4000);
        j = parse_line(s);
        assert_string_equal(jstr(j, "msg"), "cut");
        json_decref(j);
        LOG_INFO("cut", "a=1 v=%s n=%d", val, 42); /* unquoted: still a string */
        j = parse_line(output());
        json_decref(j);
    }

    /* Many small fields: the cut drops whole fields. */
    {
        char fields[8000];
        size_t n = 0;
        for (int i = 0; n + 32 < sizeof(fields); i++)
            n += (size_t)snprintf(fields + n, sizeof(fields) - n, "k%d=%d ", i, i);
        LOG_INFO("many", "%s", fields);
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
    assert_int_equal(log_init("info", "text", NULL), 0);
    memset(big, 'y', sizeof(big) - 1);
    LOG_INFO("long", "v=%s", big);
    s = output();
    assert_true(strlen(s) <= 4000);
    assert_int_equal(count_lines(s), 1);
    assert_matches(s, "^[^ ]+Z INFO  long v=y+ truncated=true\n$");
}

static void test_lws_routing(void **state)
{
    json_t *j;

    (void)state;
    assert_int_equal(log_init("debug", "json", NULL), 0);
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
    assert_int_equal(log_init("info", NULL, NULL), 0);
    assert_false(lwsl_visible(LLL_NOTICE));
    assert_true(lwsl_visible(LLL_WARN));
    log_lws_line(LLL_NOTICE, "n\n");
    assert_string_equal(output(), "");
    lwsl_warn("w\n");
    j = parse_line(output());
    assert_string_equal(jstr(j, "level"), "warn");
    json_decref(j);

    assert_int_equal(log_init("error", NULL, NULL), 0);
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
        cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lws_routing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
