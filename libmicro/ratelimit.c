#include "ratelimit.h"

void tb_init(tbucket_t *b, double rate, double burst, int64_t now_us)
{
    b->rate = rate;
    b->burst = burst > 0 ? burst : (rate > 1 ? rate : 1);
    b->tokens = b->burst;
    b->last_us = now_us;
}

bool tb_take(tbucket_t *b, int64_t now_us, double *retry_after_s)
{
    if (b->rate <= 0)
        return true;
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * b->rate / 1e6;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_us = now_us;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return true;
    }
    if (retry_after_s)
        *retry_after_s = (1.0 - b->tokens) / b->rate;
    return false;
}
