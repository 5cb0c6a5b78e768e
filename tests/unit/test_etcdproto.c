/* Unit tests for registry/etcdproto.c, the pure half of the registry's etcd
 * client: base64 and int64 encoding, the key layout, the answers of range,
 * watch, lease and txn (real etcd 3.4 gateway text), the watch stream splitter
 * under every split of its input, and the lease bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcdproto.h"

static void test_base64(void **state)
{
    (void)state;
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        sbuf_t b;
        char out[16];
        size_t n = 99;
        sbuf_init(&b, 0, 0);
        assert_int_equal(etcd_b64_encode(&b, plain[i], strlen(plain[i])), 0);
        assert_int_equal(b.len, strlen(enc[i]));
        assert_memory_equal(sbuf_data(&b) ? sbuf_data(&b) : "", enc[i], b.len);
        sbuf_free(&b);
        assert_int_equal(etcd_b64_decode(enc[i], strlen(enc[i]), out, sizeof(out), &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
    }
    /* every byte value round-trips */
    char all[256], back[256];
    size_t n;
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    etcd_b64_encode(&b, all, sizeof(all));
    assert_int_equal(etcd_b64_decode(sbuf_data(&b), b.len, back, sizeof(back), &n), 0);
    assert_int_equal(n, 256);
    assert_memory_equal(all, back, 256);
    /* too small an output is an error, never an overflow */
    assert_int_equal(etcd_b64_decode(sbuf_data(&b), b.len, back, 255, &n), -1);
    sbuf_free(&b);
    const char *bad[] = {"Zg=", "Z===", "Zg==Zg==", "Zm9*", "Zm=v", "====", "Zg\n="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(etcd_b64_decode(bad[i], strlen(bad[i]), back, sizeof(back), &n), -1);
}

static jspan_t span(const char *s)
{
    jspan_t r;
    assert_int_equal(jscan_validate(s, strlen(s), &r, NULL), 0);
    return r;
}

