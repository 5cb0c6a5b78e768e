/* Unit tests for libmicro/sbuf.c: the hard limit and its sticky error, headroom,
 * growth, printf, u64 formatting and JSON string escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sbuf.h"

#define assert_data(b, lit)                                   \
    do {                                                      \
        assert_int_equal((b)->len, sizeof(lit) - 1);          \
        assert_memory_equal(sbuf_data(b), lit, sizeof(lit) - 1); \
        assert_int_equal(sbuf_data(b)[(b)->len], '\0');       \
    } while (0)

static void empty_buffer(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 8, 0);
    assert_null(sbuf_data(&b));
    assert_int_equal(b.len, 0);
    assert_int_equal(b.err, 0);
    assert_int_equal(b.limit, 64u << 20); /* 0 = the default 64 MiB */
    sbuf_free(&b);
}

static void limit_sets_sticky_err(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 10);
    assert_int_equal(sbuf_adds(&b, "0123456789"), 0); /* exactly the limit fits */
    assert_int_equal(b.err, 0);
    assert_int_equal(sbuf_addc(&b, 'x'), -1);
    assert_int_equal(b.err, 1);
    assert_data(&b, "0123456789"); /* the failed append left the data alone */

    /* sticky: even an append that would fit fails now */
    b.len = 2;
    assert_int_equal(sbuf_addc(&b, 'y'), -1);
    assert_int_equal(sbuf_add(&b, "", 0), -1);
    assert_int_equal(sbuf_printf(&b, "%d", 1), -1);
    assert_int_equal(sbuf_add_u64(&b, 1), -1);
    assert_int_equal(sbuf_add_json_str(&b, "a", 1), -1);
    assert_int_equal(sbuf_reserve(&b, 0), -1);
    assert_int_equal(b.len, 2);

    sbuf_reset(&b); /* reset clears it */
    assert_int_equal(b.err, 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(sbuf_adds(&b, "ok"), 0);
    assert_data(&b, "ok");
    sbuf_free(&b);
}

static void limit_applies_to_every_append(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 8);
    assert_int_equal(sbuf_printf(&b, "%s", "123456789"), -1);
    assert_int_equal(b.err, 1);
    sbuf_reset(&b);
    assert_int_equal(sbuf_add_u64(&b, 123456789ULL), -1);
    sbuf_reset(&b);
    assert_int_equal(sbuf_add_json_str(&b, "1234567", 7), -1); /* 9 with the quotes */
    sbuf_reset(&b);
    assert_int_equal(sbuf_add_json_str(&b, "\n\n\n\n", 4), -1); /* 8 escaped, 10 in all */
    assert_int_equal(b.err, 1);
    sbuf_reset(&b);
    assert_int_equal(sbuf_add_json_str(&b, "\n\n\n", 3), 0); /* exactly 8 */
    assert_data(&b, "\"\\n\\n\\n\"");
    sbuf_free(&b);
}

static void headroom_preserved(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 32, 0);
    assert_int_equal(sbuf_adds(&b, "frame"), 0);
    assert_ptr_equal(sbuf_data(&b), b.buf + 32);
    assert_true(b.cap >= 32 + 5 + 1);
    /* growth (realloc) keeps the headroom and the data */
    char big[5000];
    memset(big, 'z', sizeof(big));
    assert_int_equal(sbuf_add(&b, big, sizeof(big)), 0);
    assert_ptr_equal(sbuf_data(&b), b.buf + 32);
    assert_memory_equal(sbuf_data(&b), "framezzz", 8);
    assert_int_equal(b.len, 5005);
    assert_true(b.cap >= 32 + 5005 + 1);
    /* the headroom is writable and not counted in the data or against the limit */
    memset(b.buf, 0xAA, 32);
    assert_memory_equal(sbuf_data(&b), "frame", 5);

    size_t len = b.len;
    char *p = sbuf_steal(&b);
    assert_non_null(p);
    assert_memory_equal(p + 32, "framezzz", 8);
    assert_int_equal(p[32 + len], '\0');
    free(p);
    assert_null(sbuf_data(&b));
    assert_int_equal(b.len, 0);
    /* still usable, with the same headroom */
    assert_int_equal(sbuf_adds(&b, "next"), 0);
    assert_ptr_equal(sbuf_data(&b), b.buf + 32);
    assert_data(&b, "next");
    sbuf_free(&b);
}

static void headroom_not_counted_in_limit(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 100, 4);
    assert_int_equal(sbuf_adds(&b, "abcd"), 0);
    assert_int_equal(sbuf_addc(&b, 'e'), -1);
    sbuf_free(&b);
}

