/* Unit tests for libmicro/frame.c: decoding the wire examples of docs/PROTOCOL.md §3,
 * malformed frames, the reference key order of the encoders, round trips, and
 * the correlation-id rules of docs/PROTOCOL.md §5.3 (frame_payload_with_cid). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "util.h"

static int decode(const char *s, frame_t *f) { return frame_decode(s, strlen(s), f); }

#define assert_span(span, type, lit)                         \
    do {                                                     \
        assert_int_equal((span).t, type);                    \
        assert_int_equal((span).n, strlen(lit));             \
        assert_memory_equal((span).p, lit, strlen(lit));     \
    } while (0)

/* ---- decoding the docs/PROTOCOL.md §3 examples, byte for byte ---- */

static void decode_request_find(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":0,\"twoway\":true,\"data\":{\"url\":\"/-/find\",\"data\":"
                            "{\"namespace\":\"payments\",\"exclude\":[\"10.0.0.7:9100\"]}},"
                            "\"mode\":0,\"stream\":false}", &f), FRAME_OK);
    assert_int_equal(f.id, 0);
    assert_int_equal(f.mode, FRAME_REQUEST);
    assert_true(f.twoway);
    assert_false(f.stream);
    assert_int_equal(f.data.t, JT_OBJECT);
    assert_span(f.url, JT_STRING, "\"/-/find\"");
    assert_true(jstr_eq(f.url, "/-/find"));
    assert_span(f.payload, JT_OBJECT, "{\"namespace\":\"payments\",\"exclude\":[\"10.0.0.7:9100\"]}");
}

static void decode_response_with_result(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":0,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200,"
                            "\"data\":{\"host\":\"10.0.0.8\",\"port\":9100}}}", &f), FRAME_OK);
    assert_int_equal(f.id, 0);
    assert_int_equal(f.mode, FRAME_RESPONSE);
    assert_false(f.twoway);
    assert_int_equal(f.status, 200);
    assert_span(f.status_raw, JT_NUMBER, "200");
    assert_span(f.result, JT_OBJECT, "{\"host\":\"10.0.0.8\",\"port\":9100}");
    assert_int_equal(f.message.t, JT_NONE);
}

static void decode_response_without_result(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":0,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200}}", &f),
                     FRAME_OK);
    assert_int_equal(f.status, 200);
    assert_int_equal(f.result.t, JT_NONE);
    assert_int_equal(f.message.t, JT_NONE);
}

static void decode_request_with_cid(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":3,\"twoway\":true,\"data\":{\"url\":\"/charge\",\"data\":"
                            "{\"amount\":100,\"_correlationId\":\"3f0c...\"}},\"mode\":0,"
                            "\"stream\":false}", &f), FRAME_OK);
    assert_int_equal(f.id, 3);
    assert_true(f.twoway);
    assert_true(jstr_eq(f.url, "/charge"));
    assert_span(f.payload, JT_OBJECT, "{\"amount\":100,\"_correlationId\":\"3f0c...\"}");
}

static void decode_response_error(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":3,\"mode\":1,\"twoway\":false,\"data\":{\"status\":500,"
                            "\"data\":null,\"message\":\"boom\"}}", &f), FRAME_OK);
    assert_int_equal(f.id, 3);
    assert_int_equal(f.status, 500);
    assert_span(f.result, JT_NULL, "null");
    assert_span(f.message, JT_STRING, "\"boom\"");
}

static void decode_push(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":4,\"twoway\":false,\"data\":{\"url\":\"/-/heartbeat\","
                            "\"data\":{}},\"mode\":0,\"stream\":false}", &f), FRAME_OK);
    assert_int_equal(f.id, 4);
    assert_int_equal(f.mode, FRAME_REQUEST);
    assert_false(f.twoway);
    assert_true(jstr_eq(f.url, "/-/heartbeat"));
    assert_span(f.payload, JT_OBJECT, "{}");
}

static void decode_abort(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":6,\"twoway\":false,\"data\":5,\"mode\":2,\"stream\":false}",
                            &f), FRAME_OK);
    assert_int_equal(f.id, 6);
    assert_int_equal(f.mode, FRAME_ABORT);
    assert_false(f.twoway);
    assert_false(f.stream);
    assert_int_equal(f.target, 5);
}

/* ---- leniency the protocol asks for ---- */

