/* Unit tests for sidecar/breaker.c, both policies, on a bare sidecar_t (the
 * breaker touches only its config, its stats and its map):
 *   reference    any failure excludes the peer for --breaker-cooldown-ms, a
 *                success clears it, the exclusion expires, breaker_reset forgets
 *                the namespace; breaker_allows never refuses
 *   consecutive  CLOSED → OPEN after --breaker-failures in a row (a success in
 *                between starts the count again), OPEN → HALF_OPEN after
 *                --breaker-reset-ms, exactly one trial call, which closes the
 *                circuit or re-opens it for another full reset time
 * Time is the real monotonic clock: a test that needs a period to pass waits
 * until now_ms() says it has (a few tens of milliseconds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sidecar.h"
#include "util.h"

#define NS "payments"
#define PEER_A "10.0.0.1:9100"
#define PEER_B "10.0.0.2:9100"
#define PERIOD_MS 40 /* cooldown / reset time of the tests that wait */

static sidecar_t s;

static void until_ms(int64_t t)
{
    while (now_ms() < t) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void setup_policy(const char *policy, long long cooldown_ms, long long failures, long long reset_ms)
{
    memset(&s, 0, sizeof(s));
    s.cfg.breaker_policy = (char *)policy;
    s.cfg.breaker_cooldown_ms = cooldown_ms;
    s.cfg.breaker_failures = failures;
    s.cfg.breaker_reset_ms = reset_ms;
    hmap_init(&s.breakers);
}

static int teardown(void **state)
{
    (void)state;
    breaker_free(&s);
    return 0;
}

/* The excluded keys of ns, as one comma-separated string ("" for none). */
static const char *excluded(const char *ns)
{
    static char buf[512];
    const char *out[8];
    size_t n = breaker_excluded(&s, ns, out, 8);
    buf[0] = '\0';
    assert_null(out[n]);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(buf, ",");
        strcat(buf, out[i]);
    }
    return buf;
}

static bool excludes(const char *ns, const char *key)
{
    const char *out[8];
    size_t n = breaker_excluded(&s, ns, out, 8);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(out[i], key))
            return true;
    return false;
}

static void counts(size_t want_open, size_t want_half)
{
    size_t open, half;
    breaker_counts(&s, &open, &half);
    assert_int_equal(open, want_open);
    assert_int_equal(half, want_half);
}

/* ---- reference policy ---- */

static void test_reference_failure_excludes_until_success(void **state)
{
    (void)state;
    setup_policy("reference", 60000, 5, 60000);
    assert_string_equal(excluded(NS), "");
    breaker_failure(&s, NS, PEER_A);
    assert_string_equal(excluded(NS), PEER_A);   /* one failure is enough */
    assert_int_equal(s.stats.breaker_exclusions, 1);
    assert_true(breaker_allows(&s, NS, PEER_A)); /* the reference only excludes from /-/find */
    counts(1, 0);
    breaker_failure(&s, NS, PEER_A);              /* still excluded: not counted again */
    assert_int_equal(s.stats.breaker_exclusions, 1);
    assert_false(excludes("other", PEER_A));      /* per namespace */
    breaker_success(&s, NS, PEER_A);
    assert_string_equal(excluded(NS), "");
    counts(0, 0);
    breaker_success(&s, NS, PEER_B);              /* unknown peer: nothing happens */
    breaker_success(&s, "unknown", PEER_B);
}

static void test_reference_policy_is_the_default(void **state)
{
    (void)state;
    setup_policy(NULL, 60000, 1, 60000); /* no policy configured */
    breaker_failure(&s, NS, PEER_A);
    assert_true(excludes(NS, PEER_A));
    assert_true(breaker_allows(&s, NS, PEER_A));
}

static void test_reference_cooldown_expires(void **state)
{
    (void)state;
    setup_policy("reference", PERIOD_MS, 5, 60000);
    int64_t t0 = now_ms();
    breaker_failure(&s, NS, PEER_A);
    breaker_failure(&s, NS, PEER_B);
    if (now_ms() - t0 < PERIOD_MS) /* a slow machine may already be past it */
        assert_int_equal(breaker_excluded(&s, NS, (const char *[4]){0}, 4), 2);
    until_ms(t0 + PERIOD_MS + 1);
    assert_string_equal(excluded(NS), ""); /* expired entries are dropped */
    counts(0, 0);
    /* the namespace's state is gone with its last peer: a new failure starts afresh */
    breaker_failure(&s, NS, PEER_A);
    assert_string_equal(excluded(NS), PEER_A);
}