static void test_u64(void **state)
{
    (void)state;
    uint64_t v;
    int64_t i;
    assert_int_equal(etcd_u64(span("\"42\""), &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(etcd_u64(span("7"), &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(etcd_u64(span("\"18446744073709551615\""), &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(etcd_u64(span("\"18446744073709551616\""), &v), -1);
    assert_int_equal(etcd_u64(span("\"-1\""), &v), -1);
    assert_int_equal(etcd_u64(span("\"\""), &v), -1);
    assert_int_equal(etcd_u64(span("\"1e3\""), &v), -1);
    assert_int_equal(etcd_u64(span("1.5"), &v), -1);
    assert_int_equal(etcd_u64(span("true"), &v), -1);
    assert_int_equal(etcd_i64(span("\"9223372036854775808\""), &i), -1);
    assert_int_equal(etcd_i64(span("\"9223372036854775807\""), &i), 0);
}

static void test_layout(void **state)
{
    (void)state;
    char p[64], end[64], hp[ADDR_KEY_MAX];
    int n = etcd_instances_prefix(p, sizeof(p), "/micro");
    assert_string_equal(p, "/micro/instances/");
    int e = etcd_range_end(p, (size_t)n, end, sizeof(end));
    assert_int_equal(e, n);
    assert_memory_equal(end, "/micro/instances0", (size_t)e);
    assert_int_equal(etcd_range_end("a\xff\xff", 3, end, sizeof(end)), 1);
    assert_int_equal(end[0], 'b');
    assert_int_equal(etcd_range_end("\xff", 1, end, sizeof(end)), 1);
    assert_int_equal(end[0], 0);

    const char *k = "/micro/instances/10.0.0.1:9100";
    assert_int_equal(etcd_key_instance(k, strlen(k), p, hp, sizeof(hp)), 0);
    assert_string_equal(hp, "10.0.0.1:9100");
    k = "/micro/instances/[::1]:80";
    assert_int_equal(etcd_key_instance(k, strlen(k), p, hp, sizeof(hp)), 0);
    assert_string_equal(hp, "[::1]:80");
    const char *bad[] = {"/micro/instances/", "/micro/instances/nope", "/other/instances/h:1",
                         "/micro/instances/h:0", "/micro/instances/h:99999", "/micro/instances/a/b:1",
                         "/micro/instances/[::1]:080" /* not how we spell it */,
                         "/micro/instances/x verified=true:1", "/micro/instances/a_b:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(etcd_key_instance(bad[i], strlen(bad[i]), p, hp, sizeof(hp)), -1);
    assert_int_equal(etcd_key_instance("/micro/instances/h\0:1", 21, p, hp, sizeof(hp)), -1);

    sbuf_t b;
    char rep[ETCD_REPLICA_MAX], ns[ADDR_NS_MAX];
    sbuf_init(&b, 0, 0);
    assert_int_equal(etcd_value_encode(&b, "r-1", "pay/\"x\""), 0);
    assert_string_equal(sbuf_data(&b) ? (sbuf_addc(&b, 0), sbuf_data(&b)) : "", "{\"replica\":\"r-1\",\"ns\":\"pay/\\\"x\\\"\"}");
    assert_int_equal(etcd_value_decode(sbuf_data(&b), b.len - 1, rep, sizeof(rep), ns, sizeof(ns)), 0);
    assert_string_equal(rep, "r-1");
    assert_string_equal(ns, "pay/\"x\"");
    sbuf_free(&b);
    const char *badv[] = {"", "[]", "{}", "{\"replica\":\"r\"}", "{\"replica\":1,\"ns\":\"a\"}",
                          "{\"replica\":\"\",\"ns\":\"a\"}", "{\"replica\":\"r\",\"ns\":\"a\\u0000b\"}",
                          "{\"replica\":\"r\",\"ns\":\"a\"", "not json",
                          "{\"replica\":\"r\",\"ns\":\"a\\u202eb\"}" /* bidi control */,
                          "{\"replica\":\"r\",\"ns\":\"a\\nb\"}"};
    for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++)
        assert_int_equal(etcd_value_decode(badv[i], strlen(badv[i]), rep, sizeof(rep), ns, sizeof(ns)), -1);
}

/* ---- answers (text captured from etcd 3.4.23) ---- */

typedef struct seen {
    int     n, puts, dels;
    char    keys[8][ETCD_KEY_MAX];
    char    vals[8][64];
    uint64_t revs[8], leases[8];
} seen_t;

static int collect(void *arg, etcd_ev_t type, const etcd_kv_t *kv)
{
    seen_t *s = arg;
    if (s->n < 8) {
        memcpy(s->keys[s->n], kv->key, kv->key_len + 1);
        snprintf(s->vals[s->n], sizeof(s->vals[0]), "%.63s", kv->value);
        s->revs[s->n] = kv->mod_revision;
        s->leases[s->n] = kv->lease;
    }
    s->n++;
    if (type == ETCD_EV_PUT)
        s->puts++;
    else
        s->dels++;
    return 0;
}

static void test_range(void **state)
{
    (void)state;
    const char *t =
        "{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\","
        "\"revision\":\"3\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"Zm9w\",\"create_revision\":\"2\","
        "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"YmFy\",\"lease\":\"2324035768861124101\"},"
        "{\"key\":\"$$$\",\"value\":\"YmFy\"}],\"more\":true,\"count\":\"2\"}";
    etcd_answer_t a;
    seen_t s = {0};
    assert_int_equal(etcd_parse_range(t, strlen(t), &a, collect, &s), 0);
    assert_false(a.is_error);
    assert_true(a.hdr.revision == 3);
    assert_true(a.hdr.cluster_id == 324952591200643719ull);
    assert_true(a.more);
    assert_int_equal(a.nkvs, 2);
    assert_int_equal(a.skipped, 1); /* the key that is not base64 */
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "fop");
    assert_string_equal(s.vals[0], "bar");
    assert_true(s.revs[0] == 2);
    assert_true(s.leases[0] == 2324035768861124101ull);
    assert_memory_equal(a.last_key, "fop", 3);

    const char *empty = "{\"header\":{\"revision\":\"1\"}}";
    assert_int_equal(etcd_parse_range(empty, strlen(empty), &a, collect, &s), 0);
    assert_int_equal(a.nkvs, 0);
    assert_false(a.more);

    const char *err = "{\"error\":\"etcdserver: mvcc: required revision has been compacted\","
                      "\"message\":\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}";
    assert_int_equal(etcd_parse_range(err, strlen(err), &a, collect, &s), 0);
    assert_true(a.is_error);
    assert_int_equal(a.code, 11);
    assert_true(etcd_answer_compacted(&a));
    assert_false(etcd_answer_lease_gone(&a));

    const char *bad[] = {"", "[]", "{\"kvs\":{}}", "{\"kvs\":[1]}", "{\"header\":{\"revision\":\"x\"}}",
                         "{\"kvs\":[{\"value\":\"YmFy\"}]}", "{\"kvs\":[{\"key\":5}]}", "{\"header\":"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(etcd_parse_range(bad[i], strlen(bad[i]), &a, collect, &s), -1);
}

static void test_watch(void **state)
{
    (void)state;
    etcd_answer_t a;
    seen_t s = {0};
    const char *created = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"revision\":\"4\"},\"created\":true}}";
    assert_int_equal(etcd_parse_watch(created, strlen(created), &a, collect, &s), 0);
    assert_true(a.created);
    assert_false(a.canceled);
    assert_true(a.hdr.revision == 4);
    const char *ev = "{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":[{\"kv\":{\"key\":\"Zm9v\","
                     "\"create_revision\":\"5\",\"mod_revision\":\"5\",\"version\":\"1\",\"value\":\"Yg==\"}},"
                     "{\"type\":\"DELETE\",\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"6\"}}]}}";
    assert_int_equal(etcd_parse_watch(ev, strlen(ev), &a, collect, &s), 0);
    assert_int_equal(a.nevents, 2);
    assert_int_equal(s.puts, 1);
    assert_int_equal(s.dels, 1);
    assert_string_equal(s.vals[0], "b");
    assert_true(s.revs[1] == 6);
    const char *compacted = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"raft_term\":\"2\"},"
                            "\"canceled\":true,\"compact_revision\":\"4\"}}";
    assert_int_equal(etcd_parse_watch(compacted, strlen(compacted), &a, collect, &s), 0);
    assert_true(a.canceled);
    assert_true(a.compact_revision == 4);
    const char *err = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\","
                      "\"http_status\":\"Service Unavailable\"}}";
    assert_int_equal(etcd_parse_watch(err, strlen(err), &a, collect, &s), 0);
    assert_true(a.is_error);
    assert_int_equal(a.code, 14);
    assert_string_equal(a.err, "etcdserver: no leader");
    /* control characters from etcd never reach our log */
    const char *ctl = "{\"error\":{\"message\":\"a\\nb\\u001bc\"}}";
    assert_int_equal(etcd_parse_watch(ctl, strlen(ctl), &a, collect, &s), 0);
    assert_string_equal(a.err, "a?b?c");
    const char *bad[] = {"{}", "{\"result\":1}", "{\"result\":{\"events\":{}}}",
                         "{\"result\":{\"events\":[{\"type\":\"BOOM\",\"kv\":{\"key\":\"Zg==\"}}]}}",
                         "{\"result\":{\"events\":[{}]}}", "{\"result\":{\"compact_revision\":\"-4\"}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(etcd_parse_watch(bad[i], strlen(bad[i]), &a, collect, &s), -1);
    /* a PUT without a value does not fit: skipped, not trusted */
    const char *novalue = "{\"result\":{\"events\":[{\"kv\":{\"key\":\"Zg==\"}}]}}";
    memset(&s, 0, sizeof(s));
    assert_int_equal(etcd_parse_watch(novalue, strlen(novalue), &a, collect, &s), 0);
    assert_int_equal(a.skipped, 1);
    assert_int_equal(s.n, 0);
}

static void test_lease_answers(void **state)
{
    (void)state;
    etcd_answer_t a;
    const char *g = "{\"header\":{\"revision\":\"1\"},\"ID\":\"2324035768825719557\",\"TTL\":\"5\"}";
    assert_int_equal(etcd_parse_lease_grant(g, strlen(g), &a), 0);
    assert_true(a.lease_id == 2324035768825719557ull);
    assert_int_equal(a.ttl, 5);
    const char *nottl = "{\"ID\":\"1\"}";
    assert_int_equal(etcd_parse_lease_grant(nottl, strlen(nottl), &a), -1);
    const char *ka = "{\"result\":{\"header\":{\"revision\":\"2\"},\"ID\":\"123\",\"TTL\":\"5\"}}";
    assert_int_equal(etcd_parse_keepalive(ka, strlen(ka), &a), 0);
    assert_int_equal(a.ttl, 5);
    const char *gone = "{\"result\":{\"header\":{\"revision\":\"2\"},\"ID\":\"123\"}}";
    assert_int_equal(etcd_parse_keepalive(gone, strlen(gone), &a), 0);
    assert_int_equal(a.ttl, 0);
    const char *nf = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                     "\"etcdserver: requested lease not found\",\"code\":5}";
    assert_int_equal(etcd_parse_simple(nf, strlen(nf), &a), 0);
    assert_true(etcd_answer_lease_gone(&a));
    const char *txn = "{\"header\":{\"revision\":\"3\"},\"succeeded\":true,\"responses\":[]}";
    assert_int_equal(etcd_parse_simple(txn, strlen(txn), &a), 0);
    assert_true(a.succeeded);
    assert_true(a.hdr.revision == 3);
}

/* ---- the stream splitter, under every split ---- */

typedef struct msgs {
    int  n;
    char text[8][256];
} msgs_t;

static int on_msg(void *arg, const char *p, size_t n)
{
    msgs_t *m = arg;
    assert_true(n < sizeof(m->text[0]));
    if (m->n < 8) {
        memcpy(m->text[m->n], p, n);
        m->text[m->n][n] = 0;
    }
    m->n++;
    return 0;
}

static const char *STREAM =
    "{\"result\":{\"header\":{\"revision\":\"4\"},\"created\":true}}\n"
    "{\"result\":{\"events\":[{\"kv\":{\"key\":\"e30=\",\"value\":\"\\\"}{\\\\\"}}]}}\r\n"
    "  {\"a\":\"}\"}{\"b\":[{}]}\n";

static void test_stream_every_split(void **state)
{
    (void)state;
    size_t n = strlen(STREAM);
    msgs_t whole = {0};
    etcd_stream_t s;
    etcd_stream_init(&s, 1024);
    assert_int_equal(etcd_stream_feed(&s, STREAM, n, on_msg, &whole), 0);
    assert_int_equal(whole.n, 4);
    assert_string_equal(whole.text[2], "{\"a\":\"}\"}");
    assert_string_equal(whole.text[3], "{\"b\":[{}]}");
    etcd_stream_free(&s);
    /* every pair of cut points: three pieces */
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            msgs_t m = {0};
            etcd_stream_init(&s, 1024);
            assert_int_equal(etcd_stream_feed(&s, STREAM, i, on_msg, &m), 0);
            assert_int_equal(etcd_stream_feed(&s, STREAM + i, j - i, on_msg, &m), 0);
            assert_int_equal(etcd_stream_feed(&s, STREAM + j, n - j, on_msg, &m), 0);
            assert_int_equal(m.n, whole.n);
            for (int k = 0; k < whole.n; k++)
                assert_string_equal(m.text[k], whole.text[k]);
            etcd_stream_free(&s);
        }
    }
    /* byte by byte */
    msgs_t m = {0};
    etcd_stream_init(&s, 1024);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(etcd_stream_feed(&s, STREAM + i, 1, on_msg, &m), 0);
    assert_int_equal(m.n, 4);
    etcd_stream_free(&s);
}

static int stop_at_first(void *arg, const char *p, size_t n)
{
    (void)p, (void)n;
    (*(int *)arg)++;
    return -1;
}

static void test_stream_limits(void **state)
{
    (void)state;
    etcd_stream_t s;
    msgs_t m = {0};
    /* over the limit, whether it arrives at once or in pieces */
    etcd_stream_init(&s, 16);
    assert_int_equal(etcd_stream_feed(&s, "{\"a\":\"0123456789abcdef\"}", 24, on_msg, &m), -1);
    assert_int_equal(etcd_stream_feed(&s, "{}", 2, on_msg, &m), -1); /* stays failed */
    etcd_stream_free(&s);
    etcd_stream_init(&s, 16);
    assert_int_equal(etcd_stream_feed(&s, "{\"a\":\"01234", 11, on_msg, &m), 0);
    assert_int_equal(etcd_stream_feed(&s, "56789abcdef\"}", 13, on_msg, &m), -1);
    etcd_stream_free(&s);
    /* junk between objects */
    etcd_stream_init(&s, 1024);
    assert_int_equal(etcd_stream_feed(&s, "{} x {}", 7, on_msg, &m), -1);
    etcd_stream_reset(&s);
    assert_int_equal(etcd_stream_feed(&s, "{}", 2, on_msg, &m), 0); /* reset clears it */
    etcd_stream_free(&s);
    /* nesting deeper than the JSON scanner allows */
    etcd_stream_init(&s, 1 << 20);
    char deep[JSCAN_MAX_DEPTH + 100];
    memset(deep, '[', sizeof(deep));
    deep[0] = '{';
    assert_int_equal(etcd_stream_feed(&s, deep, sizeof(deep), on_msg, &m), -1);
    etcd_stream_free(&s);
    /* the callback can stop the stream */
    int calls = 0;
    etcd_stream_init(&s, 1024);
    assert_int_equal(etcd_stream_feed(&s, "{}{}", 4, stop_at_first, &calls), -1);
    assert_int_equal(calls, 1);
    etcd_stream_free(&s);
}

static void test_lease_bookkeeping(void **state)
{
    (void)state;
    etcd_lease_t l;
    etcd_lease_init(&l, 2000);
    assert_false(etcd_lease_valid(&l, 0));
    assert_false(etcd_lease_kept(&l, 2, 100)); /* no lease yet */
    etcd_lease_granted(&l, 77, 2, 1000);
    assert_true(etcd_lease_valid(&l, 1000));
    assert_int_equal(etcd_lease_next_keepalive(&l), 1000 + 2000 / 3);
    assert_true(etcd_lease_valid(&l, 2999));
    assert_false(etcd_lease_valid(&l, 3000)); /* a whole TTL unconfirmed */
    assert_true(etcd_lease_kept(&l, 2, 2500));
    assert_true(etcd_lease_valid(&l, 4000));
    assert_int_equal(etcd_lease_next_keepalive(&l), 2500 + 666);
    assert_false(etcd_lease_kept(&l, 0, 2600)); /* etcd: TTL 0 = gone */
    assert_true(l.id == 0);
    assert_false(etcd_lease_valid(&l, 2600));
    /* etcd granting a longer TTL never lengthens ours; a shorter one shortens it */
    etcd_lease_init(&l, 2000);
    etcd_lease_granted(&l, 5, 3, 0);
    assert_int_equal(l.ttl_ms, 2000);
    etcd_lease_init(&l, 10000);
    etcd_lease_granted(&l, 5, 4, 0);
    assert_int_equal(l.ttl_ms, 4000);
    etcd_lease_drop(&l);
    assert_false(etcd_lease_valid(&l, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_lease_answers),
        cmocka_unit_test(test_stream_every_split),
        cmocka_unit_test(test_stream_limits),
        cmocka_unit_test(test_lease_bookkeeping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
