/* Unit tests for sidecar/call.c, the parts that run without a network:
 *   - call_http_status: every CALL_E_* and the pass-through of a peer's status
 *   - bad arguments: NULL, and the callback never runs
 *   - an outcome is never delivered from inside call_start, only by
 *     call_deliver_ripe, in the order the calls finished
 *   - the local limits: --max-inflight, --namespace-concurrency (with the whole
 *     namespace in the message), the outbound rate limit (429 + retry_after),
 *     a payload too large for a frame
 *   - with the registry down: 503 "no instance" after the breaker reset; retries
 *     on the loop's backoff timer; call_abort_all during a backoff; call_detach
 * The sidecar_t is bare (no registry, no peers); the loop is a real libev loop.
 * sidecar_kick lives in main.c: here it only counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "sidecar.h"
#include "util.h"

static sidecar_t s;
static int kicks;

void sidecar_kick(sidecar_t *sc)
{
    assert_ptr_equal(sc, &s);
    kicks++;
}

typedef struct outcome {
    int    calls;
    int    status;
    int    order; /* 1 = first outcome delivered in the test */
    char   message[1024];
    char   cid[128];
    double retry_after;
} outcome_t;

static int delivered;

static void on_done(void *arg, const call_result_t *r)
{
    outcome_t *o = arg;
    o->calls++;
    o->order = ++delivered;
    o->status = r->status;
    snprintf(o->message, sizeof(o->message), "%s", r->message ? r->message : "");
    snprintf(o->cid, sizeof(o->cid), "%s", r->cid ? r->cid : "");
    o->retry_after = r->retry_after;
}

/* A ticker keeps every wait of the loop short, so a deadline holds. */
static loop_timer_t ticker;
static void tick(loop_timer_t *t) { loop_timer_schedule(s.ctx, t, tick, 10000); }

/* Runs the loop, delivering ripe calls after every pass as main.c does, until
 * *flag is non-zero or ms pass. */
static int pump_until(const int *flag, int64_t ms)
{
    int64_t deadline = now_ms() + ms;
    loop_timer_schedule(s.ctx, &ticker, tick, 10000);
    while (!*flag && now_ms() < deadline) {
        loop_run_once(s.ctx);
        call_deliver_ripe();
    }
    loop_timer_cancel(&ticker);
    return *flag;
}

static int group_setup(void **state)
{
    (void)state;
    s.ctx = loop_create(true);
    assert_non_null(s.ctx);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    loop_destroy(s.ctx);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    struct lws_context *ctx = s.ctx;
    memset(&s, 0, sizeof(s));
    s.ctx = ctx;
    s.cfg.request_timeout_ms = 1000;
    s.cfg.lookup_timeout_ms = 1000;
    s.cfg.max_frame_bytes = 1 << 20;
    s.cfg.breaker_policy = "reference";
    s.cfg.breaker_cooldown_ms = 30000;
    s.cfg.breaker_failures = 5;
    s.cfg.breaker_reset_ms = 60000;
    snprintf(s.self_key, sizeof(s.self_key), "127.0.0.1:9100");
    hmap_init(&s.peers);
    hmap_init(&s.cache);
    hmap_init(&s.breakers);
    hmap_init(&s.nsstate);
    kicks = 0;
    delivered = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    call_deliver_ripe();
    assert_int_equal(s.calls_inflight, 0); /* every call was freed */
    call_free_state(&s);
    disc_free(&s);
    breaker_free(&s);
    hmap_free(&s.peers);
    return 0;
}

static call_opts_t opts(const char *ns, const char *url)
{
    call_opts_t o = {.ns = ns, .url = url, .payload = "{\"a\":1}", .payload_len = 7,
                     .payload_type = JT_OBJECT, .ix_slot = JIX_NONE};
    return o;
}

