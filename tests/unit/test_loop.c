/* Unit tests for libmicro/loop.c's timers (loop_timer_t), on the libev loop the
 * binaries run and on lws's own poll() loop:
 *   - timers fire in the order of their deadlines, not of their scheduling
 *   - a timer armed earlier than one already armed fires first, also when it is
 *     armed from inside another timer's callback (lws 4.1's own timer on libev
 *     got this wrong and calls stalled ~1 s: the reason loop_timer_t exists)
 *   - a timer re-armed from inside its own callback fires again
 *   - a cancelled timer never fires; cancelling a zeroed timer is harmless;
 *     scheduling a scheduled timer moves it (earlier or later), it fires once
 *   - the as-soon-as-possible timer (1 us, 0, negative) is due at once on libev:
 *     a chain of 50 costs far less than libev's 1 ms minimum wait each
 * Each test runs a real loop with a deadline; nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "loop.h"
#include "util.h"

#define MS 1000

static struct lws_context *ctx;
static bool use_epoll;

typedef struct tt {
    loop_timer_t t;
    int          fired;
    int64_t      at_us;  /* when it last fired */
    int          rearm;  /* re-arm itself this many more times */
    int64_t      rearm_us;
} tt_t;

static int order[16];
static int norder;

static void on_fire(loop_timer_t *t)
{
    tt_t *x = lws_container_of(t, tt_t, t);
    x->fired++;
    x->at_us = now_us();
    if (x->rearm > 0) {
        x->rearm--;
        loop_timer_schedule(ctx, &x->t, on_fire, x->rearm_us);
    }
}

/* The timers of a test, so on_fire can record which one fired. */
static tt_t timers[8];

/* on_fire, and the timer's index appended to order[] */
static void on_fire_ordered(loop_timer_t *t)
{
    tt_t *x = lws_container_of(t, tt_t, t);
    if (norder < 16)
        order[norder++] = (int)(x - timers);
    on_fire(t);
}

static loop_timer_t ticker;
static void tick(loop_timer_t *t) { loop_timer_schedule(ctx, t, tick, 10 * MS); }

/* Runs the loop until *flag or ms pass (a 10 ms ticker bounds each wait). */
static int pump_until(const int *flag, int64_t ms)
{
    int64_t deadline = now_ms() + ms;
    loop_timer_schedule(ctx, &ticker, tick, 10 * MS);
    while (!*flag && now_ms() < deadline)
        loop_run_once(ctx);
    loop_timer_cancel(&ticker);
    return *flag;
}

static void pump_for(int64_t ms)
{
    static const int never = 0;
    pump_until(&never, ms);
}

static int setup(void **state)
{
    (void)state;
    memset(timers, 0, sizeof(timers));
    memset(&ticker, 0, sizeof(ticker));
    norder = 0;
    ctx = loop_create(use_epoll);
    assert_non_null(ctx);
    if (use_epoll)
        assert_non_null(loop_ev());
    else
        assert_null(loop_ev());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < 8; i++)
        loop_timer_cancel(&timers[i].t);
    loop_destroy(ctx);
    ctx = NULL;
    return 0;
}

static void test_deadline_order(void **state)
{
    (void)state;
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 60 * MS);
    loop_timer_schedule(ctx, &timers[1].t, on_fire_ordered, 20 * MS);
    loop_timer_schedule(ctx, &timers[2].t, on_fire_ordered, 40 * MS);
    assert_true(pump_until(&timers[0].fired, 2000));
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 0);
}

static void test_earlier_timer_fires_first(void **state)
{
    (void)state;
    int64_t t0 = now_us();
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 2000 * MS); /* armed first, 2 s */
    loop_timer_schedule(ctx, &timers[1].t, on_fire_ordered, 10 * MS);   /* then an earlier one */
    assert_true(pump_until(&timers[1].fired, 1500));
    assert_int_equal(timers[0].fired, 0);
    assert_true(timers[1].at_us - t0 < 500 * MS); /* not held back by the 2 s timer */
}

/* The stall: a timer armed from inside a running timer's callback, earlier than
 * the one already armed. */
static void arm_early(loop_timer_t *t)
{
    on_fire_ordered(t);
    loop_timer_schedule(ctx, &timers[2].t, on_fire_ordered, 10 * MS);
}

static void test_earlier_timer_armed_from_a_callback(void **state)
{
    (void)state;
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 2000 * MS);
    loop_timer_schedule(ctx, &timers[1].t, arm_early, 5 * MS);
    assert_true(pump_until(&timers[1].fired, 1500));
    int64_t armed = now_us();
    assert_true(pump_until(&timers[2].fired, 1500));
    assert_true(timers[2].at_us - armed < 500 * MS);
    assert_int_equal(timers[0].fired, 0);
}

