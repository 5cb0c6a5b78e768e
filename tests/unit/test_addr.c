/* Unit tests for libmicro/addr.c: "host:port" keys (docs/PROTOCOL.md §2.3, IPv6 bracketed,
 * split at the last ':'), ports, and the handshake path both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "addr.h"

static int key(const char *s, addr_t *a)
{
    memset(a, 0x5a, sizeof(*a));
    return addr_parse_key(s, strlen(s), a);
}

static void keys_ipv4_and_names(void **state)
{
    (void)state;
    addr_t a;
    assert_int_equal(key("10.0.0.7:9100", &a), ADDR_OK);
    assert_string_equal(a.host, "10.0.0.7");
    assert_int_equal(a.port, 9100);
    assert_int_equal(key("registry.default.svc:1", &a), ADDR_OK);
    assert_string_equal(a.host, "registry.default.svc");
    assert_int_equal(a.port, 1);
    assert_int_equal(key("h:65535", &a), ADDR_OK);
    assert_int_equal(a.port, 65535);
    /* only the first len bytes count */
    assert_int_equal(addr_parse_key("h:80garbage", 4, &a), ADDR_OK);
    assert_int_equal(a.port, 80);
}

static void keys_ipv6(void **state)
{
    (void)state;
    addr_t a;
    assert_int_equal(key("[::1]:9100", &a), ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 9100);
    assert_int_equal(key("[fe80::1:2]:443", &a), ADDR_OK); /* split at the LAST ':' */
    assert_string_equal(a.host, "fe80::1:2");
    assert_int_equal(a.port, 443);
    /* unbracketed IPv6, split at the last ':' as the reference's parseAddressKey
     * does: how a Node registry keys a peer that announced "::1", and how Node
     * consumers write their exclude lists */
    assert_int_equal(key("::1:9100", &a), ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 9100);
    assert_int_equal(key("fe80::1:443", &a), ADDR_OK);
    assert_string_equal(a.host, "fe80::1");
    assert_int_equal(a.port, 443);
    assert_int_equal(key("fe80::1%eth0:443", &a), ADDR_OK);
    assert_string_equal(a.host, "fe80::1%eth0");
    /* ... but only when what is left is an IPv6 address */
    assert_int_equal(key("fe80::1", &a), ADDR_E_SYNTAX); /* not host "fe80:" port 1 */
    assert_int_equal(key("::1", &a), ADDR_E_SYNTAX);
    assert_int_equal(key("a:b:80", &a), ADDR_E_SYNTAX);
    assert_int_equal(key("1.2.3.4:5:80", &a), ADDR_E_SYNTAX);
    assert_int_equal(key("[::1]x:80", &a), ADDR_E_SYNTAX);
    /* brackets without a port */
    assert_int_not_equal(key("[::1]", &a), ADDR_OK);
    assert_int_equal(key("[]:80", &a), ADDR_E_HOST);
    assert_int_equal(key("[a]b]:80", &a), ADDR_E_HOST);
}

static void keys_bad_ports(void **state)
{
    (void)state;
    addr_t a;
    assert_int_equal(key("h:0", &a), ADDR_E_PORT);
    assert_int_equal(key("h:65536", &a), ADDR_E_PORT);
    assert_int_equal(key("h:99999", &a), ADDR_E_PORT);
    assert_int_equal(key("h:123456", &a), ADDR_E_PORT);
    assert_int_equal(key("h:http", &a), ADDR_E_PORT);
    assert_int_equal(key("h:80a", &a), ADDR_E_PORT);
    assert_int_equal(key("h:-1", &a), ADDR_E_PORT);
    assert_int_equal(key("h:+80", &a), ADDR_E_PORT);
    assert_int_equal(key("h: 80", &a), ADDR_E_PORT);
    assert_int_equal(key("h:", &a), ADDR_E_PORT);
    assert_int_equal(key("[::1]:", &a), ADDR_E_PORT);
    assert_int_equal(key("h", &a), ADDR_E_SYNTAX);
    assert_int_equal(key("", &a), ADDR_E_SYNTAX);
    assert_int_equal(key(":80", &a), ADDR_E_HOST);
}