static void test_reference_zero_cooldown_never_excludes(void **state)
{
    (void)state;
    setup_policy("reference", 0, 5, 60000);
    breaker_failure(&s, NS, PEER_A);
    assert_string_equal(excluded(NS), "");
}

static void test_reset_forgets_the_namespace(void **state)
{
    (void)state;
    setup_policy("reference", 60000, 5, 60000);
    breaker_failure(&s, NS, PEER_A);
    breaker_failure(&s, NS, PEER_B);
    breaker_failure(&s, "other", PEER_A);
    breaker_reset(&s, NS);
    assert_int_equal(s.stats.breaker_resets, 1);
    assert_string_equal(excluded(NS), "");
    assert_string_equal(excluded("other"), PEER_A); /* other namespaces keep theirs */
    breaker_reset(&s, "nobody");                    /* nothing to reset: not counted */
    assert_int_equal(s.stats.breaker_resets, 1);
}

static void test_excluded_respects_max(void **state)
{
    (void)state;
    setup_policy("reference", 60000, 5, 60000);
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "10.0.0.%d:9100", i);
        breaker_failure(&s, NS, key);
    }
    const char *out[4] = {"x", "x", "x", "x"};
    /* max counts the terminating NULL */
    assert_int_equal(breaker_excluded(&s, NS, out, 4), 3);
    assert_null(out[3]);
    const char *big[16];
    assert_int_equal(breaker_excluded(&s, NS, big, 16), 10);
    assert_null(big[10]);
}

/* ---- consecutive policy ---- */

static void test_consecutive_opens_after_n_failures(void **state)
{
    (void)state;
    setup_policy("consecutive", 60000, 3, 60000);
    breaker_failure(&s, NS, PEER_A);
    breaker_failure(&s, NS, PEER_A);
    assert_true(breaker_allows(&s, NS, PEER_A)); /* CLOSED: 2 < 3 */
    assert_string_equal(excluded(NS), "");
    counts(0, 0);
    assert_int_equal(s.stats.breaker_exclusions, 0);
    breaker_failure(&s, NS, PEER_A);             /* the third in a row: OPEN */
    assert_false(breaker_allows(&s, NS, PEER_A));
    assert_string_equal(excluded(NS), PEER_A);
    assert_int_equal(s.stats.breaker_exclusions, 1);
    counts(1, 0);
    assert_true(breaker_allows(&s, NS, PEER_B)); /* per peer */
    breaker_failure(&s, NS, PEER_A);             /* more failures while OPEN: still one opening */
    assert_int_equal(s.stats.breaker_exclusions, 1);
}

static void test_consecutive_success_restarts_the_count(void **state)
{
    (void)state;
    setup_policy("consecutive", 60000, 3, 60000);
    breaker_failure(&s, NS, PEER_A);
    breaker_failure(&s, NS, PEER_A);
    breaker_success(&s, NS, PEER_A); /* not in a row any more */
    breaker_failure(&s, NS, PEER_A);
    breaker_failure(&s, NS, PEER_A);
    assert_true(breaker_allows(&s, NS, PEER_A));
    breaker_failure(&s, NS, PEER_A);
    assert_false(breaker_allows(&s, NS, PEER_A));
}

static void open_a(int64_t *opened)
{
    breaker_failure(&s, NS, PEER_A);
    *opened = now_ms();
    breaker_failure(&s, NS, PEER_A);
    assert_false(breaker_allows(&s, NS, PEER_A));
}

static void test_consecutive_half_open_one_trial_success_closes(void **state)
{
    (void)state;
    setup_policy("consecutive", 60000, 2, PERIOD_MS);
    int64_t opened;
    open_a(&opened);
    until_ms(opened + PERIOD_MS + 1);
    /* HALF_OPEN: calls may go to the peer again, it is not excluded from /-/find */
    assert_true(breaker_allows(&s, NS, PEER_A));
    assert_string_equal(excluded(NS), "");
    counts(0, 1);
    breaker_attempt(&s, NS, PEER_A);              /* the one trial is out */
    assert_false(breaker_allows(&s, NS, PEER_A)); /* no second trial */
    assert_string_equal(excluded(NS), PEER_A);
    counts(0, 1);
    breaker_success(&s, NS, PEER_A);              /* the trial succeeded: CLOSED */
    assert_true(breaker_allows(&s, NS, PEER_A));
    assert_string_equal(excluded(NS), "");
    counts(0, 0);
    breaker_failure(&s, NS, PEER_A);              /* a fresh count: one failure is not enough */
    assert_true(breaker_allows(&s, NS, PEER_A));
}

