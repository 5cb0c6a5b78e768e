/* breaker: PROTOCOL §5's exclusion list. A peer that failed a call is left out of
 * discovery for that namespace until the cooldown passes or a call to it
 * succeeds; when every peer is excluded the caller resets the namespace. */
#include "sidecar.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

typedef struct tripped {
    char    key[ADDR_KEY_MAX];
    int64_t opened_ms;
} tripped_t;

typedef struct breaker {
    char       ns[ADDR_NS_MAX];
    hmap_t     peers; /* key → tripped */
} breaker_t;

static breaker_t *get(sidecar_t *s, const char *ns, bool create)
{
    breaker_t *b = hmap_gets(&s->breakers, ns);
    if (b || !create)
        return b;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    snprintf(b->ns, sizeof(b->ns), "%s", ns);
    hmap_init(&b->peers);
    int err;
    hmap_put(&s->breakers, b->ns, strlen(b->ns), b, &err);
    if (err) {
        free(b);
        return NULL;
    }
    return b;
}

static void breaker_drop(sidecar_t *s, breaker_t *b)
{
    void *v;
    for (size_t it = 0; (it = hmap_next(&b->peers, it, &v)) != 0;)
        free(v);
    hmap_free(&b->peers);
    hmap_del(&s->breakers, b->ns, strlen(b->ns));
    free(b);
}

void breaker_failure(sidecar_t *s, const char *ns, const char *key)
{
    breaker_t *b = get(s, ns, true);
    if (!b)
        return;
    tripped_t *t = hmap_gets(&b->peers, key);
    if (!t) {
        t = calloc(1, sizeof(*t));
        if (!t)
            return;
        snprintf(t->key, sizeof(t->key), "%s", key);
        int err;
        hmap_put(&b->peers, t->key, strlen(t->key), t, &err);
        if (err) {
            free(t);
            return;
        }
        s->stats.breaker_exclusions++;
    }
    t->opened_ms = now_ms();
}

void breaker_success(sidecar_t *s, const char *ns, const char *key)
{
    breaker_t *b = get(s, ns, false);
    if (!b)
        return;
    free(hmap_del(&b->peers, key, strlen(key)));
    if (!hmap_len(&b->peers))
        breaker_drop(s, b);
}

size_t breaker_excluded(sidecar_t *s, const char *ns, const char **out, size_t max)
{
    breaker_t *b = get(s, ns, false);
    size_t n = 0;
    if (b) {
        int64_t now = now_ms();
        void *v;
        tripped_t *expired[64];
        size_t nexp = 0;
        for (size_t it = 0; (it = hmap_next(&b->peers, it, &v)) != 0;) {
            tripped_t *t = v;
            if (now - t->opened_ms >= s->cfg.breaker_cooldown_ms) {
                if (nexp < 64)
                    expired[nexp++] = t;
            } else if (n + 1 < max) {
                out[n++] = t->key;
            }
        }
        for (size_t i = 0; i < nexp; i++) { /* older entries are dropped */
            hmap_del(&b->peers, expired[i]->key, strlen(expired[i]->key));
            free(expired[i]);
        }
        if (!hmap_len(&b->peers))
            breaker_drop(s, b);
    }
    out[n] = NULL;
    return n;
}

void breaker_reset(sidecar_t *s, const char *ns)
{
    breaker_t *b = get(s, ns, false);
    if (b) {
        s->stats.breaker_resets++;
        breaker_drop(s, b);
    }
}

size_t breaker_open_count(sidecar_t *s)
{
    size_t n = 0;
    void *v;
    for (size_t it = 0; (it = hmap_next(&s->breakers, it, &v)) != 0;)
        n += hmap_len(&((breaker_t *)v)->peers);
    return n;
}

void breaker_free(sidecar_t *s)
{
    void *v;
    size_t it;
    while ((it = hmap_next(&s->breakers, 0, &v)) != 0)
        breaker_drop(s, v);
    hmap_free(&s->breakers);
}
