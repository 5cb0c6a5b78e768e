/* Unit tests for libmicro/url.c: the one check a call url passes before it can
 * reach an app's request line (request smuggling: CR/LF, encoded controls, dot
 * segments however they are spelled). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "url.h"

static int check(const char *s) { return url_check(s, strlen(s)); }

static void plain_paths_and_queries_pass(void **state)
{
    (void)state;
    assert_int_equal(check("/"), URL_OK);
    assert_int_equal(check("/charge"), URL_OK);
    assert_int_equal(check("/a/b/c?x=1&y=%20z"), URL_OK);
    assert_int_equal(check("//double//slashes/"), URL_OK);
    assert_int_equal(check("/-/health"), URL_OK);
    assert_int_equal(check("/with%2Fslash/and%3Fquestion"), URL_OK);
    assert_int_equal(check("/caf%C3%A9"), URL_OK);   /* non-ASCII, encoded: fine */
    assert_int_equal(check("/.well-known/x"), URL_OK); /* a dot is not a dot segment */
    assert_int_equal(check("/a/.../b"), URL_OK);
    assert_int_equal(check("/a/..b/.c/b."), URL_OK);
    assert_int_equal(check("/a?../../x"), URL_OK);   /* the query is not a path */
    assert_int_equal(check("/a?p=/./"), URL_OK);
    assert_int_equal(check("/~user/!$&'()*+,;=:@"), URL_OK);
}

static void smuggling_bytes_are_refused(void **state)
{
    (void)state;
    assert_int_equal(check("/a\r\nDELETE /admin HTTP/1.1"), URL_E_CHAR);
    assert_int_equal(check("/a\nb"), URL_E_CHAR);
    assert_int_equal(check("/a\rb"), URL_E_CHAR);
    assert_int_equal(check("/a b"), URL_E_CHAR);
    assert_int_equal(check("/a\tb"), URL_E_CHAR);
    assert_int_equal(check("/a\x7f"), URL_E_CHAR);
    assert_int_equal(check("/caf\xc3\xa9"), URL_E_CHAR);
    assert_int_equal(check("/a?x=\r\n"), URL_E_CHAR);
    /* a NUL inside the length counts, whatever a C string would say */
    assert_int_equal(url_check("/a\0b", 4), URL_E_CHAR);
    assert_int_equal(check("/a#frag"), URL_E_FRAGMENT);
}

static void escapes_are_checked_not_decoded(void **state)
{
    (void)state;
    assert_int_equal(check("/a%0d%0aDELETE%20/admin"), URL_E_CONTROL);
    assert_int_equal(check("/a%0D%0A"), URL_E_CONTROL);
    assert_int_equal(check("/a%00"), URL_E_CONTROL);
    assert_int_equal(check("/a%7f"), URL_E_CONTROL);
    assert_int_equal(check("/a?q=%0a"), URL_E_CONTROL);
    assert_int_equal(check("/a%"), URL_E_ESCAPE);
    assert_int_equal(check("/a%2"), URL_E_ESCAPE);
    assert_int_equal(check("/a%zz"), URL_E_ESCAPE);
    assert_int_equal(check("/a%%30"), URL_E_ESCAPE);
    assert_int_equal(check("/a?%g0"), URL_E_ESCAPE);
    assert_int_equal(check("/a%20"), URL_OK);
    assert_int_equal(check("/a%7e"), URL_OK);
}

static void dot_segments_are_refused_however_spelled(void **state)
{
    (void)state;
    assert_int_equal(check("/.."), URL_E_DOT);
    assert_int_equal(check("/."), URL_E_DOT);
    assert_int_equal(check("/a/../admin"), URL_E_DOT);
    assert_int_equal(check("/a/./b"), URL_E_DOT);
    assert_int_equal(check("/a/.."), URL_E_DOT);
    assert_int_equal(check("/a/..?x"), URL_E_DOT);
    assert_int_equal(check("/a/%2e%2e/admin"), URL_E_DOT);
    assert_int_equal(check("/a/%2E%2E/admin"), URL_E_DOT);
    assert_int_equal(check("/a/.%2e/admin"), URL_E_DOT);
    assert_int_equal(check("/a/%2e./admin"), URL_E_DOT);
    assert_int_equal(check("/a/%2e/b"), URL_E_DOT);
    assert_int_equal(check("/a/..%2fadmin"), URL_E_DOT);
    assert_int_equal(check("/a/..%2Fadmin"), URL_E_DOT);
    assert_int_equal(check("/a/..%5cadmin"), URL_E_DOT);
    assert_int_equal(check("/a\\..\\admin"), URL_E_DOT);
    assert_int_equal(check("/a%2f..%2fadmin"), URL_E_DOT);
    /* an encoded '?' is data, so what follows is still path */
    assert_int_equal(check("/a%3f/../b"), URL_E_DOT);
}

static void shape_and_length(void **state)
{
    (void)state;
    char big[URL_MAX + 2];
    assert_int_equal(url_check(NULL, 0), URL_E_EMPTY);
    assert_int_equal(check(""), URL_E_EMPTY);
    assert_int_equal(check("charge"), URL_E_EMPTY);
    assert_int_equal(check("http://evil/"), URL_E_EMPTY);
    assert_int_equal(check("*"), URL_E_EMPTY);
    memset(big, 'a', sizeof(big));
    big[0] = '/';
    assert_int_equal(url_check(big, URL_MAX), URL_OK);
    assert_int_equal(url_check(big, URL_MAX + 1), URL_E_LONG);
    for (int e = URL_E_DOT; e <= URL_OK; e++)
        assert_non_null(url_strerror(e));
    assert_string_equal(url_strerror(-99), "bad url");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_paths_and_queries_pass),
        cmocka_unit_test(smuggling_bytes_are_refused),
        cmocka_unit_test(escapes_are_checked_not_decoded),
        cmocka_unit_test(dot_segments_are_refused_however_spelled),
        cmocka_unit_test(shape_and_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
