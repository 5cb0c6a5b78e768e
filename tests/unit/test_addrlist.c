/* Unit tests for libmicro/addrlist.c and cfg_check_hostport_list: the sidecar's
 * --registry list ("a:9000,b:9000"), entry by entry, and its limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "addrlist.h"
#include "config.h"

static int parse(const char *s, addr_list_t *l, size_t *bad)
{
    memset(l, 0x5a, sizeof(*l));
    return addr_list_parse(s, strlen(s), l, bad);
}

static void one_and_several(void **state)
{
    (void)state;
    addr_list_t l;
    size_t bad = 99;
    assert_int_equal(parse("registry:9000", &l, &bad), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].host, "registry");
    assert_int_equal(l.v[0].port, 9000);
    assert_int_equal(parse("10.0.0.1:9000,10.0.0.2:9001,[::1]:9002", &l, NULL), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[1].host, "10.0.0.2");
    assert_int_equal(l.v[1].port, 9001);
    assert_string_equal(l.v[2].host, "::1");
    /* blanks around entries do not count */
    assert_int_equal(parse(" a:1 ,\tb:2\t", &l, NULL), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].host, "a");
    assert_string_equal(l.v[1].host, "b");
    /* only len bytes count */
    assert_int_equal(addr_list_parse("a:1,b:2", 3, &l, NULL), 0);
    assert_int_equal(l.n, 1);
}

static void errors_name_the_entry(void **state)
{
    (void)state;
    addr_list_t l;
    size_t bad;
    assert_int_equal(parse("", &l, &bad), ADDR_LIST_E_EMPTY);
    assert_int_equal(bad, 0);
    assert_int_equal(parse(" ", &l, &bad), ADDR_LIST_E_EMPTY);
    assert_int_equal(parse("a:1,,b:2", &l, &bad), ADDR_LIST_E_EMPTY);
    assert_int_equal(bad, 1);
    assert_int_equal(parse("a:1,", &l, &bad), ADDR_LIST_E_EMPTY);
    assert_int_equal(bad, 1);
    assert_int_equal(parse(",a:1", &l, &bad), ADDR_LIST_E_EMPTY);
    assert_int_equal(bad, 0);
    assert_int_equal(parse("a:1,b", &l, &bad), ADDR_E_SYNTAX);
    assert_int_equal(bad, 1);
    assert_int_equal(parse("a:1,b:0", &l, &bad), ADDR_E_PORT);
    assert_int_equal(parse("a:1,b:2,a:1", &l, &bad), ADDR_LIST_E_DUP);
    assert_int_equal(bad, 2);
    /* the same host on another port is another address */
    assert_int_equal(parse("a:1,a:2", &l, &bad), 0);
}

static void at_most_max_entries(void **state)
{
    (void)state;
    char s[ADDR_LIST_MAX * 16 + 16] = "";
    addr_list_t l;
    size_t bad, off = 0;
    for (int i = 0; i < ADDR_LIST_MAX; i++)
        off += (size_t)snprintf(s + off, sizeof(s) - off, "%sh:%d", i ? "," : "", 1000 + i);
    assert_int_equal(parse(s, &l, &bad), 0);
    assert_int_equal(l.n, ADDR_LIST_MAX);
    assert_int_equal(l.v[ADDR_LIST_MAX - 1].port, 1000 + ADDR_LIST_MAX - 1);
    snprintf(s + off, sizeof(s) - off, ",h:1");
    l.n = 7;
    assert_int_equal(addr_list_parse(s, strlen(s), &l, &bad), ADDR_LIST_E_TOO_MANY);
    assert_int_equal(bad, ADDR_LIST_MAX);
    assert_int_equal(l.n, 7); /* untouched on error */
}

static void config_check(void **state)
{
    (void)state;
    char err[200];
    assert_int_equal(cfg_check_hostport_list("registry.mesh.svc:9000", err, sizeof(err)), 0);
    assert_int_equal(cfg_check_hostport_list("r-0.r:9000, r-1.r:9000,[::1]:9000", err, sizeof(err)), 0);
    assert_int_equal(cfg_check_hostport_list("a:1,b", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "entry 2: missing :port"));
    assert_int_equal(cfg_check_hostport_list("a:1,::1:9000", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "entry 2: an IPv6 address needs brackets"));
    assert_int_equal(cfg_check_hostport_list("a:1,b:1,a:1", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "entry 3: the same address twice"));
    assert_int_equal(cfg_check_hostport_list("a:1,", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "entry 2: empty entry"));
    assert_int_equal(cfg_check_hostport_list("bad host:1", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "entry 1: invalid host name"));
    assert_int_equal(cfg_check_hostport_list(NULL, err, sizeof(err)), -1);
}

static void strerror_names_every_code(void **state)
{
    (void)state;
    int codes[] = {ADDR_LIST_E_EMPTY, ADDR_LIST_E_TOO_MANY, ADDR_LIST_E_DUP, ADDR_E_SYNTAX, ADDR_E_PORT,
                   ADDR_E_HOST};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_string_not_equal(addr_list_strerror(codes[i]), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_and_several),
        cmocka_unit_test(errors_name_the_entry),
        cmocka_unit_test(at_most_max_entries),
        cmocka_unit_test(config_check),
        cmocka_unit_test(strerror_names_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
