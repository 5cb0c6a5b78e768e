/* Unit tests for libmicro/resolve.c on a real loop (libev, as the binaries run
 * it, and lws's poll() loop): numeric hosts, answers handed back through the
 * wake-up, one job for concurrent lookups of a name, the positive and negative
 * cache, the deadline with a thread that never comes back (and its late
 * answer dropped), the per-lane queue bound and the reserved lane, cancel, and
 * freeing with a thread still stuck. The resolve function is a fake that
 * decides by the name's prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"
#include "resolve.h"
#include "util.h"

static struct lws_context *ctx;

/* ---- the fake resolver (runs on resolver threads) ---- */

static atomic_int calls;        /* fake_resolve entered */
static atomic_int returned;     /* fake_resolve left */
static atomic_int release_hang; /* "hang-*" names return once set */

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ok-* answer at once, slow-* after 50 ms, nx-* have no address, hang-* wait
 * until release_hang (at most 5 s); the address's last byte is the call number. */
static int fake_resolve(void *arg, const char *host, resolve_addrs_t *out)
{
    (void)arg;
    int n = atomic_fetch_add(&calls, 1) + 1;
    int rc = RESOLVE_OK;
    if (!strncmp(host, "slow-", 5)) {
        nap_ms(50);
    } else if (!strncmp(host, "hang-", 5)) {
        for (int i = 0; i < 5000 && !atomic_load(&release_hang); i++)
            nap_ms(1);
    } else if (!strncmp(host, "nx-", 3)) {
        rc = RESOLVE_E_NOTFOUND;
    }
    if (!rc) {
        out->n = 2;
        snprintf(out->addr[0], sizeof(out->addr[0]), "10.0.0.%d", n % 250);
        snprintf(out->addr[1], sizeof(out->addr[1]), "fd00::%d", n % 250);
    }
    atomic_fetch_add(&returned, 1);
    return rc;
}

/* ---- callbacks ---- */

typedef struct got {
    int  n;       /* callbacks run */
    int  err;
    char addr[RESOLVE_ADDR_MAX];
    int64_t at_ms;
} got_t;

static void on_done(void *arg, int err, const resolve_addrs_t *a)
{
    got_t *g = arg;
    g->n++;
    g->err = err;
    g->at_ms = now_ms();
    if (!err) {
        assert_non_null(a);
        assert_true(a->n >= 1);
        snprintf(g->addr, sizeof(g->addr), "%s", a->addr[0]);
    }
}

/* ---- the loop ---- */

static loop_timer_t ticker;
static void on_tick(loop_timer_t *t) { loop_timer_schedule(ctx, t, on_tick, 10 * LWS_US_PER_MS); }

/* Runs the loop until *flag is non-zero or ms pass; returns the flag. */
static int run_until(const int *flag, int ms)
{
    int64_t end = now_ms() + ms;
    loop_timer_schedule(ctx, &ticker, on_tick, 10 * LWS_US_PER_MS);
    while (!*flag && now_ms() < end)
        loop_run_once(ctx);
    loop_timer_cancel(&ticker);
    return *flag;
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, ms);
}

static int setup_ev(void **state)
{
    (void)state;
    ctx = loop_create(true);
    assert_non_null(ctx);
    assert_non_null(loop_ev());
    atomic_store(&calls, 0);
    atomic_store(&returned, 0);
    atomic_store(&release_hang, 0);
    return 0;
}