static void decode_unknown_keys_ignored(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"x\":{\"id\":\"no\",\"mode\":9},\"id\":1,\"trace\":[1,{}],"
                            "\"data\":{\"url\":\"/a\",\"extra\":true},\"mode\":0,\"z\":null}", &f),
                     FRAME_OK);
    assert_int_equal(f.id, 1);
    assert_int_equal(f.mode, FRAME_REQUEST);
    assert_false(f.twoway); /* absent → false */
    assert_true(jstr_eq(f.url, "/a"));
    assert_int_equal(f.payload.t, JT_NONE);
}

static void decode_key_order_and_stream(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"mode\":0,\"data\":{\"data\":[1],\"url\":\"/s\"},\"stream\":true,"
                            "\"twoway\":true,\"id\":12}", &f), FRAME_OK);
    assert_int_equal(f.id, 12);
    assert_true(f.stream);
    assert_true(f.twoway);
    assert_span(f.payload, JT_ARRAY, "[1]");
    /* stream absent */
    assert_int_equal(decode("{\"id\":1,\"twoway\":true,\"data\":{\"url\":\"/s\"},\"mode\":0}", &f),
                     FRAME_OK);
    assert_false(f.stream);
    /* white space anywhere */
    assert_int_equal(decode(" {\n\"id\" : 2 ,\t\"mode\" : 2 , \"data\" : 1 }\n", &f), FRAME_OK);
    assert_int_equal(f.target, 1);
    /* escaped key names are the same names */
    assert_int_equal(decode("{\"\\u0069d\":3,\"mod\\u0065\":2,\"data\":0}", &f), FRAME_OK);
    assert_int_equal(f.id, 3);
}

static void decode_id_bounds(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":9007199254740991,\"mode\":2,\"data\":0}", &f), FRAME_OK);
    assert_int_equal(f.id, FRAME_ID_MAX);
    assert_int_equal(decode("{\"id\":9007199254740992,\"mode\":2,\"data\":0}", &f), FRAME_E_SHAPE);
    assert_int_equal(decode("{\"id\":-1,\"mode\":2,\"data\":0}", &f), FRAME_E_SHAPE);
    assert_int_equal(decode("{\"id\":1.5,\"mode\":2,\"data\":0}", &f), FRAME_E_SHAPE);
    assert_int_equal(decode("{\"id\":\"1\",\"mode\":2,\"data\":0}", &f), FRAME_E_SHAPE);
    assert_int_equal(decode("{\"id\":null,\"mode\":2,\"data\":0}", &f), FRAME_E_SHAPE);
    assert_int_equal(decode("{\"id\":4.0,\"mode\":2,\"data\":0}", &f), FRAME_OK);
    assert_int_equal(f.id, 4);
    /* abort target has the same bounds */
    assert_int_equal(decode("{\"id\":0,\"mode\":2,\"data\":9007199254740991}", &f), FRAME_OK);
    assert_int_equal(f.target, FRAME_ID_MAX);
}

