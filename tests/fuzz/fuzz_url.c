/* fuzz_url: the url check (libmicro/url.c) and the JSON strings we emit
 * (sbuf_add_json_str) on arbitrary bytes.
 * - url_check never reads out of bounds, and whatever it accepts is a request
 *   target no parser can split or walk out of: checked here by a second, plain
 *   implementation that decodes every %HH and looks at the result (visible
 *   ASCII only in the text, no decoded control byte, no "." or ".." segment
 *   between '/' or '\' in the decoded path, no '#').
 * - sbuf_add_json_str of any bytes is a JSON string jscan accepts (valid UTF-8
 *   included: bytes that are not UTF-8 became U+FFFD), and when the input was
 *   valid UTF-8 without controls it reads back as the same bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "sbuf.h"
#include "url.h"

#include "fuzz_check.h"

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void check_accepted(const char *p, size_t n)
{
    CHECK(n >= 1 && n <= URL_MAX && p[0] == '/');
    /* decode everything, remembering where the raw '?' starts the query */
    unsigned char *d = malloc(n + 1);
    CHECK(d);
    size_t dn = 0, qpos = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        CHECK(c > 0x20 && c < 0x7f && c != '#');
        if (c == '%') {
            CHECK(i + 2 < n);
            int hi = hex((unsigned char)p[i + 1]), lo = hex((unsigned char)p[i + 2]);
            CHECK(hi >= 0 && lo >= 0);
            c = (unsigned char)(hi << 4 | lo);
            CHECK(c >= 0x20 && c != 0x7f);
            i += 2;
        } else if (c == '?' && qpos == (size_t)-1) {
            qpos = dn;
        }
        d[dn++] = c;
    }
    size_t pathlen = qpos == (size_t)-1 ? dn : qpos;
    size_t seg = 0;
    for (size_t i = 0; i <= pathlen; i++) {
        if (i == pathlen || d[i] == '/' || d[i] == '\\') {
            size_t len = i - seg;
            bool dots = len && len <= 2 && d[seg] == '.' && (len == 1 || d[seg + 1] == '.');
            CHECK(!dots);
            seg = i + 1;
        }
    }
    free(d);
}

static bool plain_utf8(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\')
            return false;
    jspan_t root;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    sbuf_addc(&b, '"');
    sbuf_add(&b, p, n);
    sbuf_addc(&b, '"');
    bool ok = !b.err && jscan_validate(sbuf_data(&b), b.len, &root, NULL) == 0;
    sbuf_free(&b);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1); /* a private copy: over-reads are caught */
    CHECK(p);
    memcpy(p, data, size);
    int rc = url_check(p, size);
    CHECK(rc <= URL_OK && rc >= URL_E_DOT);
    CHECK(url_strerror(rc) != NULL);
    if (rc == URL_OK)
        check_accepted(p, size);

    sbuf_t b;
    sbuf_init(&b, 0, 0);
    CHECK(sbuf_add_json_str(&b, p, size) == 0);
    jspan_t root;
    CHECK(jscan_validate(sbuf_data(&b), b.len, &root, NULL) == 0);
    CHECK(root.t == JT_STRING);
    if (plain_utf8(data, size)) {
        char *back = malloc(size + 1);
        size_t blen = 0;
        CHECK(back);
        CHECK(jstr_get(root, back, size + 1, &blen) == 0);
        CHECK(blen == size && !memcmp(back, data, size));
        free(back);
    }
    sbuf_free(&b);
    free(p);
    return 0;
}
