/* Unit tests for libmicro/modem.c on a real lws context (its timers are lws
 * loop timers): id numbering, request/response matching, late responses,
 * timeouts with ABORT, cancel, close, limits, send failures, pushes and the
 * response encoders. Frames go to a fake sender that records them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem.h"
#include "util.h"

static struct lws_context *ctx;

/* ---- the fake sender ---- */

#define MAX_SENT 64
static char  *sent[MAX_SENT];
static size_t nsent;
static int    send_rc;     /* what the sender returns */
static int    send_steal;  /* take the buffer (as the real queue does) */
static void  *send_owner;

static int fake_send(void *owner, sbuf_t *frame)
{
    send_owner = owner;
    assert_int_equal(frame->head, WSMSG_HEADROOM);
    assert_int_equal(frame->err, 0);
    if (send_rc)
        return send_rc;
    assert_true(nsent < MAX_SENT);
    size_t len = frame->len;
    char *copy = malloc(len + 1);
    if (send_steal) {
        char *p = sbuf_steal(frame);
        memcpy(copy, p + WSMSG_HEADROOM, len);
        free(p);
    } else {
        memcpy(copy, sbuf_data(frame), len);
    }
    copy[len] = '\0';
    sent[nsent++] = copy;
    return 0;
}

static frame_t sent_frame(size_t i)
{
    frame_t f;
    assert_true(i < nsent);
    if (frame_decode(sent[i], strlen(sent[i]), &f) != FRAME_OK)
        fail_msg("frame %zu does not decode: %s", i, sent[i]);
    return f;
}

/* ---- the callback ---- */

typedef struct call {
    int    calls;
    int    status;
    bool   had_resp;
    char   result[128];
} call_t;

static void on_done(void *arg, int status, const frame_t *resp)
{
    call_t *c = arg;
    c->calls++;
    c->status = status;
    c->had_resp = resp != NULL;
    c->result[0] = '\0';
    if (resp && resp->result.t != JT_NONE && resp->result.n < sizeof(c->result)) {
        memcpy(c->result, resp->result.p, resp->result.n);
        c->result[resp->result.n] = '\0';
    }
}

/* lws_service(ctx, 0) sleeps until the next loop timer is due, which with none
 * pending is "for ever": a 10 ms ticker bounds each wait so the deadline holds. */
static lws_sorted_usec_list_t ticker;

static void on_tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(ctx, 0, sul, on_tick, 10 * LWS_US_PER_MS);
}

/* Services the loop until *flag becomes non-zero or ms pass; returns *flag. */
static int pump_until(const int *flag, int64_t ms)
{
    int64_t deadline = now_ms() + ms;
    lws_sul_schedule(ctx, 0, &ticker, on_tick, 10 * LWS_US_PER_MS);
    while (!*flag && now_ms() < deadline)
        lws_service(ctx, 0);
    lws_sul_cancel(&ticker);
    return *flag;
}

/* Services the loop for ms (to show that something does NOT happen). */
static void pump_for(int64_t ms)
{
    static const int never = 0;
    pump_until(&never, ms);
}

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < nsent; i++)
        free(sent[i]);
    nsent = 0;
    send_rc = 0;
    send_steal = 0;
    send_owner = NULL;
    return 0;
}

static int teardown(void **state) { return setup(state); }

/* A RESPONSE frame as the peer would send it. */
static int respond(modem_t *m, const char *text)
{
    frame_t f;
    assert_int_equal(frame_decode(text, strlen(text), &f), FRAME_OK);
    assert_int_equal(f.mode, FRAME_RESPONSE);
    return modem_on_response(m, &f);
}

static void request_response_roundtrip(void **state)
{
    (void)state;
    modem_t m;
    int owner;
    modem_init(&m, ctx, fake_send, &owner, 0);
    call_t c = {0};
    uint64_t id = 99;
    assert_int_equal(modem_request(&m, "/-/find", 7, "{\"namespace\":\"p\"}", 17, 5000, on_done,
                                   &c, &id), 0);
    assert_int_equal(id, 0);
    assert_ptr_equal(send_owner, &owner);
    assert_int_equal(nsent, 1);
    assert_string_equal(sent[0], "{\"id\":0,\"twoway\":true,\"data\":{\"url\":\"/-/find\","
                                 "\"data\":{\"namespace\":\"p\"}},\"mode\":0}");
    assert_int_equal(modem_pending(&m), 1);
    assert_int_equal(c.calls, 0);

    assert_int_equal(respond(&m, "{\"id\":0,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200,"
                                 "\"data\":{\"host\":\"h\",\"port\":1}}}"), 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 200);
    assert_true(c.had_resp);
    assert_string_equal(c.result, "{\"host\":\"h\",\"port\":1}");
    assert_int_equal(modem_pending(&m), 0);
    assert_int_equal(m.late, 0);

    /* the same response again is late, and the timer was cancelled with it */
    assert_int_equal(respond(&m, "{\"id\":0,\"mode\":1,\"data\":{\"status\":200}}"), 0);
    assert_int_equal(m.late, 1);
    assert_int_equal(c.calls, 1);
    modem_close(&m);
    assert_int_equal(c.calls, 1);
}

