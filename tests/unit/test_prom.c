/* Unit tests for libmicro/prom.c: sample values (integers, floats, values outside
 * long long's range, non-finite values) and label escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

static void value_is(double v, const char *want)
{
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    prom_value(&b, "m", v);
    char line[128];
    snprintf(line, sizeof(line), "m %s\n", want);
    if (strcmp(sbuf_data(&b), line) != 0)
        fail_msg("value %.17g: got \"%s\", want \"%s\"", v, sbuf_data(&b), line);
    sbuf_free(&b);
}

static void values(void **state)
{
    (void)state;
    value_is(0, "0");
    value_is(-0.0, "0");
    value_is(42, "42");
    value_is(-7, "-7");
    value_is(0.5, "0.500000");
    value_is(9007199254740992.0, "9007199254740992"); /* 2^53 */
    value_is(-9223372036854775808.0, "-9223372036854775808"); /* -2^63: in range */
    /* outside long long's range: a float, never a wrapped integer */
    value_is(9223372036854775808.0, "9.2233720368547758e+18"); /* 2^63 */
    value_is(1e19, "1e+19");
    value_is(-1e19, "-1e+19");
    value_is(1e308, "1e+308");
    value_is(-1e308, "-1e+308");
    value_is(1.7976931348623157e308, "1.7976931348623157e+308");
    value_is(INFINITY, "+Inf");
    value_is(-INFINITY, "-Inf");
    value_is(NAN, "NaN");
    value_is(1e15 + 0.5, "1000000000000000.5");
}

static void labels(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    prom_labeled(&b, "m", "namespace", "a\"b\\c\nd", 1);
    assert_string_equal(sbuf_data(&b), "m{namespace=\"a\\\"b\\\\c\\nd\"} 1\n");
    sbuf_reset(&b);
    prom_labeled(&b, "m", "namespace", "pay\xffments \xc3\xa9", 2);
    assert_string_equal(sbuf_data(&b), "m{namespace=\"pay\xef\xbf\xbdments \xc3\xa9\"} 2\n");
    sbuf_reset(&b);
    prom_labeled(&b, "m", "namespace", "\xe2\x82", 1e308); /* cut sequence */
    assert_string_equal(sbuf_data(&b), "m{namespace=\"\xef\xbf\xbd\xef\xbf\xbd\"} 1e+308\n");
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values),
        cmocka_unit_test(labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
