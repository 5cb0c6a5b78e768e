/* breaker: which peers of a namespace calls should avoid, under one of two policies.
 *  reference   docs/PROTOCOL.md §5.3: any failure excludes the peer for --breaker-cooldown-ms;
 *              a success clears it; when everyone is excluded the caller clears the
 *              namespace and asks again.
 *  consecutive per peer CLOSED → OPEN after --breaker-failures consecutive failures,
 *              OPEN → HALF_OPEN after --breaker-reset-ms, where exactly one trial
 *              call closes it again or re-opens it. With every known peer open, a
 *              call fails fast (503) instead of clearing the breaker. */
#include "sidecar.h"

#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

enum { B_CLOSED, B_OPEN, B_HALF_OPEN };

typedef struct peerstate {
    char    key[ADDR_KEY_MAX];
    int     state;
    int     failures;
    int64_t opened_ms;
    bool    trial;        /* HALF_OPEN: the one trial call is in flight */
} peerstate_t;

typedef struct breaker {
    char   ns[ADDR_NS_MAX];
    hmap_t peers; /* key → peerstate */
} breaker_t;

static bool consecutive(const sidecar_t *s) { return s->cfg.breaker_policy && !strcmp(s->cfg.breaker_policy, "consecutive"); }

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

static void forget(sidecar_t *s, breaker_t *b, peerstate_t *p)
{
    hmap_del(&b->peers, p->key, strlen(p->key));
    free(p);
    if (!hmap_len(&b->peers))
        breaker_drop(s, b);
}

static void open_peer(sidecar_t *s, const char *ns, peerstate_t *p, const char *why)
{
    if (p->state != B_OPEN) {
        s->stats.breaker_exclusions++;
        if (consecutive(s))
            LOG_WARN("circuit opened", LF_STR("ns", ns), LF_STR("peer", p->key),
                     LF_STR("reason", why), LF_INT("failures", p->failures));
    }
    p->state = B_OPEN;
    p->trial = false;
    p->opened_ms = now_ms();
}

void breaker_failure(sidecar_t *s, const char *ns, const char *key)
{
    breaker_t *b = get(s, ns, true);
    if (!b)
        return;
    peerstate_t *p = hmap_gets(&b->peers, key);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return;
        snprintf(p->key, sizeof(p->key), "%s", key);
        int err;
        hmap_put(&b->peers, p->key, strlen(p->key), p, &err);
        if (err) {
            free(p);
            return;
        }
    }
    p->failures++;
    if (!consecutive(s))
        open_peer(s, ns, p, "failure");
    else if (p->state == B_HALF_OPEN)
        open_peer(s, ns, p, "trial failed");
    else if (p->state == B_CLOSED && p->failures >= s->cfg.breaker_failures)
        open_peer(s, ns, p, "consecutive failures");
}

void breaker_success(sidecar_t *s, const char *ns, const char *key)
{
    breaker_t *b = get(s, ns, false);
    peerstate_t *p = b ? hmap_gets(&b->peers, key) : NULL;
    if (!p)
        return;
    if (consecutive(s) && p->state != B_CLOSED)
        LOG_INFO("circuit closed", LF_STR("ns", ns), LF_STR("peer", key));
    forget(s, b, p);
}

/* Moves a peer along OPEN → HALF_OPEN by time; returns true when calls must avoid it. */
static bool avoid(sidecar_t *s, peerstate_t *p, int64_t now, bool *expired)
{
    *expired = false;
    if (!consecutive(s)) {
        if (now - p->opened_ms >= s->cfg.breaker_cooldown_ms) {
            *expired = true; /* older entries are dropped */
            return false;
        }
        return true;
    }
    if (p->state == B_OPEN && now - p->opened_ms >= s->cfg.breaker_reset_ms) {
        p->state = B_HALF_OPEN;
        p->trial = false;
    }
    return p->state == B_OPEN || (p->state == B_HALF_OPEN && p->trial);
}

size_t breaker_excluded(sidecar_t *s, const char *ns, const char **out, size_t max)
{
    breaker_t *b = get(s, ns, false);
    size_t n = 0;
    if (b) {
        int64_t now = now_ms();
        void *v;
        peerstate_t *gone[64];
        size_t ngone = 0;
        for (size_t it = 0; (it = hmap_next(&b->peers, it, &v)) != 0;) {
            peerstate_t *p = v;
            bool expired;
            if (avoid(s, p, now, &expired)) {
                if (n + 1 < max)
                    out[n++] = p->key;
            } else if (expired && ngone < 64) {
                gone[ngone++] = p;
            }
        }
        for (size_t i = 0; i < ngone; i++) {
            bool last = hmap_len(&b->peers) == 1;
            forget(s, b, gone[i]);
            if (last)
                break; /* b is gone with it */
        }
    }
    out[n] = NULL;
    return n;
}

bool breaker_allows(sidecar_t *s, const char *ns, const char *key)
{
    breaker_t *b = get(s, ns, false);
    peerstate_t *p = b ? hmap_gets(&b->peers, key) : NULL;
    bool expired;
    return !p || !consecutive(s) || !avoid(s, p, now_ms(), &expired);
}

void breaker_attempt(sidecar_t *s, const char *ns, const char *key)
{
    breaker_t *b = get(s, ns, false);
    peerstate_t *p = b ? hmap_gets(&b->peers, key) : NULL;
    if (p && consecutive(s) && p->state == B_HALF_OPEN) {
        p->trial = true;
        LOG_INFO("circuit half-open: trial call", LF_STR("ns", ns), LF_STR("peer", key));
    }
}

void breaker_reset(sidecar_t *s, const char *ns)
{
    breaker_t *b = get(s, ns, false);
    if (b) {
        s->stats.breaker_resets++;
        breaker_drop(s, b);
    }
}

void breaker_counts(sidecar_t *s, size_t *open, size_t *half_open)
{
    void *v, *w;
    int64_t now = now_ms();
    *open = *half_open = 0;
    for (size_t it = 0; (it = hmap_next(&s->breakers, it, &v)) != 0;)
        for (size_t jt = 0; (jt = hmap_next(&((breaker_t *)v)->peers, jt, &w)) != 0;) {
            peerstate_t *p = w;
            bool expired;
            if (!avoid(s, p, now, &expired) && !consecutive(s))
                continue;
            if (p->state == B_OPEN)
                (*open)++;
            else if (p->state == B_HALF_OPEN)
                (*half_open)++;
        }
}

void breaker_free(sidecar_t *s)
{
    void *v;
    size_t it;
    while ((it = hmap_next(&s->breakers, 0, &v)) != 0)
        breaker_drop(s, v);
    hmap_free(&s->breakers);
}

void breaker_sweep(sidecar_t *s)
{
    /* breaker_excluded forgets what has expired (and an entry left empty); run it
     * for namespaces nobody has called since. Names are copied: entries go. */
    size_t n = hmap_len(&s->breakers), i = 0;
    if (!n)
        return;
    char (*names)[ADDR_NS_MAX] = malloc(n * sizeof(*names));
    if (!names)
        return;
    void *v;
    for (size_t it = 0; (it = hmap_next(&s->breakers, it, &v)) != 0 && i < n;)
        snprintf(names[i++], ADDR_NS_MAX, "%s", ((breaker_t *)v)->ns);
    const char *out[1];
    for (size_t k = 0; k < i; k++)
        breaker_excluded(s, names[k], out, 1);
    free(names);
}