static void test_http_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(call_http_status(CALL_OK), 200);
    assert_int_equal(call_http_status(CALL_E_NO_INSTANCE), 503);
    assert_int_equal(call_http_status(CALL_E_UNREACHABLE), 502);
    assert_int_equal(call_http_status(CALL_E_RESOLVE), 502);
    assert_int_equal(call_http_status(CALL_E_TIMEOUT), 504);
    assert_int_equal(call_http_status(CALL_E_SHUTDOWN), 503);
    assert_int_equal(call_http_status(CALL_E_OVERLOAD), 503);
    assert_int_equal(call_http_status(CALL_E_PEER), 502);
    assert_int_equal(call_http_status(CALL_E_RATE_LIMITED), 429);
    assert_int_equal(call_http_status(CALL_E_CIRCUIT_OPEN), 503);
    /* a peer's own HTTP error status passes through */
    for (int st = 400; st <= 599; st++)
        assert_int_equal(call_http_status(st), st);
    /* anything else a peer may send is a bad gateway */
    const int other[] = {0, 1, 100, 201, 204, 302, 399, 600, 1000, -1, -9, -19, -100, 65536};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        if (call_http_status(other[i]) != 502)
            fail_msg("status %d maps to %d", other[i], call_http_status(other[i]));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    outcome_t o = {0};
    char longns[ADDR_NS_MAX + 1];
    memset(longns, 'n', sizeof(longns) - 1);
    longns[ADDR_NS_MAX] = '\0';
    call_opts_t bad[8];
    bad[0] = opts(NULL, "/a");
    bad[1] = opts("", "/a");
    bad[2] = opts(longns, "/a");
    bad[3] = opts("ns", NULL);
    bad[4] = opts("ns", "a");
    bad[5] = opts("ns", "/a\r\nX: y");
    bad[6] = opts("ns", "/a");
    bad[6].retries = -1;
    bad[7] = opts("ns", "/a");
    bad[7].retries = CALL_RETRIES_MAX + 1;
    for (size_t i = 0; i < 8; i++)
        if (call_start(&s, &bad[i], on_done, &o))
            fail_msg("bad call %zu was started", i);
    assert_int_equal(s.calls_inflight, 0);
    assert_false(call_deliver_ripe());
    assert_int_equal(o.calls, 0);
    assert_int_equal(kicks, 0);
}

static void test_registry_down_is_no_instance_delivered_later(void **state)
{
    (void)state;
    outcome_t o = {0};
    call_opts_t co = opts("payments", "/charge");
    co.cid = "cid-1";
    assert_non_null(call_start(&s, &co, on_done, &o));
    assert_int_equal(o.calls, 0);   /* never from inside call_start */
    assert_true(kicks > 0);         /* the end of the pass was asked for */
    assert_int_equal(s.calls_inflight, 1);
    assert_true(call_deliver_ripe());
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, CALL_E_NO_INSTANCE);
    assert_int_equal(call_http_status(o.status), 503);
    assert_string_equal(o.message, "no instance of the namespace is available");
    assert_string_equal(o.cid, "cid-1");
    /* one lookup, then the all-excluded reset and one more */
    assert_int_equal(s.stats.finds, 2);
    assert_int_equal(s.stats.calls, 1);
    assert_int_equal(s.stats.calls_failed, 1);
    assert_int_equal(s.calls_inflight, 0);
    assert_false(call_deliver_ripe()); /* exactly once */
    assert_int_equal(o.calls, 1);
}

static void test_a_cid_is_made_when_none_is_given(void **state)
{
    (void)state;
    outcome_t a = {0}, b = {0};
    call_opts_t co = opts("payments", "/charge");
    call_start(&s, &co, on_done, &a);
    call_start(&s, &co, on_done, &b);
    call_deliver_ripe();
    assert_true(strlen(a.cid) > 0);
    assert_true(strlen(b.cid) > 0);
    assert_string_not_equal(a.cid, b.cid);
}

static void test_max_inflight_in_order(void **state)
{
    (void)state;
    s.cfg.max_inflight = 2;
    outcome_t o[4] = {{0}};
    call_opts_t co = opts("payments", "/charge");
    for (int i = 0; i < 4; i++)
        assert_non_null(call_start(&s, &co, on_done, &o[i]));
    assert_int_equal(delivered, 0);
    call_deliver_ripe();
    for (int i = 0; i < 4; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].order, i + 1); /* in the order they finished */
    }
    assert_int_equal(o[0].status, CALL_E_NO_INSTANCE);
    assert_int_equal(o[1].status, CALL_E_NO_INSTANCE);
    assert_int_equal(o[2].status, CALL_E_OVERLOAD);
    assert_string_equal(o[2].message, "too many calls in flight");
    assert_int_equal(o[3].status, CALL_E_OVERLOAD);
    assert_int_equal(s.stats.concurrency_limited, 2);
}

static void test_namespace_concurrency_names_the_whole_namespace(void **state)
{
    (void)state;
    s.cfg.namespace_concurrency = 1;
    char ns[ADDR_NS_MAX];
    memset(ns, 'n', sizeof(ns) - 1); /* the longest namespace there is */
    ns[ADDR_NS_MAX - 1] = '\0';
    outcome_t a = {0}, b = {0}, c = {0};
    call_opts_t co = opts(ns, "/x");
    call_start(&s, &co, on_done, &a);
    call_start(&s, &co, on_done, &b);
    call_opts_t other = opts("other", "/x"); /* another namespace has its own count */
    call_start(&s, &other, on_done, &c);
    call_deliver_ripe();
    assert_int_equal(a.status, CALL_E_NO_INSTANCE);
    assert_int_equal(b.status, CALL_E_OVERLOAD);
    assert_int_equal(c.status, CALL_E_NO_INSTANCE);
    char want[1024];
    snprintf(want, sizeof(want), "more than 1 calls in flight to %s", ns);
    assert_string_equal(b.message, want); /* not cut */
}