static void test_rearm_from_own_callback(void **state)
{
    (void)state;
    timers[0].rearm = 4;
    timers[0].rearm_us = 5 * MS;
    /* On libev nothing else bounds the loop's waits: a re-armed timer that the
     * loop did not see would stall until the deadline. lws's poll() loop
     * computes its wait before the sul callback re-arms, and may then sleep
     * until its own next deadline (~30 s): the ticker bounds that. */
    if (!use_epoll)
        loop_timer_schedule(ctx, &ticker, tick, 10 * MS);
    int64_t t0 = now_us();
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 5 * MS);
    int64_t deadline = now_ms() + 2000;
    while (timers[0].fired < 5 && now_ms() < deadline)
        loop_run_once(ctx);
    loop_timer_cancel(&ticker);
    assert_int_equal(timers[0].fired, 5);
    assert_true(timers[0].at_us - t0 < 1000 * MS);
    pump_for(50);
    assert_int_equal(timers[0].fired, 5); /* and no more */
}

static void cancel_other(loop_timer_t *t)
{
    on_fire_ordered(t);
    loop_timer_cancel(&timers[2].t);
}

static void test_cancel(void **state)
{
    (void)state;
    loop_timer_cancel(&timers[3].t); /* zeroed, never scheduled */
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 10 * MS);
    loop_timer_cancel(&timers[0].t);
    loop_timer_cancel(&timers[0].t); /* twice */
    loop_timer_schedule(ctx, &timers[1].t, cancel_other, 10 * MS);
    loop_timer_schedule(ctx, &timers[2].t, on_fire_ordered, 40 * MS); /* cancelled by timers[1] */
    loop_timer_schedule(ctx, &timers[4].t, on_fire_ordered, 80 * MS);
    assert_true(pump_until(&timers[4].fired, 2000));
    assert_int_equal(timers[0].fired, 0);
    assert_int_equal(timers[1].fired, 1);
    assert_int_equal(timers[2].fired, 0);
    /* a cancelled timer can be scheduled again */
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 5 * MS);
    assert_true(pump_until(&timers[0].fired, 2000));
}

/* The time a delay counts from: libev measures a timer from the start of its last
 * pass (ev_now), not from the call that schedules it, so a timer scheduled a while
 * after a pass began fires that much earlier by our clock. */
static int64_t loop_now_us(void)
{
    struct ev_loop *l = loop_ev();
    int64_t now = now_us();
    return l ? now - (int64_t)((ev_time() - ev_now(l)) * 1e6) : now;
}

static void test_reschedule_moves(void **state)
{
    (void)state;
    int64_t t0 = loop_now_us();
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 10 * MS);
    loop_timer_schedule(ctx, &timers[0].t, on_fire_ordered, 100 * MS); /* later */
    assert_true(pump_until(&timers[0].fired, 2000));
    assert_true(timers[0].at_us - t0 >= 100 * MS);
    pump_for(30);
    assert_int_equal(timers[0].fired, 1);

    t0 = now_us();
    loop_timer_schedule(ctx, &timers[1].t, on_fire_ordered, 2000 * MS);
    loop_timer_schedule(ctx, &timers[1].t, on_fire_ordered, 10 * MS); /* earlier */
    assert_true(pump_until(&timers[1].fired, 1500));
    assert_true(timers[1].at_us - t0 < 500 * MS);
    pump_for(30);
    assert_int_equal(timers[1].fired, 1);
}

static void test_asap_is_due_at_once(void **state)
{
    (void)state;
    /* 0 and negative delays mean as soon as possible too */
    loop_timer_schedule(ctx, &timers[1].t, on_fire_ordered, 0);
    loop_timer_schedule(ctx, &timers[2].t, on_fire_ordered, -5);
    assert_true(pump_until(&timers[2].fired, 1000));
    assert_true(pump_until(&timers[1].fired, 1000));
    if (!use_epoll)
        return; /* lws's poll() loop has its own granularity */
    /* a chain of 50: each re-arms itself as soon as possible. At libev's 1 ms
     * minimum wait per timer this takes >= 50 ms; due at once it takes ~nothing. */
    timers[0].rearm = 49;
    timers[0].rearm_us = 1;
    int64_t t0 = now_us();
    loop_timer_schedule(ctx, &timers[0].t, on_fire, 1);
    int64_t deadline = now_ms() + 2000;
    while (timers[0].fired < 50 && now_ms() < deadline)
        loop_run_once(ctx);
    int64_t took = now_us() - t0;
    assert_int_equal(timers[0].fired, 50);
    if (took >= 25 * MS)
        fail_msg("50 as-soon-as-possible timers took %lld us", (long long)took);
}

static int use_libev(void **state)
{
    (void)state;
    use_epoll = true;
    return 0;
}

static int use_poll(void **state)
{
    (void)state;
    use_epoll = false;
    return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_deadline_order),
        T(test_earlier_timer_fires_first),
        T(test_earlier_timer_armed_from_a_callback),
        T(test_rearm_from_own_callback),
        T(test_cancel),
        T(test_reschedule_moves),
        T(test_asap_is_due_at_once),
    };
    int failed = cmocka_run_group_tests_name("libev", tests, use_libev, NULL);
    failed += cmocka_run_group_tests_name("poll", tests, use_poll, NULL);
    return failed;
}
