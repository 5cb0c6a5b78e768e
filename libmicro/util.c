#include "util.h"

#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* xoshiro256** — small, fast, good statistical quality; not for secrets. */
static uint64_t s[4];
static int seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(uint64_t seed)
{
    if (!seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)now_us() ^ (uint64_t)(uintptr_t)&seed;
    for (int i = 0; i < 4; i++)
        s[i] = splitmix(&seed);
    seeded = 1;
}

uint64_t rng_next(void)
{
    if (!seeded)
        rng_seed(0);
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

uint64_t rng_below(uint64_t n)
{
    /* Lemire's method would need 128-bit; simple rejection is fine at our rates. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, r;
    do
        r = rng_next();
    while (r >= limit);
    return r % n;
}

void uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(), b = rng_next();
    unsigned char u[16];
    for (int i = 0; i < 8; i++) {
        u[i] = (unsigned char)(a >> (i * 8));
        u[8 + i] = (unsigned char)(b >> (i * 8));
    }
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u[i] >> 4];
        *p++ = hex[u[i] & 15];
    }
    *p = '\0';
}

long raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}
