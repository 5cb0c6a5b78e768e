/* Unit tests for libmicro/ratelimit.c, the token bucket behind the sidecar's inbound
 * (per route) and outbound (per namespace) rate limits. Time is synthetic: every
 * call gets an explicit timestamp in microseconds, so the tests are exact and fast.
 *   - a fresh bucket holds `burst` tokens; burst 0 means max(rate, 1)
 *   - refill at `rate` per second, capped at `burst` (also after a very long idle)
 *   - a refusal reports the time until the next token (retry_after)
 *   - rate 0 = unlimited; time running backwards never adds tokens */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>

#include "ratelimit.h"

#include <stdio.h>

/* cmocka's double assertions are not in every version: |a - b| <= eps, printing both */
#define assert_near(a, b, eps)                                                            \
    do {                                                                                  \
        double a_ = (a), b_ = (b);                                                        \
        if (!(fabs(a_ - b_) <= (eps)))                                                    \
            fail_msg("%s = %.12g, expected %.12g (+- %g)", #a, a_, b_, (double)(eps));    \
    } while (0)

#define US 1000000LL
/* an arbitrary, realistic monotonic clock value: timestamps are not small numbers */
#define T0 (1234567LL * US + 890123LL)

static int take_n(tbucket_t *b, int64_t now, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += tb_take(b, now, NULL);
    return ok;
}

static void burst_capacity(void **state)
{
    (void)state;
    tbucket_t b;
    tb_init(&b, 10, 5, T0);
    for (int i = 0; i < 5; i++)
        assert_true(tb_take(&b, T0, NULL));
    double ra = -1;
    assert_false(tb_take(&b, T0, &ra));
    assert_false(tb_take(&b, T0, NULL));
    /* a refusal takes nothing: the next token still arrives after 1/rate */
    assert_false(tb_take(&b, T0 + 99999, NULL));
    assert_true(tb_take(&b, T0 + 100000, NULL));
    assert_false(tb_take(&b, T0 + 100000, NULL));
}

static void burst_default_is_max_of_rate_and_one(void **state)
{
    (void)state;
    tbucket_t b;
    tb_init(&b, 50, 0, T0);
    assert_int_equal(take_n(&b, T0, 100), 50);
    tb_init(&b, 0.5, 0, T0);
    assert_int_equal(take_n(&b, T0, 10), 1);
    tb_init(&b, 1, 0, T0);
    assert_int_equal(take_n(&b, T0, 10), 1);
    /* an explicit burst wins over the rate */
    tb_init(&b, 50, 3, T0);
    assert_int_equal(take_n(&b, T0, 100), 3);
    tb_init(&b, 2, 7, T0);
    assert_int_equal(take_n(&b, T0, 100), 7);
}

static void refills_at_rate(void **state)
{
    (void)state;
    tbucket_t b;
    tb_init(&b, 10, 1, T0); /* one token every 100 ms */
    assert_true(tb_take(&b, T0, NULL));
    assert_false(tb_take(&b, T0 + 50000, NULL));
    assert_false(tb_take(&b, T0 + 99000, NULL));
    assert_true(tb_take(&b, T0 + 100000, NULL));
    assert_false(tb_take(&b, T0 + 100001, NULL));
    assert_true(tb_take(&b, T0 + 200000, NULL));

    /* partial refills add up across calls: 4 x 25 ms = one token */
    assert_false(tb_take(&b, T0 + 225000, NULL));
    assert_false(tb_take(&b, T0 + 250000, NULL));
    assert_false(tb_take(&b, T0 + 275000, NULL));
    assert_true(tb_take(&b, T0 + 300000, NULL));

    /* 350 ms after an empty bucket with burst 5: 3 tokens (3.5, the half stays) */
    tb_init(&b, 10, 5, T0);
    assert_int_equal(take_n(&b, T0, 5), 5);
    assert_int_equal(take_n(&b, T0 + 350000, 10), 3);
    assert_int_equal(take_n(&b, T0 + 400000, 10), 1);
}

/* Offered load far above the rate, checked every millisecond for 10 s: exactly the
 * burst plus rate x time gets through, evenly spread. */
static void long_run_rate_is_exact(void **state)
{
    (void)state;
    tbucket_t b;
    const double rate = 50;
    tb_init(&b, rate, 1, T0);
    int ok = 0, per_second[10] = {0};
    for (int64_t ms = 0; ms < 10000; ms++)
        for (int k = 0; k < 4; k++) /* 4 callers each millisecond */
            if (tb_take(&b, T0 + ms * 1000, NULL)) {
                ok++;
                per_second[ms / 1000]++;
            }
    /* 1 (burst) + 50/s over 9.999 s */
    assert_in_range(ok, 500, 501);
    for (int s = 1; s < 10; s++)
        assert_in_range(per_second[s], 49, 51);

    /* a fractional rate: 0.5/s is one every 2 s */
    tb_init(&b, 0.5, 1, T0);
    assert_true(tb_take(&b, T0, NULL));
    assert_false(tb_take(&b, T0 + 1 * US, NULL));
    assert_false(tb_take(&b, T0 + 1999990, NULL));
    /* tokens are doubles summed over calls: allow one microsecond of rounding */
    assert_true(tb_take(&b, T0 + 2 * US + 1, NULL));
    assert_false(tb_take(&b, T0 + 2 * US + 2, NULL));
}

static void retry_after_is_time_to_next_token(void **state)
{
    (void)state;
    tbucket_t b;
    double ra = -1;
    tb_init(&b, 10, 2, T0);
    assert_int_equal(take_n(&b, T0, 2), 2);
    assert_false(tb_take(&b, T0, &ra));
    assert_near(ra, 0.1, 1e-9);
    assert_false(tb_take(&b, T0 + 30000, &ra));
    assert_near(ra, 0.07, 1e-9);
    assert_false(tb_take(&b, T0 + 99990, &ra));
    assert_near(ra, 0.00001, 1e-9);
    /* waiting exactly that long is enough */
    assert_true(tb_take(&b, T0 + 100000, NULL));

    /* slow rate: 1 token every 4 s */
    tb_init(&b, 0.25, 1, T0);
    assert_true(tb_take(&b, T0, NULL));
    assert_false(tb_take(&b, T0 + 1 * US, &ra));
    assert_near(ra, 3.0, 1e-9);
    int64_t when = T0 + 1 * US + (int64_t)llround(ra * 1e6);
    assert_false(tb_take(&b, when - 1, NULL));
    assert_true(tb_take(&b, when, NULL));

    /* retry_after is only written on a refusal */
    tb_init(&b, 10, 1, T0);
    ra = 42;
    assert_true(tb_take(&b, T0, &ra));
    assert_near(ra, 42, 0);
    /* NULL is allowed */
    assert_false(tb_take(&b, T0, NULL));
}

static void rate_zero_is_unlimited(void **state)
{
    (void)state;
    tbucket_t b;
    tb_init(&b, 0, 0, T0);
    double ra = 7;
    for (int i = 0; i < 100000; i++)
        assert_true(tb_take(&b, T0, &ra));
    assert_near(ra, 7, 0);
    /* whatever the burst, and whatever the clock does */
    tb_init(&b, 0, 1, T0);
    assert_int_equal(take_n(&b, T0, 1000), 1000);
    assert_int_equal(take_n(&b, T0 - 5 * US, 1000), 1000);
    assert_int_equal(take_n(&b, 0, 1000), 1000);
}

static void long_idle_does_not_overflow_burst(void **state)
{
    (void)state;
    tbucket_t b;
    tb_init(&b, 100, 10, T0);
    assert_int_equal(take_n(&b, T0, 10), 10);
    /* an hour idle, then a day, then ~292 years: still only `burst` tokens */
    int64_t t = T0 + 3600 * US;
    assert_int_equal(take_n(&b, t, 1000), 10);
    t += 86400 * US;
    assert_int_equal(take_n(&b, t, 1000), 10);
    t = INT64_MAX / 2;
    assert_int_equal(take_n(&b, t, 1000), 10);
    /* and the rate after that is the configured one again */
    assert_int_equal(take_n(&b, t + 100000, 1000), 10);
    assert_int_equal(take_n(&b, t + 110000, 1000), 1);

    /* a fresh bucket is full but not more, even with a zero start time */
    tb_init(&b, 1000, 3, 0);
    assert_int_equal(take_n(&b, 10 * 1000 * US, 1000), 3);
}

static void clock_going_backwards_adds_nothing(void **state)
{
    (void)state;
    tbucket_t b;
    tb_init(&b, 10, 2, T0);
    assert_int_equal(take_n(&b, T0, 2), 2);
    double ra = -1;
    assert_false(tb_take(&b, T0 - 10 * US, &ra));
    assert_true(ra > 0 && ra <= 0.1 + 1e-9);
    /* the refill is measured from the latest time seen, not from the earlier one */
    assert_false(tb_take(&b, T0 + 50000, NULL));
    assert_true(tb_take(&b, T0 + 100000, NULL));
    assert_false(tb_take(&b, T0 + 100000, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_capacity),
        cmocka_unit_test(burst_default_is_max_of_rate_and_one),
        cmocka_unit_test(refills_at_rate),
        cmocka_unit_test(long_run_rate_is_exact),
        cmocka_unit_test(retry_after_is_time_to_next_token),
        cmocka_unit_test(rate_zero_is_unlimited),
        cmocka_unit_test(long_idle_does_not_overflow_burst),
        cmocka_unit_test(clock_going_backwards_adds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