static void decode_malformed(void **state)
{
    (void)state;
    frame_t f;
    struct { const char *text; int rc; } cases[] = {
        {"", FRAME_E_JSON},
        {"not json", FRAME_E_JSON},
        {"{\"id\":1,", FRAME_E_JSON},
        {"{\"id\":01,\"mode\":2,\"data\":0}", FRAME_E_JSON},
        {"{\"id\":1,\"mode\":2,\"data\":0,}", FRAME_E_JSON},
        {"{\"id\":1,\"mode\":2,\"data\":\"\xff\"}", FRAME_E_JSON},
        /* non-object roots */
        {"[]", FRAME_E_SHAPE},
        {"[{\"id\":1,\"mode\":2,\"data\":0}]", FRAME_E_SHAPE},
        {"5", FRAME_E_SHAPE},
        {"\"frame\"", FRAME_E_SHAPE},
        {"null", FRAME_E_SHAPE},
        {"{}", FRAME_E_SHAPE},
        /* id / mode */
        {"{\"mode\":2,\"data\":0}", FRAME_E_SHAPE},
        {"{\"id\":1,\"data\":0}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":3,\"data\":0}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":-1,\"data\":0}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":\"0\",\"data\":{\"url\":\"/a\"}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0.5,\"data\":{\"url\":\"/a\"}}", FRAME_E_SHAPE},
        /* request */
        {"{\"id\":1,\"mode\":0}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0,\"data\":{}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0,\"data\":{\"data\":1}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0,\"data\":{\"url\":5}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0,\"data\":{\"url\":null}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0,\"data\":{\"url\":\"\"}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0,\"data\":\"/a\"}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":0,\"data\":[\"/a\"]}", FRAME_E_SHAPE},
        /* response */
        {"{\"id\":1,\"mode\":1}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":1,\"data\":{}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":1,\"data\":{\"data\":1}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":1,\"data\":{\"status\":null}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":1,\"data\":{\"status\":true}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":1,\"data\":{\"status\":[200]}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":1,\"data\":200}", FRAME_E_SHAPE},
        /* abort */
        {"{\"id\":1,\"mode\":2}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":2,\"data\":\"5\"}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":2,\"data\":null}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":2,\"data\":{\"id\":5}}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":2,\"data\":-5}", FRAME_E_SHAPE},
        {"{\"id\":1,\"mode\":2,\"data\":5.5}", FRAME_E_SHAPE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = decode(cases[i].text, &f);
        if (rc != cases[i].rc)
            fail_msg("case %zu: %s → %d, want %d", i, cases[i].text, rc, cases[i].rc);
    }
    assert_string_not_equal(frame_strerror(FRAME_E_JSON), frame_strerror(FRAME_E_SHAPE));
}

static void decode_response_status_forms(void **state)
{
    (void)state;
    frame_t f;
    /* a string status (e.g. "ECONNABORTED") is a failure with status 0 */
    assert_int_equal(decode("{\"id\":1,\"mode\":1,\"data\":{\"status\":\"ECONNABORTED\","
                            "\"data\":null,\"message\":\"Abort\"}}", &f), FRAME_OK);
    assert_int_equal(f.status, 0);
    assert_span(f.status_raw, JT_STRING, "\"ECONNABORTED\"");
    assert_span(f.message, JT_STRING, "\"Abort\"");
    assert_int_equal(decode("{\"id\":1,\"mode\":1,\"data\":{\"status\":\"200\"}}", &f), FRAME_OK);
    assert_int_not_equal(f.status, 200); /* "200" !== 200 in the reference */
    /* a non-string message is ignored */
    assert_int_equal(decode("{\"id\":1,\"mode\":1,\"data\":{\"status\":502,\"message\":{}}}", &f),
                     FRAME_OK);
    assert_int_equal(f.status, 502);
    assert_int_equal(f.message.t, JT_NONE);
    assert_int_equal(decode("{\"id\":1,\"mode\":1,\"data\":{\"status\":2e2}}", &f), FRAME_OK);
    assert_int_equal(f.status, 200);
}

/* The reference checks `status !== 200`: 200.5 is a failure, not a success. */
static void decode_response_fractional_status_not_200(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":1,\"mode\":1,\"data\":{\"status\":200.5}}", &f), FRAME_OK);
    assert_int_not_equal(f.status, 200);
}

/* A status written with 64+ characters is still a number: 500.000...0 is 500. */
static void decode_response_long_status_number(void **state)
{
    (void)state;
    char text[256];
    frame_t f;
    snprintf(text, sizeof(text), "{\"id\":1,\"mode\":1,\"data\":{\"status\":500.%0*d}}", 70, 0);
    assert_int_equal(decode(text, &f), FRAME_OK);
    assert_int_equal(f.status_raw.t, JT_NUMBER);
    assert_int_equal(f.status, 500);
    snprintf(text, sizeof(text), "{\"id\":1,\"mode\":1,\"data\":{\"status\":200.%0*d}}", 70, 0);
    assert_int_equal(decode(text, &f), FRAME_OK);
    assert_int_equal(f.status, 200);
}

static void decode_last_member_wins(void **state)
{
    (void)state;
    frame_t f;
    assert_int_equal(decode("{\"id\":1,\"id\":2,\"mode\":0,\"mode\":2,\"data\":7}", &f), FRAME_OK);
    assert_int_equal(f.id, 2);
    assert_int_equal(f.mode, FRAME_ABORT);
    assert_int_equal(f.target, 7);
    assert_int_equal(decode("{\"id\":1,\"id\":\"x\",\"mode\":2,\"data\":7}", &f), FRAME_E_SHAPE);
}

/* ---- encoders: the reference's exact key order ---- */

#define assert_buf(b, lit)                                     \
    do {                                                       \
        assert_int_equal((b)->len, strlen(lit));               \
        assert_memory_equal(sbuf_data(b), lit, strlen(lit));   \
    } while (0)