static void ids_count_every_frame(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    send_steal = 1;
    call_t c[3] = {{0}};
    uint64_t id;
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 0, on_done, &c[0], &id), 0);
    assert_int_equal(id, 0);
    assert_int_equal(modem_push(&m, "/p", 2, "{}", 2), 0);                /* id 1 */
    assert_int_equal(modem_request(&m, "/b", 2, NULL, 0, 0, on_done, &c[1], &id), 0);
    assert_int_equal(id, 2);
    assert_int_equal(modem_cancel(&m, 2), 0);                             /* ABORT id 3 */
    assert_int_equal(modem_respond_ok(&m, 40, NULL, 0), 0);               /* reuses 40 */
    assert_int_equal(modem_respond_err(&m, 41, 500, "x"), 0);             /* reuses 41 */
    assert_int_equal(modem_request(&m, "/c", 2, NULL, 0, 0, on_done, &c[2], &id), 0);
    assert_int_equal(id, 4);
    uint64_t want[] = {0, 1, 2, 3, 40, 41, 4};
    int modes[] = {0, 0, 0, 2, 1, 1, 0};
    assert_int_equal(nsent, 7);
    for (size_t i = 0; i < 7; i++) {
        frame_t f = sent_frame(i);
        assert_int_equal(f.id, want[i]);
        assert_int_equal(f.mode, modes[i]);
    }
    modem_close(&m);
}

static void ids_wrap_before_2_53(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    m.next_id = FRAME_ID_MAX - 1;
    call_t c = {0};
    uint64_t id;
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 0, on_done, &c, &id), 0);
    assert_int_equal(id, FRAME_ID_MAX - 1);
    assert_int_equal(modem_push(&m, "/p", 2, NULL, 0), 0);
    assert_int_equal(sent_frame(1).id, 0); /* wrapped to 0, never 2^53-1 */
    modem_close(&m);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, MODEM_E_CLOSED);
}

static void unknown_response_is_late(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t c = {0};
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 5000, on_done, &c, NULL), 0);
    assert_int_equal(respond(&m, "{\"id\":7,\"mode\":1,\"data\":{\"status\":200}}"), 0);
    assert_int_equal(m.late, 1);
    assert_int_equal(c.calls, 0);
    assert_int_equal(modem_pending(&m), 1);
    modem_close(&m);
    assert_int_equal(c.calls, 1);
}

static void response_status_passed_through(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t c[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 0, on_done, &c[i], NULL), 0);
    respond(&m, "{\"id\":0,\"mode\":1,\"data\":{\"status\":404,\"data\":null,\"message\":\"no\"}}");
    respond(&m, "{\"id\":1,\"mode\":1,\"data\":{\"status\":\"ECONNABORTED\",\"message\":\"Abort\"}}");
    respond(&m, "{\"id\":2,\"mode\":1,\"data\":{\"status\":0}}");
    assert_int_equal(c[0].status, 404);
    assert_true(c[0].had_resp);
    assert_int_equal(c[1].status, 500); /* a non-numeric status is a failure */
    assert_true(c[1].had_resp);
    assert_int_equal(c[2].status, 500); /* so is 0: only 200 is success */
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i].calls, 1);
    modem_close(&m);
}

static void timeout_sends_abort(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t c = {0};
    uint64_t id;
    assert_int_equal(modem_push(&m, "/p", 2, NULL, 0), 0); /* id 0, so the request is 1 */
    int64_t t0 = now_ms();
    assert_int_equal(modem_request(&m, "/slow", 5, "1", 1, 50, on_done, &c, &id), 0);
    assert_int_equal(id, 1);
    assert_true(pump_until(&c.calls, 5000));
    assert_true(now_ms() - t0 >= 45);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, MODEM_E_TIMEOUT);
    assert_false(c.had_resp);
    assert_string_equal(modem_strerror(MODEM_E_TIMEOUT), "Abort");
    assert_int_equal(modem_pending(&m), 0);
    assert_int_equal(nsent, 3);
    assert_string_equal(sent[2], "{\"id\":2,\"twoway\":false,\"data\":1,\"mode\":2}");
    frame_t f = sent_frame(2);
    assert_int_equal(f.mode, FRAME_ABORT);
    assert_int_equal(f.target, 1);
    /* the answer that comes after the timeout is dropped */
    assert_int_equal(respond(&m, "{\"id\":1,\"mode\":1,\"data\":{\"status\":200,\"data\":1}}"), 0);
    assert_int_equal(m.late, 1);
    pump_for(100);
    assert_int_equal(c.calls, 1);
    assert_int_equal(nsent, 3);
    modem_close(&m);
    assert_int_equal(c.calls, 1);
}

