/* ratelimit: a token bucket (capacity `burst`, refilled at `rate` per second).
 * The sidecar keeps one per route (inbound, to protect the app) and one per
 * target namespace (outbound). Nothing is queued: a request either takes a token
 * now or is refused with the time until the next one. */
#ifndef MICRO_RATELIMIT_H
#define MICRO_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tbucket {
    double  rate;    /* tokens per second; 0 = unlimited */
    double  burst;   /* capacity */
    double  tokens;
    int64_t last_us;
} tbucket_t;

void tb_init(tbucket_t *b, double rate, double burst, int64_t now_us);
/* Takes one token. Returns true if allowed; otherwise false and *retry_after_s
 * (if non-NULL) gets the seconds until a token is available. */
bool tb_take(tbucket_t *b, int64_t now_us, double *retry_after_s);

#endif