static int setup_poll(void **state)
{
    (void)state;
    ctx = loop_create(false);
    assert_non_null(ctx);
    assert_null(loop_ev());
    atomic_store(&calls, 0);
    atomic_store(&returned, 0);
    atomic_store(&release_hang, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* no fake may still be running when the next test resets the counters */
    atomic_store(&release_hang, 1);
    for (int i = 0; i < 2000 && atomic_load(&returned) < atomic_load(&calls); i++)
        nap_ms(1);
    loop_destroy(ctx);
    ctx = NULL;
    return 0;
}

static resolver_t *make(int peer_threads, size_t qpeer, int64_t timeout_ms, int64_t cache_ms, int64_t neg_ms)
{
    resolver_opts_t o;
    resolver_opts_default(&o);
    o.peer_threads = peer_threads;
    o.reserved_threads = 1;
    o.max_queue[RESOLVE_LANE_PEER] = qpeer;
    o.timeout_ms = timeout_ms;
    o.cache_ms = cache_ms;
    o.neg_cache_ms = neg_ms;
    o.fn = fake_resolve;
    resolver_t *r = resolver_new(ctx, &o);
    assert_non_null(r);
    return r;
}

/* ---- tests ---- */

static void test_numeric_hosts_never_reach_a_thread(void **state)
{
    (void)state;
    resolver_t *r = make(1, 8, 1000, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w = {0};
    got_t g = {0};
    const char *in[] = {"127.0.0.1", "10.1.2.3", "::1", "[::1]", "[2001:db8::7]", "fe80::1"};
    const char *want[] = {"127.0.0.1", "10.1.2.3", "::1", "::1", "2001:db8::7", "fe80::1"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        memset(&a, 0, sizeof(a));
        assert_int_equal(resolver_lookup(r, in[i], RESOLVE_LANE_PEER, &a, &w, on_done, &g), 1);
        assert_int_equal(a.n, 1);
        assert_string_equal(a.addr[0], want[i]);
    }
    assert_int_equal(resolver_stats(r)->numeric, 6);
    assert_int_equal(resolver_pending(r), 0);
    assert_int_equal(atomic_load(&calls), 0);
    assert_int_equal(g.n, 0);
    /* not numeric: a bracketed IPv4, brackets around a name, an unclosed bracket */
    char out[RESOLVE_ADDR_MAX];
    assert_false(resolve_numeric("[127.0.0.1]", out, sizeof(out)));
    assert_false(resolve_numeric("[example.com]", out, sizeof(out)));
    assert_false(resolve_numeric("[::1", out, sizeof(out)));
    assert_false(resolve_numeric("example.com", out, sizeof(out)));
    assert_false(resolve_numeric("", out, sizeof(out)));
    assert_true(resolve_numeric("[::ffff:1.2.3.4]", out, sizeof(out)));
    assert_string_equal(out, "::ffff:1.2.3.4");
    /* empty and too long names fail at once */
    char longname[RESOLVE_HOST_MAX + 10];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(resolver_lookup(r, "", RESOLVE_LANE_PEER, &a, &w, on_done, &g), RESOLVE_E_NAME);
    assert_int_equal(resolver_lookup(r, longname, RESOLVE_LANE_PEER, &a, &w, on_done, &g), RESOLVE_E_NAME);
    resolver_free(r);
    assert_int_equal(g.n, 0);
}

static void test_answer_comes_back_on_the_loop(void **state)
{
    (void)state;
    resolver_t *r = make(2, 8, 2000, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w = {0};
    got_t g = {0};
    assert_int_equal(resolver_lookup(r, "ok-a", RESOLVE_LANE_PEER, &a, &w, on_done, &g), 0);
    assert_int_equal(g.n, 0); /* never from inside resolver_lookup */
    assert_int_equal(resolver_pending(r), 1);
    assert_true(run_until(&g.n, 2000));
    assert_int_equal(g.n, 1);
    assert_int_equal(g.err, 0);
    assert_string_equal(g.addr, "10.0.0.1");
    assert_int_equal(resolver_pending(r), 0);
    run_for(30);
    assert_int_equal(g.n, 1); /* exactly once */
    resolver_free(r);
}

static void test_concurrent_lookups_share_one_job(void **state)
{
    (void)state;
    resolver_t *r = make(4, 8, 2000, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w[3] = {{0}};
    got_t g[3] = {{0}};
    assert_int_equal(resolver_lookup(r, "slow-x", RESOLVE_LANE_PEER, &a, &w[0], on_done, &g[0]), 0);
    assert_int_equal(resolver_lookup(r, "slow-x", RESOLVE_LANE_PEER, &a, &w[1], on_done, &g[1]), 0);
    assert_int_equal(resolver_lookup(r, "SLOW-X", RESOLVE_LANE_PEER, &a, &w[2], on_done, &g[2]), 0);
    assert_int_equal(resolver_pending(r), 1);
    assert_true(run_until(&g[2].n, 2000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].n, 1);
        assert_int_equal(g[i].err, 0);
        assert_string_equal(g[i].addr, "10.0.0.1");
    }
    assert_int_equal(atomic_load(&calls), 1);
    assert_int_equal(resolver_stats(r)->shared, 2);
    assert_int_equal(resolver_stats(r)->jobs, 1);
    resolver_free(r);
}

static void test_answers_and_failures_are_cached_briefly(void **state)
{
    (void)state;
    resolver_t *r = make(2, 8, 2000, 150, 150);
    resolve_addrs_t a;
    resolve_waiter_t w = {0};
    got_t g = {0};
    assert_int_equal(resolver_lookup(r, "ok-c", RESOLVE_LANE_PEER, &a, &w, on_done, &g), 0);
    assert_true(run_until(&g.n, 2000));
    /* the cache answers at once, on either lane, without a thread */
    memset(&a, 0, sizeof(a));
    assert_int_equal(resolver_lookup(r, "ok-c", RESOLVE_LANE_PEER, &a, &w, on_done, &g), 1);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.addr[0], "10.0.0.1");
    assert_string_equal(a.addr[1], "fd00::1");
    assert_int_equal(resolver_lookup(r, "OK-C", RESOLVE_LANE_RESERVED, &a, &w, on_done, &g), 1);
    assert_int_equal(atomic_load(&calls), 1);
    /* a failure too */
    got_t gn = {0};
    assert_int_equal(resolver_lookup(r, "nx-c", RESOLVE_LANE_PEER, &a, &w, on_done, &gn), 0);
    assert_true(run_until(&gn.n, 2000));
    assert_int_equal(gn.err, RESOLVE_E_NOTFOUND);
    assert_int_equal(resolver_lookup(r, "nx-c", RESOLVE_LANE_PEER, &a, &w, on_done, &gn), RESOLVE_E_NOTFOUND);
    assert_int_equal(atomic_load(&calls), 2);
    assert_int_equal(resolver_stats(r)->cache_hits, 3);
    /* after the TTL both are asked again */
    run_for(200);
    got_t g2 = {0};
    assert_int_equal(resolver_lookup(r, "ok-c", RESOLVE_LANE_PEER, &a, &w, on_done, &g2), 0);
    assert_true(run_until(&g2.n, 2000));
    assert_string_equal(g2.addr, "10.0.0.3");
    assert_int_equal(resolver_lookup(r, "nx-c", RESOLVE_LANE_PEER, &a, &w, on_done, &gn), 0);
    resolver_free(r);
}

static void test_cache_off(void **state)
{
    (void)state;
    resolver_t *r = make(2, 8, 2000, 0, 0);
    resolve_addrs_t a;
    resolve_waiter_t w = {0};
    got_t g = {0}, g2 = {0};
    assert_int_equal(resolver_lookup(r, "ok-d", RESOLVE_LANE_PEER, &a, &w, on_done, &g), 0);
    assert_true(run_until(&g.n, 2000));
    assert_int_equal(resolver_lookup(r, "ok-d", RESOLVE_LANE_PEER, &a, &w, on_done, &g2), 0);
    assert_true(run_until(&g2.n, 2000));
    assert_int_equal(atomic_load(&calls), 2);
    resolver_free(r);
}

static void test_deadline_fails_a_stuck_lookup_and_drops_the_late_answer(void **state)
{
    (void)state;
    resolver_t *r = make(1, 8, 100, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w = {0};
    got_t g = {0};
    /* libev measures timers from the time its last pass began: a pass first, so
     * that is now and not the loop's creation */
    run_for(1);
    int64_t t0 = now_ms();
    assert_int_equal(resolver_lookup(r, "hang-a", RESOLVE_LANE_PEER, &a, &w, on_done, &g), 0);
    assert_true(run_until(&g.n, 3000));
    int64_t took = g.at_ms - t0;
    assert_int_equal(g.err, RESOLVE_E_TIMEOUT);
    assert_true(took >= 95 && took < 1000);
    assert_int_equal(resolver_pending(r), 0);
    assert_int_equal(resolver_stats(r)->timeouts, 1);
    /* the timeout is a cached failure: a retry fails at once instead of waiting again */
    assert_int_equal(resolver_lookup(r, "hang-a", RESOLVE_LANE_PEER, &a, &w, on_done, &g), RESOLVE_E_TIMEOUT);
    /* the thread comes back later: its answer is dropped, nobody is called again */
    atomic_store(&release_hang, 1);
    int64_t end = now_ms() + 2000;
    while (resolver_stats(r)->late < 1 && now_ms() < end)
        run_for(10);
    assert_int_equal(resolver_stats(r)->late, 1);
    assert_int_equal(g.n, 1);
    resolver_free(r);
}

static void test_queue_is_bounded_and_the_reserved_lane_is_not_starved(void **state)
{
    (void)state;
    resolver_t *r = make(1, 2, 3000, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w[5] = {{0}};
    got_t g[5] = {{0}};
    /* one on the only peer thread (stuck), two queued behind it, the next refused */
    assert_int_equal(resolver_lookup(r, "hang-1", RESOLVE_LANE_PEER, &a, &w[0], on_done, &g[0]), 0);
    int64_t end = now_ms() + 2000;
    while (atomic_load(&calls) < 1 && now_ms() < end)
        run_for(5);
    assert_int_equal(atomic_load(&calls), 1);
    assert_int_equal(resolver_lookup(r, "hang-2", RESOLVE_LANE_PEER, &a, &w[1], on_done, &g[1]), 0);
    assert_int_equal(resolver_lookup(r, "hang-3", RESOLVE_LANE_PEER, &a, &w[2], on_done, &g[2]), 0);
    assert_int_equal(resolver_lookup(r, "hang-4", RESOLVE_LANE_PEER, &a, &w[3], on_done, &g[3]), RESOLVE_E_BUSY);
    assert_int_equal(resolver_stats(r)->busy, 1);
    /* the reserved lane answers meanwhile, at once */
    int64_t t0 = now_ms();
    assert_int_equal(resolver_lookup(r, "ok-registry", RESOLVE_LANE_RESERVED, &a, &w[4], on_done, &g[4]), 0);
    assert_true(run_until(&g[4].n, 2000));
    assert_int_equal(g[4].err, 0);
    assert_true(now_ms() - t0 < 500);
    assert_int_equal(g[0].n + g[1].n + g[2].n, 0);
    assert_int_equal(resolver_pending(r), 3);
    /* a queued job whose lookup is cancelled still counts until its deadline;
     * freeing fails the rest */
    resolver_cancel(r, &w[2]);
    resolver_free(r);
    assert_int_equal(g[0].n, 1);
    assert_int_equal(g[0].err, RESOLVE_E_CLOSED);
    assert_int_equal(g[1].err, RESOLVE_E_CLOSED);
    assert_int_equal(g[2].n, 0);
}

static void test_queued_jobs_leave_the_queue_at_their_deadline(void **state)
{
    (void)state;
    resolver_t *r = make(1, 1, 100, 0, 0);
    resolve_addrs_t a;
    resolve_waiter_t w[3] = {{0}};
    got_t g[3] = {{0}};
    assert_int_equal(resolver_lookup(r, "hang-q1", RESOLVE_LANE_PEER, &a, &w[0], on_done, &g[0]), 0);
    int64_t end = now_ms() + 2000;
    while (atomic_load(&calls) < 1 && now_ms() < end)
        run_for(5);
    assert_int_equal(resolver_lookup(r, "hang-q2", RESOLVE_LANE_PEER, &a, &w[1], on_done, &g[1]), 0);
    assert_true(run_until(&g[1].n, 2000));
    assert_int_equal(g[1].err, RESOLVE_E_TIMEOUT);
    /* its queue slot is free again although the thread is still stuck */
    assert_int_equal(resolver_lookup(r, "hang-q3", RESOLVE_LANE_PEER, &a, &w[2], on_done, &g[2]), 0);
    assert_int_equal(atomic_load(&calls), 1);
    resolver_free(r);
}

static void test_cancel(void **state)
{
    (void)state;
    resolver_t *r = make(2, 8, 2000, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w[2] = {{0}};
    got_t g[2] = {{0}};
    assert_int_equal(resolver_lookup(r, "slow-c", RESOLVE_LANE_PEER, &a, &w[0], on_done, &g[0]), 0);
    assert_int_equal(resolver_lookup(r, "slow-c", RESOLVE_LANE_PEER, &a, &w[1], on_done, &g[1]), 0);
    resolver_cancel(r, &w[0]);
    resolver_cancel(r, &w[0]); /* twice is fine */
    assert_true(run_until(&g[1].n, 2000));
    assert_int_equal(g[0].n, 0);
    assert_int_equal(g[1].err, 0);
    /* the answer was cached although one waiter left */
    assert_int_equal(resolver_lookup(r, "slow-c", RESOLVE_LANE_PEER, &a, &w[0], on_done, &g[0]), 1);
    resolver_free(r);
}

/* A callback that cancels the other waiter of the same lookup. */
static resolve_waiter_t *victim;
static resolver_t *cur;
static void cancel_other(void *arg, int err, const resolve_addrs_t *a)
{
    on_done(arg, err, a);
    resolver_cancel(cur, victim);
}

static void test_callback_may_cancel_a_sibling(void **state)
{
    (void)state;
    resolver_t *r = cur = make(2, 8, 2000, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w[2] = {{0}};
    got_t g[2] = {{0}};
    victim = &w[1];
    assert_int_equal(resolver_lookup(r, "ok-s", RESOLVE_LANE_PEER, &a, &w[0], cancel_other, &g[0]), 0);
    assert_int_equal(resolver_lookup(r, "ok-s", RESOLVE_LANE_PEER, &a, &w[1], on_done, &g[1]), 0);
    assert_true(run_until(&g[0].n, 2000));
    run_for(20);
    assert_int_equal(g[0].n, 1);
    assert_int_equal(g[1].n, 0);
    resolver_free(r);
}

static void test_free_does_not_wait_for_a_stuck_thread(void **state)
{
    (void)state;
    resolver_t *r = make(1, 8, 5000, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w = {0};
    got_t g = {0};
    assert_int_equal(resolver_lookup(r, "hang-f", RESOLVE_LANE_PEER, &a, &w, on_done, &g), 0);
    int64_t end = now_ms() + 2000;
    while (atomic_load(&calls) < 1 && now_ms() < end)
        run_for(5);
    int64_t t0 = now_ms();
    resolver_free(r);
    assert_true(now_ms() - t0 < 500);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.err, RESOLVE_E_CLOSED);
    /* the detached thread finishes on its own and frees what it shares */
    atomic_store(&release_hang, 1);
    end = now_ms() + 2000;
    while (atomic_load(&returned) < 1 && now_ms() < end)
        nap_ms(1);
    assert_int_equal(atomic_load(&returned), 1);
}

static void test_poll_loop(void **state)
{
    (void)state;
    resolver_t *r = make(1, 8, 100, 1000, 1000);
    resolve_addrs_t a;
    resolve_waiter_t w[2] = {{0}};
    got_t g[2] = {{0}};
    assert_int_equal(resolver_lookup(r, "ok-p", RESOLVE_LANE_PEER, &a, &w[0], on_done, &g[0]), 0);
    assert_true(run_until(&g[0].n, 2000));
    assert_int_equal(g[0].err, 0);
    assert_int_equal(resolver_lookup(r, "hang-p", RESOLVE_LANE_PEER, &a, &w[1], on_done, &g[1]), 0);
    assert_true(run_until(&g[1].n, 2000));
    assert_int_equal(g[1].err, RESOLVE_E_TIMEOUT);
    resolver_free(r);
}

static void test_getaddrinfo_on_names_that_need_no_dns(void **state)
{
    (void)state;
    resolve_addrs_t a;
    memset(&a, 0, sizeof(a));
    /* getaddrinfo's numeric forms that inet_pton refuses still come back numeric */
    assert_int_equal(resolve_getaddrinfo(NULL, "127.1", &a), RESOLVE_OK);
    assert_string_equal(a.addr[0], "127.0.0.1");
    assert_string_equal(resolve_strerror(RESOLVE_E_TIMEOUT), "DNS lookup timed out");
}

int main(void)
{
    lws_set_log_level(LLL_ERR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_numeric_hosts_never_reach_a_thread, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_answer_comes_back_on_the_loop, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_lookups_share_one_job, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_answers_and_failures_are_cached_briefly, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_cache_off, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_fails_a_stuck_lookup_and_drops_the_late_answer, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_queue_is_bounded_and_the_reserved_lane_is_not_starved, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_queued_jobs_leave_the_queue_at_their_deadline, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_callback_may_cancel_a_sibling, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_free_does_not_wait_for_a_stuck_thread, setup_ev, teardown),
        cmocka_unit_test_setup_teardown(test_poll_loop, setup_poll, teardown),
        cmocka_unit_test_setup_teardown(test_getaddrinfo_on_names_that_need_no_dns, setup_ev, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