static void timer_cancelled_by_response(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t c = {0};
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 30, on_done, &c, NULL), 0);
    respond(&m, "{\"id\":0,\"mode\":1,\"data\":{\"status\":200}}");
    assert_int_equal(c.calls, 1);
    pump_for(120);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 200);
    assert_int_equal(nsent, 1); /* no ABORT */
    modem_close(&m);
}

static void several_timeouts_in_order(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t slow = {0}, fast = {0}, none = {0};
    assert_int_equal(modem_request(&m, "/s", 2, NULL, 0, 200, on_done, &slow, NULL), 0); /* 0 */
    assert_int_equal(modem_request(&m, "/f", 2, NULL, 0, 20, on_done, &fast, NULL), 0);  /* 1 */
    assert_int_equal(modem_request(&m, "/n", 2, NULL, 0, 0, on_done, &none, NULL), 0);   /* 2 */
    assert_true(pump_until(&fast.calls, 5000));
    assert_int_equal(slow.calls, 0);
    assert_int_equal(sent_frame(3).target, 1);
    assert_true(pump_until(&slow.calls, 5000));
    assert_int_equal(sent_frame(4).target, 0);
    assert_int_equal(sent_frame(4).id, 4);
    pump_for(50);
    assert_int_equal(none.calls, 0); /* no timeout: waits for ever */
    assert_int_equal(modem_pending(&m), 1);
    modem_close(&m);
    assert_int_equal(none.calls, 1);
    assert_int_equal(none.status, MODEM_E_CLOSED);
}

static void cancel_sends_abort_without_callback(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t c = {0};
    uint64_t id;
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 30, on_done, &c, &id), 0);
    assert_int_equal(modem_cancel(&m, id), 0);
    assert_int_equal(modem_pending(&m), 0);
    assert_int_equal(nsent, 2);
    assert_string_equal(sent[1], "{\"id\":1,\"twoway\":false,\"data\":0,\"mode\":2}");
    assert_int_equal(modem_cancel(&m, id), -1);  /* no longer pending: nothing sent */
    assert_int_equal(modem_cancel(&m, 999), -1);
    assert_int_equal(nsent, 2);
    pump_for(120); /* the timer is gone too */
    assert_int_equal(c.calls, 0);
    assert_int_equal(respond(&m, "{\"id\":0,\"mode\":1,\"data\":{\"status\":200}}"), 0);
    assert_int_equal(c.calls, 0);
    modem_close(&m);
    assert_int_equal(c.calls, 0);
}

static int reentrant_requests;
static modem_t *reentrant_modem;

static void on_closed_request_again(void *arg, int status, const frame_t *resp)
{
    on_done(arg, status, resp);
    static call_t later;
    if (reentrant_requests++ == 0)
        assert_int_equal(modem_request(reentrant_modem, "/again", 6, NULL, 0, 0, on_done, &later,
                                       NULL), 0);
}

static void close_fails_pending_once(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t c[5] = {{0}};
    for (int i = 0; i < 5; i++)
        assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, i % 2 ? 40 : 0, on_done, &c[i], NULL),
                         0);
    respond(&m, "{\"id\":2,\"mode\":1,\"data\":{\"status\":200}}");
    assert_int_equal(modem_pending(&m), 4);
    modem_close(&m);
    assert_int_equal(modem_pending(&m), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c[i].calls, 1);
        assert_int_equal(c[i].status, i == 2 ? 200 : MODEM_E_CLOSED);
        if (i != 2)
            assert_false(c[i].had_resp);
    }
    pump_for(120); /* timers cancelled: no second call, no ABORT */
    for (int i = 0; i < 5; i++)
        assert_int_equal(c[i].calls, 1);
    assert_int_equal(nsent, 5);
    modem_close(&m); /* closing twice is harmless */
    for (int i = 0; i < 5; i++)
        assert_int_equal(c[i].calls, 1);
}

static void close_callback_may_start_requests(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    reentrant_modem = &m;
    reentrant_requests = 0;
    call_t a = {0}, b = {0};
    modem_request(&m, "/a", 2, NULL, 0, 0, on_closed_request_again, &a, NULL);
    modem_request(&m, "/b", 2, NULL, 0, 0, on_closed_request_again, &b, NULL);
    modem_close(&m);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(modem_pending(&m), 1); /* the new one lives in a fresh table */
    modem_close(&m);
    assert_int_equal(modem_pending(&m), 0);
}

