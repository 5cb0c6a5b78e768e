/* Unit tests for sidecar/routes.c, the url → app target table:
 *   - exact match, the "*" route (app target + the call's url), exact before "*"
 *   - routes_add codes: 201 created, 200 the same again, 409 another target or
 *     limit, 400 a bad url or target; routes_del 204 / 404
 *   - limits: a route url is at most URL_MAX bytes and passes the url check, a
 *     wildcard target that does not fit the caller's buffer is no route
 *   - per-route rate limits (routes_admit) and the default limit
 *   - the JSON the API lists, parsed back with jansson */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "sidecar.h"
#include "url.h"

#define APP "http://127.0.0.1:8080"

static routes_t *r;

static int setup(void **state)
{
    (void)state;
    r = routes_new(APP "//"); /* trailing slashes are dropped */
    assert_non_null(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    routes_free(r);
    r = NULL;
    return 0;
}

static const char *match(const char *url)
{
    static char buf[2048];
    return routes_match(r, url, buf, sizeof(buf));
}

static void test_exact_route_defaults_to_app_url(void **state)
{
    (void)state;
    assert_int_equal(routes_add(r, "/charge", NULL), 201);
    assert_string_equal(match("/charge"), APP "/charge");
    assert_null(match("/charge/x"));  /* exact: no prefix match */
    assert_null(match("/charg"));
    assert_null(match("/charge?x=1")); /* routes are matched on the exact url */
    assert_int_equal(routes_count(r), 1);
    assert_int_equal(routes_add(r, "/refund", ""), 201); /* "" is the default too */
    assert_string_equal(match("/refund"), APP "/refund");
}

static void test_explicit_target(void **state)
{
    (void)state;
    assert_int_equal(routes_add(r, "/a", "http://10.1.2.3:81/other/path"), 201);
    assert_string_equal(match("/a"), "http://10.1.2.3:81/other/path");
}

static void test_add_codes(void **state)
{
    (void)state;
    assert_int_equal(routes_add(r, "/a", NULL), 201);
    assert_int_equal(routes_add(r, "/a", NULL), 200);                 /* the same again */
    assert_int_equal(routes_add(r, "/a", APP "/a"), 200);             /* what NULL means */
    assert_int_equal(routes_add(r, "/a", "http://127.0.0.1:9/x"), 409); /* another target */
    assert_string_equal(match("/a"), APP "/a");                       /* unchanged */
    assert_int_equal(routes_count(r), 1);
}

static void test_bad_urls_are_400(void **state)
{
    (void)state;
    const char *bad[] = {"", "a", "charge", "/a?b=1", "/a#f", "/a b", "/a\r\nX: y", "/../etc",
                         "/a/./b", "/%0d%0a", "/%zz", "**", "/\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (routes_add(r, bad[i], NULL) != 400)
            fail_msg("route url %zu (\"%s\") was accepted", i, bad[i]);
    assert_int_equal(routes_count(r), 0);
}

static void test_bad_targets_are_400(void **state)
{
    (void)state;
    const char *bad[] = {"ftp://h/x", "https://h/x", "http://", "http://h:0/x", "http://h:70000/x",
                         "http://h/x y", "http://h/x\r\n", "http://h/x?q=1", "127.0.0.1:8080"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (routes_add(r, "/a", bad[i]) != 400)
            fail_msg("target %zu (\"%s\") was accepted", i, bad[i]);
    assert_int_equal(routes_count(r), 0);
}

static void test_url_length_limit(void **state)
{
    (void)state;
    char url[URL_MAX + 2];
    memset(url, 'a', sizeof(url));
    url[0] = '/';
    url[URL_MAX] = '\0'; /* URL_MAX bytes: the longest route url */
    assert_int_equal(routes_add(r, url, NULL), 201);
    char buf[2048];
    const char *t = routes_match(r, url, buf, sizeof(buf));
    assert_non_null(t);
    assert_int_equal(strlen(t), strlen(APP) + URL_MAX);
    url[URL_MAX] = 'a';
    url[URL_MAX + 1] = '\0'; /* one more */
    assert_int_equal(routes_add(r, url, NULL), 400);
}

static void test_wildcard(void **state)
{
    (void)state;
    assert_null(match("/anything")); /* no route, no wildcard */
    assert_int_equal(routes_add(r, "*", NULL), 201);
    assert_string_equal(match("/anything"), APP "/anything");
    assert_string_equal(match("/a/b?c=1"), APP "/a/b?c=1"); /* the call's url as it came */
    assert_int_equal(routes_add(r, "/exact", "http://127.0.0.1:9999/e"), 201);
    assert_string_equal(match("/exact"), "http://127.0.0.1:9999/e"); /* exact first */
    assert_int_equal(routes_add(r, "*", NULL), 200);
    assert_int_equal(routes_add(r, "*", "http://127.0.0.1:1"), 409);
}

static void test_wildcard_with_target(void **state)
{
    (void)state;
    assert_int_equal(routes_add(r, "*", "http://10.0.0.9:7000/base"), 201);
    assert_string_equal(match("/x"), "http://10.0.0.9:7000/base/x");
}

static void test_wildcard_target_too_long_for_buffer(void **state)
{
    (void)state;
    assert_int_equal(routes_add(r, "*", NULL), 201);
    char small[sizeof(APP) + 3]; /* APP + "/ab" + NUL fits, "/abc" does not */
    assert_string_equal(routes_match(r, "/ab", small, sizeof(small)), APP "/ab");
    assert_null(routes_match(r, "/abc", small, sizeof(small)));
}

static void test_del(void **state)
{
    (void)state;
    assert_int_equal(routes_add(r, "/a", NULL), 201);
    assert_int_equal(routes_add(r, "*", NULL), 201);
    assert_int_equal(routes_del(r, "/a"), 204);
    assert_int_equal(routes_del(r, "/a"), 404);
    assert_string_equal(match("/a"), APP "/a"); /* now through the wildcard */
    assert_int_equal(routes_del(r, "*"), 204);
    assert_null(match("/a"));
    assert_int_equal(routes_del(r, "/never"), 404);
    assert_int_equal(routes_count(r), 0);
    assert_int_equal(routes_add(r, "/a", "http://127.0.0.1:1/"), 201); /* a new target after a delete */
}

static void test_rate_limit_per_route(void **state)
{
    (void)state;
    char buf[2048];
    double ra = -1;
    assert_int_equal(routes_add_limited(r, "/slow", NULL, 1, 2), 201);
    assert_int_equal(routes_add(r, "/free", NULL), 201);
    assert_string_equal(routes_admit(r, "/slow", buf, sizeof(buf), &ra), APP "/slow");
    assert_true(ra == 0);
    assert_non_null(routes_admit(r, "/slow", buf, sizeof(buf), &ra)); /* burst 2 */
    assert_null(routes_admit(r, "/slow", buf, sizeof(buf), &ra));     /* over the limit */
    assert_true(ra > 0 && ra <= 1.0);                                 /* one token per second */
    for (int i = 0; i < 100; i++)                                     /* other routes are not limited */
        assert_non_null(routes_admit(r, "/free", buf, sizeof(buf), &ra));
    ra = -1;
    assert_null(routes_admit(r, "/none", buf, sizeof(buf), &ra)); /* no route: retry_after 0 */
    assert_true(ra == 0);
    /* routes_match does not take tokens */
    assert_string_equal(match("/slow"), APP "/slow");
    /* the same route with another limit is a conflict; the same limit is not */
    assert_int_equal(routes_add_limited(r, "/slow", NULL, 5, 2), 409);
    assert_int_equal(routes_add_limited(r, "/slow", NULL, 1, 2), 200);
    assert_int_equal(routes_add(r, "/slow", NULL), 409); /* the default is no limit */
}

static void test_default_limit(void **state)
{
    (void)state;
    char buf[2048];
    double ra;
    routes_set_default_limit(r, 1, 1);
    assert_int_equal(routes_add(r, "/a", NULL), 201);
    assert_non_null(routes_admit(r, "/a", buf, sizeof(buf), &ra));
    assert_null(routes_admit(r, "/a", buf, sizeof(buf), &ra));
    assert_true(ra > 0);
    assert_int_equal(routes_add(r, "/a", NULL), 200);                     /* the default again */
    assert_int_equal(routes_add_limited(r, "/b", NULL, 0, -1), 201);      /* rps 0: no limit */
    for (int i = 0; i < 10; i++)
        assert_non_null(routes_admit(r, "/b", buf, sizeof(buf), &ra));
}

static json_t *parse(sbuf_t *b)
{
    json_error_t e;
    json_t *j = json_loadb(sbuf_data(b), b->len, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %.*s", e.text, (int)b->len, sbuf_data(b));
    return j;
}

static void test_json(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    routes_json(r, &b);
    assert_int_equal(b.len, 2);
    assert_memory_equal(sbuf_data(&b), "[]", 2);

    assert_int_equal(routes_add(r, "/a", NULL), 201);
    assert_int_equal(routes_add_limited(r, "/b%22q", "http://10.0.0.1:81/t", 2.5, 10), 201);
    assert_int_equal(routes_add(r, "*", NULL), 201);
    sbuf_reset(&b);
    routes_json(r, &b);
    json_t *j = parse(&b);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 3);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *o = json_array_get(j, i);
        const char *url = json_string_value(json_object_get(o, "url"));
        const char *target = json_string_value(json_object_get(o, "target"));
        assert_non_null(url);
        assert_non_null(target);
        if (!strcmp(url, "/a")) {
            seen |= 1;
            assert_string_equal(target, APP "/a");
            assert_null(json_object_get(o, "rps")); /* no limit: no keys */
            assert_int_equal(json_object_size(o), 2);
        } else if (!strcmp(url, "/b%22q")) {
            seen |= 2;
            assert_string_equal(target, "http://10.0.0.1:81/t");
            assert_true(json_number_value(json_object_get(o, "rps")) == 2.5);
            assert_true(json_number_value(json_object_get(o, "burst")) == 10);
        } else if (!strcmp(url, "*")) {
            seen |= 4;
            assert_string_equal(target, APP);
        }
    }
    assert_int_equal(seen, 7);
    json_decref(j);

    sbuf_reset(&b);
    routes_json_one(r, "/a", &b);
    j = parse(&b);
    assert_string_equal(json_string_value(json_object_get(j, "url")), "/a");
    json_decref(j);
    sbuf_reset(&b);
    routes_json_one(r, "/missing", &b);
    assert_int_equal(b.len, 4);
    assert_memory_equal(sbuf_data(&b), "null", 4);
    sbuf_free(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_exact_route_defaults_to_app_url),
        T(test_explicit_target),
        T(test_add_codes),
        T(test_bad_urls_are_400),
        T(test_bad_targets_are_400),
        T(test_url_length_limit),
        T(test_wildcard),
        T(test_wildcard_with_target),
        T(test_wildcard_target_too_long_for_buffer),
        T(test_del),
        T(test_rate_limit_per_route),
        T(test_default_limit),
        T(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