static void add_and_printf(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 4, 0);
    assert_int_equal(sbuf_add(&b, "a\0b", 3), 0); /* binary-safe */
    assert_int_equal(b.len, 3);
    assert_memory_equal(sbuf_data(&b), "a\0b", 3);
    sbuf_reset(&b);
    assert_int_equal(sbuf_printf(&b, "%s=%d;", "x", 42), 0);
    assert_data(&b, "x=42;");
    /* longer than printf's 256-byte stack buffer */
    char s[600];
    memset(s, 'q', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    assert_int_equal(sbuf_printf(&b, "[%s]", s), 0);
    assert_int_equal(b.len, 5 + 601);
    assert_memory_equal(sbuf_data(&b), "x=42;[qqq", 9);
    assert_int_equal(sbuf_data(&b)[b.len - 1], ']');
    assert_int_equal(sbuf_data(&b)[b.len], '\0');
    assert_int_equal(sbuf_addc(&b, '!'), 0);
    assert_int_equal(sbuf_data(&b)[b.len - 2], ']');
    sbuf_free(&b);
}

static void u64_formatting(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    sbuf_add_u64(&b, 0);
    assert_data(&b, "0");
    sbuf_reset(&b);
    sbuf_add_u64(&b, 7);
    assert_data(&b, "7");
    sbuf_reset(&b);
    sbuf_add_u64(&b, 10);
    assert_data(&b, "10");
    sbuf_reset(&b);
    sbuf_add_u64(&b, 9007199254740991ULL);
    assert_data(&b, "9007199254740991");
    sbuf_reset(&b);
    sbuf_add_u64(&b, 18446744073709551615ULL);
    assert_data(&b, "18446744073709551615");
    sbuf_free(&b);
}

static void json_string_escaping(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    assert_int_equal(sbuf_add_json_str(&b, "", 0), 0);
    assert_data(&b, "\"\"");
    sbuf_reset(&b);
    assert_int_equal(sbuf_add_json_str(&b, "plain /path", 11), 0);
    assert_data(&b, "\"plain /path\"");
    sbuf_reset(&b);
    const char in[] = "q\"b\\n\nr\rt\tend";
    assert_int_equal(sbuf_add_json_str(&b, in, sizeof(in) - 1), 0);
    assert_data(&b, "\"q\\\"b\\\\n\\nr\\rt\\tend\"");
    sbuf_reset(&b);
    /* other control characters as \u00XX, NUL included; DEL and UTF-8 pass through */
    const char ctl[] = "\x01\x1f\b\f\0\x7f\xc3\xa9";
    assert_int_equal(sbuf_add_json_str(&b, ctl, sizeof(ctl) - 1), 0);
    assert_data(&b, "\"\\u0001\\u001f\\u0008\\u000c\\u0000\x7f\xc3\xa9\"");
    sbuf_reset(&b);
    /* only n bytes are taken */
    assert_int_equal(sbuf_add_json_str(&b, "abcdef", 3), 0);
    assert_data(&b, "\"abc\"");
    sbuf_free(&b);
}

/* Strings from apps and peers: bytes that are not UTF-8 become \ufffd, so what
 * we emit is always valid JSON; valid UTF-8 passes through unchanged. */
static void json_str_repairs_invalid_utf8(void **state)
{
    (void)state;
    const struct {
        const char *in, *out;
    } cases[] = {
        {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
        {"\xe2\x82\xac \xf0\x9f\x98\x80", "\"\xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"a\xff\xfe" "b", "\"a\\ufffd\\ufffdb\""},
        {"\xc3", "\"\\ufffd\""},                 /* truncated */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},       /* overlong */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"\x80x", "\"\\ufffdx\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        assert_int_equal(sbuf_add_json_str(&b, cases[i].in, strlen(cases[i].in)), 0);
        assert_int_equal(b.len, strlen(cases[i].out));
        assert_memory_equal(sbuf_data(&b), cases[i].out, b.len);
        sbuf_free(&b);
    }
}

static void json_num_is_finite_or_null(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    sbuf_add_json_num(&b, 2.5);
    sbuf_addc(&b, ',');
    sbuf_add_json_num(&b, 0.1);
    sbuf_addc(&b, ',');
    sbuf_add_json_num(&b, 1e9);
    sbuf_addc(&b, ',');
    sbuf_add_json_num(&b, 1.0 / 0.0);
    sbuf_addc(&b, ',');
    sbuf_add_json_num(&b, -1.0 / 0.0);
    sbuf_addc(&b, ',');
    sbuf_add_json_num(&b, 0.0 / 0.0);
    sbuf_addc(&b, '\0');
    assert_string_equal(sbuf_data(&b), "2.5,0.1,1000000000,null,null,null");
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_str_repairs_invalid_utf8),
        cmocka_unit_test(json_num_is_finite_or_null),
        cmocka_unit_test(empty_buffer),
        cmocka_unit_test(limit_sets_sticky_err),
        cmocka_unit_test(limit_applies_to_every_append),
        cmocka_unit_test(headroom_preserved),
        cmocka_unit_test(headroom_not_counted_in_limit),
        cmocka_unit_test(add_and_printf),
        cmocka_unit_test(u64_formatting),
        cmocka_unit_test(json_string_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