static void encode_request(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 16, 0);
    assert_int_equal(frame_put_request(&b, 0, true, "/x", 2, "{\"a\":0.1}", 9), 0);
    assert_buf(&b, "{\"id\":0,\"twoway\":true,\"data\":{\"url\":\"/x\",\"data\":{\"a\":0.1}},\"mode\":0}");
    assert_ptr_equal(sbuf_data(&b), b.buf + 16);
    sbuf_reset(&b);
    assert_int_equal(frame_put_request(&b, 4, false, "/-/heartbeat", 12, "{}", 2), 0);
    assert_buf(&b, "{\"id\":4,\"twoway\":false,\"data\":{\"url\":\"/-/heartbeat\",\"data\":{}},\"mode\":0}");
    sbuf_reset(&b);
    /* no payload: no data key */
    assert_int_equal(frame_put_request(&b, 9007199254740991ULL, true, "/a\"b", 4, NULL, 0), 0);
    assert_buf(&b, "{\"id\":9007199254740991,\"twoway\":true,\"data\":{\"url\":\"/a\\\"b\"},\"mode\":0}");
    sbuf_reset(&b);
    /* a present but empty-text payload is still written as given */
    assert_int_equal(frame_put_request(&b, 1, true, "/n", 2, "null", 4), 0);
    assert_buf(&b, "{\"id\":1,\"twoway\":true,\"data\":{\"url\":\"/n\",\"data\":null},\"mode\":0}");
    sbuf_free(&b);
}

static void encode_responses(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    const char *res = "{\"host\":\"10.0.0.8\",\"port\":9100}";
    assert_int_equal(frame_put_response_ok(&b, 0, res, strlen(res)), 0);
    assert_buf(&b, "{\"id\":0,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200,\"data\":"
                   "{\"host\":\"10.0.0.8\",\"port\":9100}}}");
    sbuf_reset(&b);
    assert_int_equal(frame_put_response_ok(&b, 0, NULL, 0), 0);
    assert_buf(&b, "{\"id\":0,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200}}");
    sbuf_reset(&b);
    assert_int_equal(frame_put_response_err(&b, 3, 500, "boom", 4), 0);
    assert_buf(&b, "{\"id\":3,\"mode\":1,\"twoway\":false,\"data\":{\"status\":500,\"data\":null,"
                   "\"message\":\"boom\"}}");
    sbuf_reset(&b);
    assert_int_equal(frame_put_response_err(&b, 3, 404, "no \"route\"\n", 11), 0);
    assert_buf(&b, "{\"id\":3,\"mode\":1,\"twoway\":false,\"data\":{\"status\":404,\"data\":null,"
                   "\"message\":\"no \\\"route\\\"\\n\"}}");
    sbuf_reset(&b);
    assert_int_equal(frame_put_response_err(&b, 5, 500, NULL, 0), 0);
    assert_buf(&b, "{\"id\":5,\"mode\":1,\"twoway\":false,\"data\":{\"status\":500,\"data\":null,"
                   "\"message\":\"\"}}");
    sbuf_free(&b);
}

static void encode_abort(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    assert_int_equal(frame_put_abort(&b, 6, 5), 0);
    assert_buf(&b, "{\"id\":6,\"twoway\":false,\"data\":5,\"mode\":2}");
    sbuf_free(&b);
}

static void encode_over_limit_fails(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 20);
    assert_int_equal(frame_put_abort(&b, 6, 5), -1);
    sbuf_reset(&b);
    assert_int_equal(frame_put_request(&b, 1, true, "/x", 2, NULL, 0), -1);
    sbuf_reset(&b);
    assert_int_equal(frame_put_response_ok(&b, 1, NULL, 0), -1);
    sbuf_reset(&b);
    assert_int_equal(frame_put_response_err(&b, 1, 500, "m", 1), -1);
    sbuf_free(&b);
}

/* ---- encode → decode ---- */

static void round_trips(void **state)
{
    (void)state;
    sbuf_t b;
    frame_t f;
    sbuf_init(&b, 0, 0);
    const char *payload = "{\"n\":0.1,\"big\":123456789012345678901234567890,\"s\":\"\\u00e9\"}";
    frame_put_request(&b, FRAME_ID_MAX, true, "/p\\q", 4, payload, strlen(payload));
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_int_equal(f.id, FRAME_ID_MAX);
    assert_int_equal(f.mode, FRAME_REQUEST);
    assert_true(f.twoway);
    assert_true(jstr_eq(f.url, "/p\\q"));
    assert_span(f.payload, JT_OBJECT, payload);

    sbuf_reset(&b);
    frame_put_request(&b, 2, false, "/push", 5, NULL, 0);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_false(f.twoway);
    assert_int_equal(f.payload.t, JT_NONE);

    sbuf_reset(&b);
    frame_put_response_ok(&b, 77, "[1,2]", 5);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_int_equal(f.id, 77);
    assert_int_equal(f.mode, FRAME_RESPONSE);
    assert_int_equal(f.status, 200);
    assert_span(f.result, JT_ARRAY, "[1,2]");

    sbuf_reset(&b);
    frame_put_response_err(&b, 78, 503, "down \xc3\xa9", 7);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_int_equal(f.status, 503);
    assert_int_equal(f.result.t, JT_NULL);
    assert_true(jstr_eq(f.message, "down \xc3\xa9"));

    sbuf_reset(&b);
    frame_put_abort(&b, 79, FRAME_ID_MAX);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_int_equal(f.mode, FRAME_ABORT);
    assert_int_equal(f.id, 79);
    assert_int_equal(f.target, FRAME_ID_MAX);
    sbuf_free(&b);
}