static void test_consecutive_half_open_trial_failure_reopens(void **state)
{
    (void)state;
    setup_policy("consecutive", 60000, 2, PERIOD_MS);
    int64_t opened;
    open_a(&opened);
    assert_int_equal(s.stats.breaker_exclusions, 1);
    until_ms(opened + PERIOD_MS + 1);
    assert_true(breaker_allows(&s, NS, PEER_A));
    breaker_attempt(&s, NS, PEER_A);
    int64_t reopened = now_ms();
    breaker_failure(&s, NS, PEER_A);              /* the trial failed: OPEN at once */
    assert_false(breaker_allows(&s, NS, PEER_A));
    assert_string_equal(excluded(NS), PEER_A);
    assert_int_equal(s.stats.breaker_exclusions, 2);
    counts(1, 0);
    /* a full reset time again, counted from the failed trial */
    if (now_ms() - reopened < PERIOD_MS)
        assert_false(breaker_allows(&s, NS, PEER_A));
    until_ms(reopened + PERIOD_MS + 1);
    assert_true(breaker_allows(&s, NS, PEER_A));
    counts(0, 1);
}

static void test_consecutive_attempt_outside_half_open_is_no_trial(void **state)
{
    (void)state;
    setup_policy("consecutive", 60000, 2, 60000);
    breaker_attempt(&s, NS, PEER_A);  /* unknown peer */
    breaker_failure(&s, NS, PEER_A);
    breaker_attempt(&s, NS, PEER_A);  /* CLOSED: an ordinary call */
    assert_true(breaker_allows(&s, NS, PEER_A));
    breaker_failure(&s, NS, PEER_A);
    breaker_attempt(&s, NS, PEER_A);  /* OPEN: nothing changes */
    assert_false(breaker_allows(&s, NS, PEER_A));
    counts(1, 0);
}

static void test_consecutive_reset_closes_every_circuit(void **state)
{
    (void)state;
    setup_policy("consecutive", 60000, 1, 60000);
    breaker_failure(&s, NS, PEER_A);
    breaker_failure(&s, NS, PEER_B);
    counts(2, 0);
    breaker_reset(&s, NS);
    assert_true(breaker_allows(&s, NS, PEER_A));
    assert_true(breaker_allows(&s, NS, PEER_B));
    counts(0, 0);
}

static void test_consecutive_open_does_not_expire_by_cooldown(void **state)
{
    (void)state;
    /* the cooldown belongs to the reference policy: an open circuit waits for the reset time */
    setup_policy("consecutive", 0, 1, 60000);
    breaker_failure(&s, NS, PEER_A);
    assert_string_equal(excluded(NS), PEER_A);
    assert_false(breaker_allows(&s, NS, PEER_A));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_reference_failure_excludes_until_success, teardown),
        cmocka_unit_test_teardown(test_reference_policy_is_the_default, teardown),
        cmocka_unit_test_teardown(test_reference_cooldown_expires, teardown),
        cmocka_unit_test_teardown(test_reference_zero_cooldown_never_excludes, teardown),
        cmocka_unit_test_teardown(test_reset_forgets_the_namespace, teardown),
        cmocka_unit_test_teardown(test_excluded_respects_max, teardown),
        cmocka_unit_test_teardown(test_consecutive_opens_after_n_failures, teardown),
        cmocka_unit_test_teardown(test_consecutive_success_restarts_the_count, teardown),
        cmocka_unit_test_teardown(test_consecutive_half_open_one_trial_success_closes, teardown),
        cmocka_unit_test_teardown(test_consecutive_half_open_trial_failure_reopens, teardown),
        cmocka_unit_test_teardown(test_consecutive_attempt_outside_half_open_is_no_trial, teardown),
        cmocka_unit_test_teardown(test_consecutive_reset_closes_every_circuit, teardown),
        cmocka_unit_test_teardown(test_consecutive_open_does_not_expire_by_cooldown, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
