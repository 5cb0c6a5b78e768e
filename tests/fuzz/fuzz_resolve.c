/* fuzz_resolve: resolve_numeric on arbitrary bytes, the check that decides
 * whether a host skips the resolver threads. What it calls numeric must be
 * exactly an IPv4 or IPv6 literal (IPv6 optionally in brackets), its output the
 * literal without brackets, which getaddrinfo(AI_NUMERICHOST) accepts: a name
 * taken for numeric would be handed to lws, which would resolve it on the loop. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "resolve.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char host[300], out[RESOLVE_ADDR_MAX];
    if (size >= sizeof(host))
        return 0;
    memcpy(host, data, size);
    host[size] = '\0'; /* a NUL inside ends the string, as for any C caller */
    size_t n = strlen(host);
    bool numeric = resolve_numeric(host, out, sizeof(out));

    /* the oracle: inet_pton on the text, or on what is inside [ ] for IPv6 */
    unsigned char buf[16];
    bool want;
    const char *inner = host;
    char tmp[300];
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        inner = tmp;
        want = inet_pton(AF_INET6, tmp, buf) == 1;
    } else {
        want = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
    }
    CHECK(numeric == want);
    if (!numeric)
        return 0;
    CHECK(!strcmp(out, inner));
    CHECK(!strchr(out, '[') && !strchr(out, ']'));
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_socktype = SOCK_STREAM;
    CHECK(getaddrinfo(out, NULL, &hints, &res) == 0);
    freeaddrinfo(res);
    return 0;
}
