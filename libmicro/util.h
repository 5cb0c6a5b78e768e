/* util: clocks, a fast seeded PRNG with unbiased uniform choice, UUIDv4 strings.
 * Shared by registry (random /-/find answers) and sidecar (correlation ids). */
#ifndef MICRO_UTIL_H
#define MICRO_UTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t  now_ms(void);            /* CLOCK_MONOTONIC, milliseconds */
int64_t  now_us(void);            /* CLOCK_MONOTONIC, microseconds */
void     rng_seed(uint64_t seed); /* 0 = seed from getrandom() */
uint64_t rng_next(void);
uint64_t rng_below(uint64_t n);   /* uniform in [0, n), n > 0, no modulo bias */
void     uuid4(char out[37]);     /* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" + NUL */
/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit. */
long     raise_nofile_limit(void);

#endif