static void keys_bad_hosts(void **state)
{
    (void)state;
    addr_t a;
    char long_key[ADDR_HOST_MAX + 16];
    memset(long_key, 'h', ADDR_HOST_MAX);
    strcpy(long_key + ADDR_HOST_MAX, ":80");
    assert_int_equal(key(long_key, &a), ADDR_E_HOST);          /* 256-byte host */
    assert_int_equal(key(long_key + 1, &a), ADDR_OK);          /* 255 bytes fit */
    assert_int_equal(strlen(a.host), ADDR_HOST_MAX - 1);
    assert_int_equal(key("a/b:80", &a), ADDR_E_HOST);
}

static void ports(void **state)
{
    (void)state;
    assert_int_equal(addr_parse_port("1", 1), 1);
    assert_int_equal(addr_parse_port("65535", 5), 65535);
    assert_int_equal(addr_parse_port("08080", 5), 8080);
    assert_int_equal(addr_parse_port("0", 1), 0);
    assert_int_equal(addr_parse_port("65536", 5), 0);
    assert_int_equal(addr_parse_port("", 0), 0);
    assert_int_equal(addr_parse_port("1e3", 3), 0);
    assert_int_equal(addr_parse_port("000080", 6), 0); /* too long */
}

static void format_key_round_trip(void **state)
{
    (void)state;
    char out[ADDR_KEY_MAX];
    addr_t a;
    assert_int_equal(addr_format_key("10.1.2.3", 9100, out, sizeof(out)), 13);
    assert_string_equal(out, "10.1.2.3:9100");
    assert_int_equal(addr_format_key("::1", 9100, out, sizeof(out)), 10);
    assert_string_equal(out, "[::1]:9100");
    assert_int_equal(key(out, &a), ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 9100);
    assert_int_equal(addr_format_key("host", 80, out, 8), 7);
    assert_int_equal(addr_format_key("host", 80, out, 7), -1); /* no room for the NUL */
    char host[ADDR_HOST_MAX];
    memset(host, 'a', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    assert_true(addr_format_key(host, 65535, out, sizeof(out)) > 0); /* the max fits */
    host[0] = ':';
    assert_true(addr_format_key(host, 65535, out, sizeof(out)) > 0); /* even bracketed */
}

static void reference_form(void **state)
{
    (void)state;
    char out[ADDR_KEY_MAX];
    addr_t a;
    assert_int_equal(addr_key_reference_form("[::1]:9100", out, sizeof(out)), 8);
    assert_string_equal(out, "::1:9100");
    /* the two forms name the same peer */
    assert_int_equal(key(out, &a), ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 9100);
    assert_int_equal(addr_key_reference_form("[fe80::1:2]:443", out, sizeof(out)), 13);
    assert_string_equal(out, "fe80::1:2:443");
    /* nothing to write for IPv4 and names (one form only) */
    assert_int_equal(addr_key_reference_form("10.0.0.1:80", out, sizeof(out)), -1);
    assert_int_equal(addr_key_reference_form("h:80", out, sizeof(out)), -1);
    assert_int_equal(addr_key_reference_form("[::1]", out, sizeof(out)), -1);
    assert_int_equal(addr_key_reference_form("", out, sizeof(out)), -1);
    assert_int_equal(addr_key_reference_form("[::1]:9100", out, 8), -1); /* no room for the NUL */
    assert_int_equal(addr_key_reference_form("[::1]:9100", out, 9), 8);
}

static int unbracket(const char *h, char *out)
{
    return addr_host_unbracket(h, strlen(h), out, ADDR_HOST_MAX);
}

static void hosts_unbracketed(void **state)
{
    (void)state;
    char out[ADDR_HOST_MAX];
    assert_int_equal(unbracket("[::1]", out), 3);
    assert_string_equal(out, "::1");
    assert_int_equal(unbracket("::1", out), 3);
    assert_string_equal(out, "::1");
    assert_int_equal(unbracket("[fe80::1%eth0]", out), 12);
    assert_string_equal(out, "fe80::1%eth0");
    assert_int_equal(unbracket("10.0.0.7", out), 8);
    assert_string_equal(out, "10.0.0.7");
    assert_int_equal(unbracket("registry.default.svc", out), 20);
    /* brackets are for IPv6 literals; stray or unbalanced ones are refused */
    assert_int_equal(unbracket("[10.0.0.7]", out), ADDR_E_HOST);
    assert_int_equal(unbracket("[host]", out), ADDR_E_HOST);
    assert_int_equal(unbracket("[]", out), ADDR_E_HOST);
    assert_int_equal(unbracket("[[::1]]", out), ADDR_E_HOST);
    assert_int_equal(unbracket("[::1", out), ADDR_E_HOST);
    assert_int_equal(unbracket("::1]", out), ADDR_E_HOST);
    assert_int_equal(unbracket("", out), ADDR_E_HOST);
    assert_int_equal(addr_host_unbracket("[::1]", 5, out, 3), ADDR_E_HOST); /* no room */
    assert_int_equal(addr_host_unbracket("[::1]", 5, out, 4), 3);
    /* only n bytes count */
    assert_int_equal(addr_host_unbracket("[::1]:80", 5, out, sizeof(out)), 3);
    assert_string_equal(out, "::1");
    assert_true(addr_is_ipv6("::ffff:10.0.0.1", 15));
    assert_false(addr_is_ipv6("10.0.0.1", 8));
    assert_false(addr_is_ipv6("fe80::1%", 8));
    assert_false(addr_is_ipv6("fe80::1%a b", 11));
}

static int hs(const char *path, addr_t *a, char *ns)
{
    const char *p = NULL;
    size_t n = 0;
    memset(a, 0x5a, sizeof(*a));
    int rc = addr_parse_handshake(path, strlen(path), a, &p, &n);
    if (rc == ADDR_OK) {
        assert_true(p >= path && p + n <= path + strlen(path));
        memcpy(ns, p, n);
        ns[n] = '\0';
    }
    return rc;
}

static void handshake_parse(void **state)
{
    (void)state;
    addr_t a;
    char ns[ADDR_NS_MAX];
    assert_int_equal(hs("/10.1.2.3/9100/payments", &a, ns), ADDR_OK);
    assert_string_equal(a.host, "10.1.2.3");
    assert_int_equal(a.port, 9100);
    assert_string_equal(ns, "payments");
    /* the namespace may contain '/' */
    assert_int_equal(hs("/10.1.2.3/9100/a/b", &a, ns), ADDR_OK);
    assert_string_equal(ns, "a/b");
    assert_int_equal(hs("/10.1.2.3/9100/a//b", &a, ns), ADDR_OK); /* ["a","","b"].join */
    assert_string_equal(ns, "a//b");
    /* the query string is ignored (it may carry e.g. a token) */
    assert_int_equal(hs("/10.1.2.3/9100/a/b?token=x/y&z=1", &a, ns), ADDR_OK);
    assert_string_equal(ns, "a/b");
    assert_int_equal(a.port, 9100);
    /* one trailing and one leading '/' are stripped, and only one */
    assert_int_equal(hs("/10.1.2.3/9100/a/b/", &a, ns), ADDR_OK);
    assert_string_equal(ns, "a/b");
    assert_int_equal(hs("/10.1.2.3/9100/a/b/?q", &a, ns), ADDR_OK);
    assert_string_equal(ns, "a/b");
    assert_int_equal(hs("/10.1.2.3/9100/a/b//", &a, ns), ADDR_OK);
    assert_string_equal(ns, "a/b/");
    assert_int_equal(hs("10.1.2.3/9100/ns", &a, ns), ADDR_OK);
    assert_string_equal(a.host, "10.1.2.3");
    assert_string_equal(ns, "ns");
    /* IPv6 callers: brackets optional in the path */
    assert_int_equal(hs("/[::1]/9100/ns", &a, ns), ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(hs("/::1/9100/ns", &a, ns), ADDR_OK);
    assert_string_equal(a.host, "::1");
}

static void handshake_errors(void **state)
{
    (void)state;
    addr_t a;
    char ns[ADDR_NS_MAX];
    assert_int_equal(hs("", &a, ns), ADDR_E_SEGMENTS);
    assert_int_equal(hs("/", &a, ns), ADDR_E_SEGMENTS);
    assert_int_equal(hs("/10.1.2.3", &a, ns), ADDR_E_SEGMENTS);
    assert_int_equal(hs("/10.1.2.3/9100", &a, ns), ADDR_E_SEGMENTS);
    assert_int_equal(hs("/10.1.2.3/9100/", &a, ns), ADDR_E_SEGMENTS); /* trailing '/' stripped */
    assert_int_equal(hs("/10.1.2.3/9100?x=/a/b", &a, ns), ADDR_E_SEGMENTS); /* query cut first */
    assert_int_equal(hs("//9100/ns", &a, ns), ADDR_E_HOST);
    assert_int_equal(hs("/10.1.2.3//ns", &a, ns), ADDR_E_PORT);
    assert_int_equal(hs("/10.1.2.3/0/ns", &a, ns), ADDR_E_PORT);
    assert_int_equal(hs("/10.1.2.3/65536/ns", &a, ns), ADDR_E_PORT);
    assert_int_equal(hs("/10.1.2.3/http/ns", &a, ns), ADDR_E_PORT);
    /* three segments but an empty namespace: refused, as documented in addr.h */
    assert_int_equal(hs("/10.1.2.3/9100//", &a, ns), ADDR_E_NAMESPACE);
    assert_int_equal(hs("/10.1.2.3/9100//?q=1", &a, ns), ADDR_E_NAMESPACE);
    char long_ns[ADDR_NS_MAX + 32];
    strcpy(long_ns, "/h/1/");
    memset(long_ns + 5, 'n', ADDR_NS_MAX);
    long_ns[5 + ADDR_NS_MAX] = '\0';
    assert_int_equal(hs(long_ns, &a, ns), ADDR_E_NAMESPACE);
    long_ns[5 + ADDR_NS_MAX - 1] = '\0'; /* 511 bytes fit */
    assert_int_equal(hs(long_ns, &a, ns), ADDR_OK);
    /* only len bytes count */
    const char *p;
    size_t n;
    assert_int_equal(addr_parse_handshake("/h/1/ns", 4, &a, &p, &n), ADDR_E_SEGMENTS);
}

static void handshake_build_round_trip(void **state)
{
    (void)state;
    char path[600], ns[ADDR_NS_MAX];
    addr_t a;
    int n = addr_build_handshake("10.1.2.3", 9100, "a/b", NULL, path, sizeof(path));
    assert_int_equal(n, (int)strlen("/10.1.2.3/9100/a/b"));
    assert_string_equal(path, "/10.1.2.3/9100/a/b");
    assert_int_equal(hs(path, &a, ns), ADDR_OK);
    assert_string_equal(a.host, "10.1.2.3");
    assert_int_equal(a.port, 9100);
    assert_string_equal(ns, "a/b");

    n = addr_build_handshake("::1", 1, "payments", "token=abc", path, sizeof(path));
    assert_string_equal(path, "/::1/1/payments?token=abc");
    assert_int_equal(n, (int)strlen(path));
    assert_int_equal(hs(path, &a, ns), ADDR_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 1);
    assert_string_equal(ns, "payments");

    assert_int_equal(addr_build_handshake("h", 1, "ns", NULL, path, 7), -1); /* "/h/1/ns" + NUL */
    assert_int_equal(addr_build_handshake("h", 1, "ns", NULL, path, 8), 7);
}

static void host_validation(void **state)
{
    (void)state;
    static const char *const good[] = {
        "10.1.2.3", "127.0.0.1", "0.0.0.0", "::1", "::", "fe80::1", "2001:db8::a:b",
        "::ffff:10.0.0.1", "fe80::1%eth0", "h", "localhost", "a-b.c-d.example", "EXAMPLE.com",
        "payments.default.svc.cluster.local", "pod-10-1-2-3.ns.pod", "x.com.", "1a.b", "a.1b",
        "0123456789012345678901234567890123456789012345678901234567890ab.c",
    };
    static const char *const bad[] = {
        "", " ", "host with space", "h\t", "h\n", "evil.com ", "a=b", "x\"y", "a_b", "-a", "a-",
        "a..b", ".a", "..", ".", "a.-b", "1.2.3.999", "1.2.3", "10.0.0.256", "256", "::1 ",
        "::g", "fe80::1%", "fe80::1%eth0 x", "fe80::1%0123456789abcdef", "1.2.3.4%eth0",
        "h\xff", "h\xc3\xa9", "a/b", "[::1]", "a:b", "a\\b", "a%20b",
        "01234567890123456789012345678901234567890123456789012345678901234.c", /* 64 */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!addr_host_valid(good[i], strlen(good[i])))
            fail_msg("refused good host \"%s\"", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (addr_host_valid(bad[i], strlen(bad[i])))
            fail_msg("accepted bad host \"%s\"", bad[i]);
    /* 253 bytes in all, not more; only n bytes count; a NUL inside is refused */
    char name[300];
    memset(name, 'a', sizeof(name));
    for (int i = 50; i < 300; i += 51)
        name[i] = '.';
    assert_true(addr_host_valid(name, 253));
    assert_false(addr_host_valid(name, 254));
    assert_true(addr_host_valid("hostxyz", 4));
    assert_false(addr_host_valid("ho\0st", 5));
}

static void namespace_validation(void **state)
{
    (void)state;
    assert_true(addr_ns_valid("payments", 8));
    assert_true(addr_ns_valid("a/b", 3));
    assert_true(addr_ns_valid("pay ments verified=true level=error", 35)); /* safe: just a name */
    assert_true(addr_ns_valid("x\" forged=\"1", 12));
    assert_true(addr_ns_valid("日本", strlen("日本")));
    assert_false(addr_ns_valid("", 0));
    assert_false(addr_ns_valid("pay\xffments", 9));
    assert_false(addr_ns_valid("pay\xc3", 4));             /* cut sequence */
    assert_false(addr_ns_valid("\xc0\xaf", 2));             /* overlong '/' */
    assert_false(addr_ns_valid("\xed\xa0\x80", 3));         /* surrogate */
    assert_false(addr_ns_valid("a\x01" "b", 3));
    assert_false(addr_ns_valid("a\nb", 3));
    assert_false(addr_ns_valid("a\x7f", 2));
    assert_false(addr_ns_valid("a\0b", 3));
    assert_false(addr_ns_valid("a\xc2\x85", 3));            /* C1 NEL */
    assert_false(addr_ns_valid("a\xe2\x80\xa8", 4));        /* U+2028 */
    assert_false(addr_ns_valid("a\xe2\x80\xae" "b", 5));       /* U+202E */
    assert_false(addr_ns_valid("a\xe2\x81\xa6", 4));        /* U+2066 */
    char big[ADDR_NS_MAX];
    memset(big, 'n', sizeof(big));
    assert_true(addr_ns_valid(big, ADDR_NS_MAX - 1));
    assert_false(addr_ns_valid(big, ADDR_NS_MAX));
}

static void handshake_refuses_forged_identities(void **state)
{
    (void)state;
    addr_t a;
    char ns[ADDR_NS_MAX];
    /* lws has already decoded %xx when we see the path */
    assert_int_equal(hs("/host with space/9100/ns", &a, ns), ADDR_E_HOST);
    assert_int_equal(hs("/10.0.0.1 verified=true/9100/ns", &a, ns), ADDR_E_HOST);
    assert_int_equal(hs("/x\"y/9100/ns", &a, ns), ADDR_E_HOST);
    assert_int_equal(hs("/evil.com\n/9100/ns", &a, ns), ADDR_E_HOST);
    assert_int_equal(hs("/[a b]/9100/ns", &a, ns), ADDR_E_HOST);
    assert_int_equal(hs("/10.1.2.3/9100/pay\xffments", &a, ns), ADDR_E_NAMESPACE);
    assert_int_equal(hs("/10.1.2.3/9100/a\x1b[31mred", &a, ns), ADDR_E_NAMESPACE);
    assert_int_equal(hs("/10.1.2.3/9100/a\xe2\x80\xae" "b", &a, ns), ADDR_E_NAMESPACE);
    assert_int_equal(hs("/10.1.2.3/9100/pay ments verified=true level=error", &a, ns), ADDR_OK);
    assert_string_equal(ns, "pay ments verified=true level=error");
    assert_int_equal(hs("/payments.default.svc/9100/ns", &a, ns), ADDR_OK);
    assert_string_equal(a.host, "payments.default.svc");
    assert_int_equal(hs("/[fe80::1%eth0]/9100/ns", &a, ns), ADDR_OK);
    assert_string_equal(a.host, "fe80::1%eth0");
}

static void strerror_names_every_code(void **state)
{
    (void)state;
    int codes[] = {ADDR_OK, ADDR_E_SYNTAX, ADDR_E_PORT, ADDR_E_HOST, ADDR_E_SEGMENTS,
                   ADDR_E_NAMESPACE};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_string_not_equal(addr_strerror(codes[i]), "unknown error");
    assert_string_equal(addr_strerror(-100), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_ipv4_and_names),
        cmocka_unit_test(keys_ipv6),
        cmocka_unit_test(keys_bad_ports),
        cmocka_unit_test(keys_bad_hosts),
        cmocka_unit_test(ports),
        cmocka_unit_test(format_key_round_trip),
        cmocka_unit_test(reference_form),
        cmocka_unit_test(hosts_unbracketed),
        cmocka_unit_test(handshake_parse),
        cmocka_unit_test(handshake_errors),
        cmocka_unit_test(handshake_build_round_trip),
        cmocka_unit_test(host_validation),
        cmocka_unit_test(namespace_validation),
        cmocka_unit_test(handshake_refuses_forged_identities),
        cmocka_unit_test(strerror_names_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
