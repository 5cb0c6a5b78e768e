/* Unit tests for libmicro/util.c: the seeded PRNG (reproducibility, uniformity,
 * no modulo bias in rng_below), UUIDv4 strings and the clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void seed_reproducible(void **state)
{
    (void)state;
    uint64_t a[8], b[8];
    rng_seed(7);
    for (int i = 0; i < 8; i++)
        a[i] = rng_next();
    rng_seed(7);
    for (int i = 0; i < 8; i++)
        b[i] = rng_next();
    assert_memory_equal(a, b, sizeof(a));
    rng_seed(8);
    assert_true(rng_next() != a[0]);
    for (int i = 1; i < 8; i++)
        assert_true(a[i] != a[i - 1]);
}

/* Chi-square over 10 buckets: 9 degrees of freedom, p = 0.001 at 27.9; 40 is
 * generous for a good generator, yet a bias of a few percent shows at once. */
static void below_uniform_chi_square(void **state)
{
    (void)state;
    enum { BUCKETS = 10, DRAWS = 100000 };
    uint64_t seeds[] = {1, 2, 0xdeadbeef};
    for (size_t s = 0; s < 3; s++) {
        long count[BUCKETS] = {0};
        rng_seed(seeds[s]);
        for (int i = 0; i < DRAWS; i++) {
            uint64_t v = rng_below(BUCKETS);
            assert_true(v < BUCKETS);
            count[v]++;
        }
        double expect = (double)DRAWS / BUCKETS, chi = 0;
        for (int k = 0; k < BUCKETS; k++)
            chi += (count[k] - expect) * (count[k] - expect) / expect;
        if (chi > 40)
            fail_msg("seed %llu: chi-square %.1f", (unsigned long long)seeds[s], chi);
    }
}

/* n just above 2/3 of 2^64: plain `rng_next() % n` would land in the lower half
 * of [0, n) two times out of three. Rejection sampling keeps it at one in two. */
static void below_no_modulo_bias(void **state)
{
    (void)state;
    const uint64_t n = 0xAAAAAAAAAAAAAAABULL;
    enum { DRAWS = 100000 };
    long low = 0;
    rng_seed(3);
    for (int i = 0; i < DRAWS; i++) {
        uint64_t v = rng_below(n);
        assert_true(v < n);
        if (v < n / 2)
            low++;
    }
    double frac = (double)low / DRAWS;
    if (frac < 0.49 || frac > 0.51)
        fail_msg("lower half drawn %.4f of the time", frac);
}

static void below_small_ranges(void **state)
{
    (void)state;
    rng_seed(11);
    int seen[3] = {0};
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(rng_below(1), 0);
        uint64_t v = rng_below(3);
        assert_true(v < 3);
        seen[v]++;
    }
    for (int k = 0; k < 3; k++)
        assert_true(seen[k] > 200);
    /* the full range works too */
    for (int i = 0; i < 100; i++)
        assert_true(rng_below(UINT64_MAX) < UINT64_MAX);
}

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

static void uuid4_shape_and_uniqueness(void **state)
{
    (void)state;
    enum { N = 2000 };
    static char ids[N][37];
    unsigned varied[36] = {0};
    rng_seed(0);
    for (int i = 0; i < N; i++) {
        memset(ids[i], 'Z', sizeof(ids[i]));
        uuid4(ids[i]);
        const char *s = ids[i];
        assert_int_equal(strlen(s), 36);
        for (int k = 0; k < 36; k++) {
            char c = s[k];
            if (k == 8 || k == 13 || k == 18 || k == 23) {
                assert_int_equal(c, '-');
                continue;
            }
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                fail_msg("uuid %s: bad char at %d", s, k);
            if (i && c != ids[0][k])
                varied[k] = 1;
        }
        assert_int_equal(s[14], '4');                 /* version 4 */
        assert_non_null(strchr("89ab", s[19]));       /* RFC 4122 variant */
    }
    /* every random nibble actually varies */
    for (int k = 0; k < 36; k++) {
        if (k == 8 || k == 13 || k == 18 || k == 23 || k == 14)
            continue;
        if (!varied[k])
            fail_msg("position %d never varied", k);
    }
    /* the two 64-bit halves are drawn independently: bytes 10-11 (the node field)
     * match bytes 2-3 only by chance, about once in 65536 */
    int same_half = 0;
    for (int i = 0; i < N; i++)
        same_half += memcmp(ids[i] + 24, ids[i] + 4, 4) == 0;
    assert_true(same_half < 10);
    qsort(ids, N, sizeof(ids[0]), cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i], ids[i - 1]);
}

static void clocks_monotonic(void **state)
{
    (void)state;
    int64_t ms = now_ms(), us = now_us();
    assert_true(ms > 0 && us > 0);
    int64_t prev = now_us();
    for (int i = 0; i < 1000; i++) {
        int64_t t = now_us();
        assert_true(t >= prev);
        prev = t;
    }
    assert_true(now_ms() >= ms);
    assert_true(llabs(now_us() / 1000 - now_ms()) <= 5);
}

static void nofile_limit(void **state)
{
    (void)state;
    assert_true(raise_nofile_limit() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_reproducible),
        cmocka_unit_test(below_uniform_chi_square),
        cmocka_unit_test(below_no_modulo_bias),
        cmocka_unit_test(below_small_ranges),
        cmocka_unit_test(uuid4_shape_and_uniqueness),
        cmocka_unit_test(clocks_monotonic),
        cmocka_unit_test(nofile_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