/* ---- correlation ids (docs/PROTOCOL.md §5.3) ---- */

static char out_cid[64];

static const char *with_cid(sbuf_t *b, const char *payload, jtype_t t, const char *given)
{
    sbuf_reset(b);
    memset(out_cid, 'Z', sizeof(out_cid));
    int rc = frame_payload_with_cid(b, payload, payload ? strlen(payload) : 0, t, given, out_cid,
                                    sizeof(out_cid));
    assert_int_equal(rc, 0);
    assert_int_equal(jscan_validate(sbuf_data(b), b->len, NULL, NULL), 0);
    /* the same through the member index must give the same bytes and id (a
     * given id is the same string; a generated one differs, compare its shape) */
    if (payload) {
        jindex_t ix;
        jspan_t root;
        char cid2[sizeof(out_cid)];
        sbuf_t b2;
        sbuf_init(&b2, 0, 0);
        assert_int_equal(jscan_validate_ix(payload, strlen(payload), &root, NULL, &ix, 1), 0);
        assert_int_equal(frame_payload_with_cid_ix(&b2, payload, strlen(payload), t, &ix, JIX_ROOT,
                                                   given, cid2, sizeof(cid2)), 0);
        if (given || strcmp(out_cid, cid2) == 0 || strstr(payload, "_correlationId")) {
            assert_string_equal(cid2, out_cid);
            assert_int_equal(b2.len, b->len);
            assert_memory_equal(sbuf_data(&b2), sbuf_data(b), b->len);
        } else {
            assert_int_equal(strlen(cid2), strlen(out_cid));
            assert_int_equal(b2.len, b->len);
        }
        sbuf_free(&b2);
    }
    return sbuf_data(b);
}

static void cid_added_to_object_members_kept_exact(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    assert_string_equal(with_cid(&b, "{\"amount\":0.1,\"n\":1e400,\"s\":\"\\u00e9\",\"a\":[1 , 2]}",
                                 JT_OBJECT, "trace-1"),
                        "{\"_correlationId\":\"trace-1\",\"amount\":0.1,\"n\":1e400,"
                        "\"s\":\"\\u00e9\",\"a\":[1 , 2]}");
    assert_string_equal(out_cid, "trace-1");
    /* white space inside the object is kept too */
    assert_string_equal(with_cid(&b, "{ \"v\" : 1 }", JT_OBJECT, "t"),
                        "{\"_correlationId\":\"t\", \"v\" : 1 }");
    sbuf_free(&b);
}

static void cid_existing_kept(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    const char *p = "{\"x\":0.1,\"_correlationId\":\"abc-1\"}";
    assert_string_equal(with_cid(&b, p, JT_OBJECT, "given"), p); /* given id not used */
    assert_string_equal(out_cid, "abc-1");
    p = "{\"_correlationId\":\"a\\\"b\\u00e9\"}";
    assert_string_equal(with_cid(&b, p, JT_OBJECT, NULL), p);
    assert_string_equal(out_cid, "a\"b\xc3\xa9"); /* unescaped */
    p = "{\"_correlation\\u0049d\":\"esc\"}"; /* the name is compared unescaped */
    assert_string_equal(with_cid(&b, p, JT_OBJECT, NULL), p);
    assert_string_equal(out_cid, "esc");
    sbuf_free(&b);
}

static void cid_empty_object(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    assert_string_equal(with_cid(&b, "{}", JT_OBJECT, "t-2"), "{\"_correlationId\":\"t-2\"}");
    assert_string_equal(out_cid, "t-2");
    assert_string_equal(with_cid(&b, "{ \n }", JT_OBJECT, "t-2"), "{\"_correlationId\":\"t-2\"}");
    sbuf_free(&b);
}