static void max_pending_full(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 2);
    call_t c[3] = {{0}};
    uint64_t id = 77;
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 0, on_done, &c[0], NULL), 0);
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 0, on_done, &c[1], NULL), 0);
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 20, on_done, &c[2], &id), MODEM_E_FULL);
    assert_int_equal(id, 77);
    assert_int_equal(nsent, 2);
    assert_int_equal(modem_pending(&m), 2);
    pump_for(60);
    assert_int_equal(c[2].calls, 0);
    /* pushes have no table entry, so they are not limited */
    assert_int_equal(modem_push(&m, "/p", 2, NULL, 0), 0);
    respond(&m, "{\"id\":0,\"mode\":1,\"data\":{\"status\":200}}");
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 0, on_done, &c[2], &id), 0);
    assert_int_equal(id, 3); /* the refused request used no id */
    modem_close(&m);
    assert_int_equal(c[2].calls, 1);
}

static void send_failure_no_callback(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    call_t c = {0};
    send_rc = -1;
    assert_int_equal(modem_request(&m, "/a", 2, NULL, 0, 20, on_done, &c, NULL), MODEM_E_SEND);
    assert_int_equal(modem_pending(&m), 0);
    assert_int_equal(modem_push(&m, "/p", 2, NULL, 0), MODEM_E_SEND);
    assert_int_equal(modem_respond_ok(&m, 1, NULL, 0), MODEM_E_SEND);
    assert_int_equal(modem_respond_err(&m, 1, 500, "x"), MODEM_E_SEND);
    pump_for(80);
    assert_int_equal(c.calls, 0);
    modem_close(&m);
    assert_int_equal(c.calls, 0);
    assert_int_equal(nsent, 0);
}

static void push_has_no_table_entry(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    assert_int_equal(modem_push(&m, "/-/heartbeat", 12, "{}", 2), 0);
    assert_int_equal(modem_pending(&m), 0);
    assert_string_equal(sent[0], "{\"id\":0,\"twoway\":false,\"data\":{\"url\":\"/-/heartbeat\","
                                 "\"data\":{}},\"mode\":0}");
    assert_int_equal(respond(&m, "{\"id\":0,\"mode\":1,\"data\":{\"status\":200}}"), 0);
    assert_int_equal(m.late, 1);
    modem_close(&m);
}

static void respond_encodings(void **state)
{
    (void)state;
    modem_t m;
    modem_init(&m, ctx, fake_send, NULL, 0);
    assert_int_equal(modem_respond_ok(&m, 7, "{\"a\":0.1}", 9), 0);
    assert_int_equal(modem_respond_ok(&m, 8, NULL, 0), 0);
    assert_int_equal(modem_respond_err(&m, 9, 404, "no route \"/x\""), 0);
    assert_int_equal(modem_respond_err(&m, 10, 500, NULL), 0);
    assert_string_equal(sent[0], "{\"id\":7,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200,"
                                 "\"data\":{\"a\":0.1}}}");
    assert_string_equal(sent[1], "{\"id\":8,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200}}");
    assert_string_equal(sent[2], "{\"id\":9,\"mode\":1,\"twoway\":false,\"data\":{\"status\":404,"
                                 "\"data\":null,\"message\":\"no route \\\"/x\\\"\"}}");
    assert_string_equal(sent[3], "{\"id\":10,\"mode\":1,\"twoway\":false,\"data\":{\"status\":500,"
                                 "\"data\":null,\"message\":\"\"}}");
    assert_int_equal(m.next_id, 0); /* responses take no id of ours */
    modem_close(&m);
}

static void strerror_distinct(void **state)
{
    (void)state;
    assert_string_equal(modem_strerror(MODEM_E_TIMEOUT), "Abort");
    assert_string_not_equal(modem_strerror(MODEM_E_CLOSED), modem_strerror(MODEM_E_SEND));
    assert_string_not_equal(modem_strerror(MODEM_E_FULL), modem_strerror(MODEM_E_SEND));
}

int main(void)
{
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.options = 0;
    ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws_create_context failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(request_response_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(ids_count_every_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(ids_wrap_before_2_53, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_response_is_late, setup, teardown),
        cmocka_unit_test_setup_teardown(response_status_passed_through, setup, teardown),
        cmocka_unit_test_setup_teardown(timeout_sends_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(timer_cancelled_by_response, setup, teardown),
        cmocka_unit_test_setup_teardown(several_timeouts_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_sends_abort_without_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(close_fails_pending_once, setup, teardown),
        cmocka_unit_test_setup_teardown(close_callback_may_start_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(max_pending_full, setup, teardown),
        cmocka_unit_test_setup_teardown(send_failure_no_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(push_has_no_table_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(respond_encodings, setup, teardown),
        cmocka_unit_test(strerror_distinct),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lws_context_destroy(ctx);
    return rc;
}