static void test_outbound_rate_limit(void **state)
{
    (void)state;
    s.cfg.outbound_rps = 1;
    s.cfg.outbound_burst = 1;
    outcome_t a = {0}, b = {0};
    call_opts_t co = opts("payments", "/charge");
    call_start(&s, &co, on_done, &a);
    call_start(&s, &co, on_done, &b);
    call_deliver_ripe();
    assert_int_equal(a.status, CALL_E_NO_INSTANCE);
    assert_int_equal(b.status, CALL_E_RATE_LIMITED);
    assert_int_equal(call_http_status(b.status), 429);
    assert_true(b.retry_after > 0 && b.retry_after <= 1.0);
    assert_string_equal(b.message, "outbound rate limit for payments exceeded (1/s)");
    assert_int_equal(s.stats.rate_limited_out, 1);
}

static void test_payload_too_large(void **state)
{
    (void)state;
    s.cfg.max_frame_bytes = 64;
    static char big[200];
    memset(big, 'x', sizeof(big));
    big[0] = '"';
    big[sizeof(big) - 1] = '"';
    outcome_t o = {0};
    call_opts_t co = opts("payments", "/charge");
    co.payload = big;
    co.payload_len = sizeof(big);
    co.payload_type = JT_STRING;
    call_start(&s, &co, on_done, &o);
    call_deliver_ripe();
    assert_int_equal(o.status, CALL_E_OVERLOAD);
    assert_string_equal(o.message, "payload too large");
    assert_int_equal(s.stats.finds, 0); /* never looked for a peer */
}

static void test_retries_back_off_on_the_loop(void **state)
{
    (void)state;
    outcome_t o = {0};
    call_opts_t co = opts("payments", "/charge");
    co.retries = 3;
    int64_t t0 = now_us();
    call_start(&s, &co, on_done, &o);
    assert_false(call_deliver_ripe()); /* failed once, waiting for the retry */
    assert_int_equal(s.stats.retries, 1);
    assert_true(pump_until(&o.calls, 5000));
    int64_t took = now_us() - t0;
    assert_int_equal(o.status, CALL_E_NO_INSTANCE);
    assert_int_equal(s.stats.retries, 3);
    assert_int_equal(s.stats.finds, 8); /* 4 attempts, each with its reset */
    /* backoff: at least 5 + 10 + 20 ms (half of 10, 20, 40 ms), at most ~1.2 s */
    assert_true(took >= 35000);
    assert_true(took < 2000000);
}

static void test_abort_all_during_backoff(void **state)
{
    (void)state;
    outcome_t o = {0};
    call_opts_t co = opts("payments", "/charge");
    co.retries = 5;
    call_start(&s, &co, on_done, &o);
    assert_false(call_deliver_ripe());
    call_abort_all(&s);
    assert_int_equal(o.calls, 0); /* delivered at the end of the pass, too */
    assert_true(call_deliver_ripe());
    assert_int_equal(o.status, CALL_E_SHUTDOWN);
    assert_string_equal(o.message, "the sidecar is shutting down");
    /* the backoff timer was cancelled: no further attempt */
    static const int never = 0;
    pump_until(&never, 300);
    assert_int_equal(s.stats.retries, 1);
    assert_int_equal(o.calls, 1);
}

static void test_detach_never_calls_back(void **state)
{
    (void)state;
    outcome_t o = {0};
    call_opts_t co = opts("payments", "/charge");
    co.retries = 5;
    call_t *c = call_start(&s, &co, on_done, &o);
    call_detach(c); /* in its backoff */
    call_deliver_ripe();
    assert_int_equal(s.calls_inflight, 0);
    outcome_t p = {0};
    c = call_start(&s, &co, on_done, &p);
    call_detach(c);
    call_deliver_ripe();
    static const int never = 0;
    pump_until(&never, 100);
    assert_int_equal(o.calls, 0);
    assert_int_equal(p.calls, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_http_status_mapping),
        T(test_bad_arguments),
        T(test_registry_down_is_no_instance_delivered_later),
        T(test_a_cid_is_made_when_none_is_given),
        T(test_max_inflight_in_order),
        T(test_namespace_concurrency_names_the_whole_namespace),
        T(test_outbound_rate_limit),
        T(test_payload_too_large),
        T(test_retries_back_off_on_the_loop),
        T(test_abort_all_during_backoff),
        T(test_detach_never_calls_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