static void cid_wraps_non_objects(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    assert_string_equal(with_cid(&b, "[1,{\"_correlationId\":\"no\"}]", JT_ARRAY, "w"),
                        "{\"_correlationId\":\"w\",\"data\":[1,{\"_correlationId\":\"no\"}]}");
    assert_string_equal(out_cid, "w");
    assert_string_equal(with_cid(&b, "\"str\"", JT_STRING, "w"),
                        "{\"_correlationId\":\"w\",\"data\":\"str\"}");
    assert_string_equal(with_cid(&b, "0.1", JT_NUMBER, "w"),
                        "{\"_correlationId\":\"w\",\"data\":0.1}");
    assert_string_equal(with_cid(&b, "0", JT_NUMBER, "w"),
                        "{\"_correlationId\":\"w\",\"data\":0}");
    assert_string_equal(with_cid(&b, "null", JT_NULL, "w"),
                        "{\"_correlationId\":\"w\",\"data\":null}");
    assert_string_equal(with_cid(&b, "false", JT_FALSE, "w"),
                        "{\"_correlationId\":\"w\",\"data\":false}");
    assert_string_equal(with_cid(&b, "true", JT_TRUE, "w"),
                        "{\"_correlationId\":\"w\",\"data\":true}");
    /* no payload at all (undefined in JS): no data key */
    assert_string_equal(with_cid(&b, NULL, JT_NONE, "w"), "{\"_correlationId\":\"w\"}");
    assert_string_equal(out_cid, "w");
    /* the given id is escaped in JSON, returned raw */
    assert_string_equal(with_cid(&b, NULL, JT_NONE, "q\"x"), "{\"_correlationId\":\"q\\\"x\"}");
    assert_string_equal(out_cid, "q\"x");
    sbuf_free(&b);
}

