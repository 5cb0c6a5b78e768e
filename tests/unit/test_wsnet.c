/* Unit tests for wsnet_listen (libmicro/wsconn.c): which address a listener
 * really takes. "::" is dual stack (IPv4 and IPv6 clients both connect), falls
 * back to 0.0.0.0 on a host that cannot open IPv6 sockets (simulated: this file's
 * socket() refuses AF_INET6 when told to, and lws calls it through the PLT), and
 * an IPv4-only listener gets a dial vhost that can reach IPv6 peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loop.h"
#include "wsconn.h"

static bool no_ipv6;

/* Interposes libc's socket() for this process (lws included). */
int socket(int domain, int type, int protocol)
{
    if (no_ipv6 && domain == AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return (int)syscall(SYS_socket, domain, type, protocol);
}

static struct lws_protocols protocols[] = {
    {"test", lws_callback_http_dummy, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* A port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Whether a TCP connect to host:port succeeds (the kernel completes it from the
 * listen backlog, so the loop need not run). */
static bool connects(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        sl = sizeof(*a);
    }
    int fd = (int)syscall(SYS_socket, ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&ss, sl) == 0;
    close(fd);
    return ok;
}

static bool have_ipv6_loopback(void)
{
    int fd = (int)syscall(SYS_socket, AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void dual_stack(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    struct lws_context *ctx = loop_create(false);
    wsnet_t n = {.ctx = ctx};
    int port = free_port();
    assert_int_equal(wsnet_listen(&n, "t", "::", port, protocols), 0);
    assert_string_equal(n.bound, "::");
    assert_true(connects("127.0.0.1", port)); /* IPV6_V6ONLY off */
    assert_true(connects("::1", port));
    assert_null(n.dial_vhost); /* the listener's vhost dials both families */
    assert_ptr_equal(wsnet_dial_vhost(&n), n.vhost);
    loop_destroy(ctx);
}

static void ipv4_only_bind_dials_ipv6(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    struct lws_context *ctx = loop_create(false);
    wsnet_t n = {.ctx = ctx};
    int port = free_port();
    assert_int_equal(wsnet_listen(&n, "t", "127.0.0.1", port, protocols), 0);
    assert_string_equal(n.bound, "127.0.0.1");
    assert_true(connects("127.0.0.1", port));
    assert_false(connects("::1", port));
    /* outbound connections go through a vhost with IPv6 on */
    assert_non_null(n.dial_vhost);
    assert_ptr_equal(wsnet_dial_vhost(&n), n.dial_vhost);
    loop_destroy(ctx);
}

static void no_ipv6_falls_back_to_ipv4(void **state)
{
    (void)state;
    no_ipv6 = true;
    struct lws_context *ctx = loop_create(false);
    wsnet_t n = {.ctx = ctx};
    int port = free_port();
    assert_int_equal(wsnet_listen(&n, "t", "::", port, protocols), 0);
    assert_string_equal(n.bound, "0.0.0.0");
    assert_true(connects("127.0.0.1", port));
    assert_null(n.dial_vhost); /* no IPv6 to dial either */
    loop_destroy(ctx);
    /* an explicit IPv6 address cannot fall back: that is an error */
    ctx = loop_create(false);
    wsnet_t m = {.ctx = ctx};
    assert_int_not_equal(wsnet_listen(&m, "t", "::1", free_port(), protocols), 0);
    loop_destroy(ctx);
    no_ipv6 = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dual_stack),
        cmocka_unit_test(ipv4_only_bind_dials_ipv6),
        cmocka_unit_test(no_ipv6_falls_back_to_ipv4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
