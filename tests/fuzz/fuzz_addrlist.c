/* fuzz_addrlist: addr_list_parse and cfg_check_hostport_list (the sidecar's
 * --registry list) on arbitrary bytes. A parsed list has 1..ADDR_LIST_MAX
 * well-formed entries without duplicates; whatever the config check accepts, the
 * parser accepts too (main.c relies on it), and such a list survives a
 * format -> parse round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addrlist.h"
#include "config.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size + 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    p[size] = '\0';
    addr_list_t l, r;
    size_t bad = 12345;
    char err[256];
    int rc = addr_list_parse(p, size, &l, &bad);
    int cfg_ok = !memchr(p, '\0', size) && cfg_check_hostport_list(p, err, sizeof(err)) == 0;
    CHECK(!cfg_ok || rc == 0);
    CHECK(rc <= 0);
    if (rc) {
        CHECK(bad < ADDR_LIST_MAX + 1);
        CHECK(strcmp(addr_list_strerror(rc), "unknown error") != 0);
    } else {
        CHECK(l.n >= 1 && l.n <= ADDR_LIST_MAX);
        char joined[ADDR_LIST_MAX * (ADDR_KEY_MAX + 1)];
        size_t off = 0;
        for (size_t i = 0; i < l.n; i++) {
            CHECK(l.v[i].port >= 1 && l.v[i].port <= 65535);
            CHECK(strnlen(l.v[i].host, ADDR_HOST_MAX) < ADDR_HOST_MAX);
            for (size_t k = 0; k < i; k++)
                CHECK(l.v[k].port != l.v[i].port || strcmp(l.v[k].host, l.v[i].host));
            if (off)
                joined[off++] = ',';
            int n = addr_format_key(l.v[i].host, l.v[i].port, joined + off, sizeof(joined) - off);
            CHECK(n > 0);
            off += (size_t)n;
        }
        if (cfg_ok) {
            CHECK(addr_list_parse(joined, off, &r, NULL) == 0);
            CHECK(r.n == l.n);
            for (size_t i = 0; i < l.n; i++)
                CHECK(r.v[i].port == l.v[i].port && !strcmp(r.v[i].host, l.v[i].host));
        }
    }
    free(p);
    return 0;
}