static int uuid4_shaped(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void cid_generated_uuid(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    char first[64], want[128];
    with_cid(&b, "{\"a\":1}", JT_OBJECT, NULL);
    assert_true(uuid4_shaped(out_cid));
    snprintf(want, sizeof(want), "{\"_correlationId\":\"%s\",\"a\":1}", out_cid);
    assert_string_equal(sbuf_data(&b), want);
    strcpy(first, out_cid);
    with_cid(&b, NULL, JT_NONE, ""); /* empty given id = none */
    assert_true(uuid4_shaped(out_cid));
    assert_string_not_equal(out_cid, first);
    snprintf(want, sizeof(want), "{\"_correlationId\":\"%s\"}", out_cid);
    assert_string_equal(sbuf_data(&b), want);
    sbuf_free(&b);
}

static void cid_truncated_to_cidlen(void **state)
{
    (void)state;
    sbuf_t b;
    char cid[4];
    sbuf_init(&b, 0, 0);
    assert_int_equal(frame_payload_with_cid(&b, NULL, 0, JT_NONE, "trace-1", cid, sizeof(cid)), 0);
    assert_string_equal(cid, "tra");
    assert_string_equal(sbuf_data(&b), "{\"_correlationId\":\"trace-1\"}"); /* full id on the wire */
    sbuf_free(&b);
}

static void cid_over_limit_fails(void **state)
{
    (void)state;
    sbuf_t b;
    char cid[64];
    sbuf_init(&b, 0, 16);
    assert_int_equal(frame_payload_with_cid(&b, "{\"a\":1}", 7, JT_OBJECT, "trace-1", cid,
                                            sizeof(cid)), -1);
    sbuf_free(&b);
}

/* The reference (`else if (!data._correlationId)`) treats a falsy id — null, "",
 * 0, false — as absent and injects a fresh UUID. The id the caller gets back must
 * be the one the provider sees (the last "_correlationId" member of the result). */
static void cid_falsy_replaced_like_reference(void **state)
{
    (void)state;
    const char *falsy[] = {"null", "\"\"", "0", "false"};
    char why[512] = "";
    for (size_t i = 0; i < 4 && !why[0]; i++) {
        char p[64];
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        snprintf(p, sizeof(p), "{\"a\":1,\"_correlationId\":%s}", falsy[i]);
        int rc = frame_payload_with_cid(&b, p, strlen(p), JT_OBJECT, NULL, out_cid, sizeof(out_cid));
        jspan_t root, v;
        if (rc || jscan_validate(sbuf_data(&b), b.len, &root, NULL) || !jobj_get(root, "a", &v) ||
            !jobj_get(root, "_correlationId", &v) || v.t != JT_STRING || !uuid4_shaped(out_cid) ||
            !jstr_eq(v, out_cid))
            snprintf(why, sizeof(why), "payload %s: result %s, cid \"%s\"", p,
                     b.len ? sbuf_data(&b) : "", out_cid);
        sbuf_free(&b); /* before failing: no leak reports on top of the failure */
    }
    if (why[0])
        fail_msg("%s", why);
}

/* A payload with more members than the index holds: decoding and the id lookup
 * walk the text instead and get the same answers. */
static void big_payload_decodes_without_index(void **state)
{
    (void)state;
    sbuf_t p, b;
    sbuf_init(&p, 0, 0);
    sbuf_init(&b, 0, 0);
    sbuf_adds(&p, "{");
    for (int i = 0; i < JIX_MAX + 10; i++)
        sbuf_printf(&p, "\"k%d\":%d,", i, i);
    sbuf_adds(&p, "\"_correlationId\":\"big-1\"}");
    frame_put_request(&b, 42, true, "/big", 4, sbuf_data(&p), p.len);
    frame_t f;
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_false(f.ix.complete);
    assert_int_equal(f.id, 42);
    assert_true(jstr_eq(f.url, "/big"));
    assert_int_equal(f.payload.n, p.len);
    jspan_t v;
    assert_true(jmembers_get(&f.ix, f.payload_slot, f.payload, "_correlationId", &v, NULL));
    assert_true(jstr_eq(v, "big-1"));
    /* a small one is indexed to the payload's members */
    sbuf_reset(&b);
    const char *small = "{\"_correlationId\":\"s-1\",\"a\":1}";
    frame_put_request(&b, 43, true, "/s", 2, small, strlen(small));
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_true(f.ix.complete);
    assert_true(f.payload_slot >= 0);
    assert_true(jmembers_get(&f.ix, f.payload_slot, f.payload, "_correlationId", &v, NULL));
    assert_true(jstr_eq(v, "s-1"));
    sbuf_free(&p);
    sbuf_free(&b);
}

/* A RESPONSE that fails validation still names its request. */
static void salvage_id_of_a_bad_frame(void **state)
{
    (void)state;
    uint64_t id = 0;
    int mode = -1;
    const char *bad = "{\"id\":42,\"mode\":1,\"twoway\":false,\"data\":{\"status\":200,\"data\":\"\xff\xfe\"}}";
    frame_t f;
    assert_int_not_equal(frame_decode(bad, strlen(bad), &f), FRAME_OK);
    assert_int_equal(frame_salvage_id(bad, strlen(bad), &id, &mode), 0);
    assert_int_equal(id, 42);
    assert_int_equal(mode, FRAME_RESPONSE);
    /* keys in any order, values of any shape in between */
    const char *later = " { \"data\" : {\"a\":[1,{\"id\":7}],\"s\":\"},\\\"\"} , \"mode\" : 1 , \"id\" : 9 }";
    assert_int_equal(frame_salvage_id(later, strlen(later), &id, &mode), 0);
    assert_int_equal(id, 9);
    const char *no[] = {
        "", "[]", "{\"id\":-1,\"mode\":1}", "{\"id\":1.5,\"mode\":1}", "{\"id\":01,\"mode\":1}",
        "{\"id\":9007199254740992,\"mode\":1}", "{\"id\":1,\"mode\":3}", "{\"id\":1}", "{\"id\":1,\"mode\":1",
        "{\"id\":\"1\",\"mode\":1}", "{id:1,mode:1}",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_int_equal(frame_salvage_id(no[i], strlen(no[i]), &id, &mode), -1);
}

/* retryAfter is a peer's number: finite, positive, at most a day. */
static void retry_after_clamped(void **state)
{
    (void)state;
    const struct {
        const char *ra;
        double want;
    } cases[] = {{"1e308", FRAME_RETRY_AFTER_MAX}, {"1e400", 0}, {"-5", 0}, {"0", 0}, {"0.25", 0.25}, {"\"3\"", 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t), "{\"id\":1,\"mode\":1,\"data\":{\"status\":429,\"retryAfter\":%s}}", cases[i].ra);
        frame_t f;
        assert_int_equal(frame_decode(t, strlen(t), &f), FRAME_OK);
        assert_true(f.retry_after == cases[i].want);
    }
}

/* A payload `depth` levels deep: [[...[1]...]]. */
static char *deep_payload(int depth)
{
    char *s = malloc(2 * (size_t)depth + 2);
    memset(s, '[', (size_t)depth);
    s[depth] = '1';
    memset(s + depth + 1, ']', (size_t)depth);
    s[2 * depth + 1] = '\0';
    return s;
}

/* Frames carry payloads JSCAN_MAX_DEPTH deep; deeper ones are refused as
 * FRAME_E_DEPTH with what is needed to answer the sender at once. */
static void decode_depth(void **state)
{
    (void)state;
    frame_t f;
    sbuf_t b;
    /* the deepest payload fits, with its envelope */
    char *p = deep_payload(JSCAN_MAX_DEPTH);
    sbuf_init(&b, 0, 0);
    assert_int_equal(frame_put_request(&b, 7, true, "/x", 2, p, strlen(p)), 0);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_OK);
    assert_int_equal(f.payload.n, strlen(p));
    sbuf_free(&b);
    free(p);
    /* one too deep: the frame is FRAME_MAX_DEPTH + 1 levels */
    p = deep_payload(FRAME_MAX_DEPTH - 1);
    sbuf_init(&b, 0, 0);
    assert_int_equal(frame_put_request(&b, 7, true, "/x", 2, p, strlen(p)), 0);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_E_DEPTH);
    assert_int_equal(f.mode, FRAME_REQUEST);
    assert_int_equal(f.id, 7);
    assert_true(f.twoway);
    sbuf_reset(&b);
    assert_int_equal(frame_put_request(&b, 8, false, "/x", 2, p, strlen(p)), 0);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_E_DEPTH);
    assert_int_equal(f.id, 8);
    assert_false(f.twoway);
    sbuf_reset(&b);
    assert_int_equal(frame_put_response_ok(&b, 9, p, strlen(p)), 0);
    assert_int_equal(frame_decode(sbuf_data(&b), b.len, &f), FRAME_E_DEPTH);
    assert_int_equal(f.mode, FRAME_RESPONSE);
    assert_int_equal(f.id, 9);
    sbuf_free(&b);
    /* no usable id or mode: nobody to answer */
    const char *tails[] = {"{\"id\":-1,\"mode\":0,\"data\":[%s]}", "{\"id\":1,\"mode\":3,\"data\":[%s]}",
                           "{\"mode\":0,\"data\":[%s]}", "{\"id\":1,\"data\":[%s]}", "[[%s]]",
                           "{\"id\":1,\"mode\":0,\"data\":[%s]"};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        size_t n = strlen(p) + 64;
        char *t = malloc(n);
        snprintf(t, n, tails[i], p);
        assert_int_equal(frame_decode(t, strlen(t), &f), FRAME_E_DEPTH);
        assert_int_equal(f.mode, -1);
        free(t);
    }
    assert_string_equal(frame_strerror(FRAME_E_DEPTH), "nested too deeply");
    free(p);
}

int main(void)
{
    rng_seed(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_request_find),
        cmocka_unit_test(decode_response_with_result),
        cmocka_unit_test(decode_response_without_result),
        cmocka_unit_test(decode_request_with_cid),
        cmocka_unit_test(decode_response_error),
        cmocka_unit_test(decode_push),
        cmocka_unit_test(decode_abort),
        cmocka_unit_test(decode_unknown_keys_ignored),
        cmocka_unit_test(decode_key_order_and_stream),
        cmocka_unit_test(decode_id_bounds),
        cmocka_unit_test(decode_malformed),
        cmocka_unit_test(decode_depth),
        cmocka_unit_test(decode_response_status_forms),
        cmocka_unit_test(decode_response_fractional_status_not_200),
        cmocka_unit_test(decode_response_long_status_number),
        cmocka_unit_test(decode_last_member_wins),
        cmocka_unit_test(encode_request),
        cmocka_unit_test(encode_responses),
        cmocka_unit_test(encode_abort),
        cmocka_unit_test(encode_over_limit_fails),
        cmocka_unit_test(round_trips),
        cmocka_unit_test(cid_added_to_object_members_kept_exact),
        cmocka_unit_test(cid_existing_kept),
        cmocka_unit_test(cid_empty_object),
        cmocka_unit_test(cid_wraps_non_objects),
        cmocka_unit_test(cid_generated_uuid),
        cmocka_unit_test(cid_truncated_to_cidlen),
        cmocka_unit_test(cid_over_limit_fails),
        cmocka_unit_test(cid_falsy_replaced_like_reference),
        cmocka_unit_test(big_payload_decodes_without_index),
        cmocka_unit_test(salvage_id_of_a_bad_frame),
        cmocka_unit_test(retry_after_clamped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
