#include "etcdproto.h"

#include <stdio.h>
#include <string.h>

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int etcd_b64_encode(sbuf_t *b, const void *src, size_t n)
{
    const unsigned char *p = src;
    char q[4];
    size_t i = 0;
    if (sbuf_reserve(b, (n + 2) / 3 * 4))
        return -1;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = b64[v >> 18], q[1] = b64[v >> 12 & 63], q[2] = b64[v >> 6 & 63], q[3] = b64[v & 63];
        sbuf_add(b, q, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        q[0] = b64[v >> 18], q[1] = b64[v >> 12 & 63];
        q[2] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        q[3] = '=';
        sbuf_add(b, q, 4);
    }
    return b->err ? -1 : 0;
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int etcd_b64_decode(const char *s, size_t n, char *out, size_t cap, size_t *outn)
{
    size_t o = 0;
    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_val(c)) < 0) {
                return -1; /* a data byte after '=', or not base64 */
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t k = 3 - (size_t)pad;
        if (o + k > cap)
            return -1;
        out[o++] = (char)(w >> 16);
        if (k > 1)
            out[o++] = (char)(w >> 8 & 255);
        if (k > 2)
            out[o++] = (char)(w & 255);
    }
    if (outn)
        *outn = o;
    return 0;
}

/* ---- numbers ---- */

int etcd_u64(jspan_t v, uint64_t *out)
{
    const char *p = v.p, *e = v.p + v.n;
    if (v.t == JT_STRING) {
        p++;
        e--;
    } else if (v.t != JT_NUMBER) {
        return -1;
    }
    if (p >= e || e - p > 20)
        return -1;
    uint64_t x = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

int etcd_i64(jspan_t v, int64_t *out)
{
    uint64_t x;
    if (etcd_u64(v, &x) || x > (uint64_t)INT64_MAX)
        return -1;
    *out = (int64_t)x;
    return 0;
}

/* ---- the key layout ---- */

int etcd_instances_prefix(char *out, size_t cap, const char *prefix)
{
    int n = snprintf(out, cap, "%s/instances/", prefix);
    return n > 0 && (size_t)n < cap ? n : -1;
}

int etcd_range_end(const char *p, size_t n, char *out, size_t cap)
{
    /* etcd's rule: the prefix with its last byte below 0xff incremented and what
     * follows dropped; an all-0xff prefix has no end ("\0": to the end). */
    while (n && (unsigned char)p[n - 1] == 0xff)
        n--;
    if (!n) {
        if (cap < 1)
            return -1;
        out[0] = 0;
        return 1;
    }
    if (n > cap)
        return -1;
    memcpy(out, p, n);
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return (int)n;
}

int etcd_key_instance(const char *key, size_t klen, const char *iprefix, char *hostport,
                      size_t cap)
{
    size_t pl = strlen(iprefix);
    addr_t a;
    if (klen <= pl || memcmp(key, iprefix, pl) || memchr(key, 0, klen))
        return -1;
    /* The same identity rules as a handshake: an entry from etcd is no more
     * trusted than a peer (a forged host or namespace would reach /v1/namespaces,
     * /metrics and the logs). */
    if (addr_parse_key(key + pl, klen - pl, &a) || !addr_host_valid(a.host, strlen(a.host)))
        return -1;
    int n = addr_format_key(a.host, a.port, hostport, cap);
    /* Only the canonical spelling is ours: another would be a second name for one
     * instance, and its delete could not be matched to it. */
    if (n <= 0 || (size_t)n != klen - pl || memcmp(hostport, key + pl, (size_t)n))
        return -1;
    return 0;
}

int etcd_value_encode(sbuf_t *b, const char *replica, const char *ns)
{
    sbuf_adds(b, "{\"replica\":");
    sbuf_add_json_str(b, replica, strlen(replica));
    sbuf_adds(b, ",\"ns\":");
    sbuf_add_json_str(b, ns, strlen(ns));
    sbuf_addc(b, '}');
    return b->err ? -1 : 0;
}

int etcd_value_decode(const char *v, size_t n, char *replica, size_t rcap, char *ns, size_t nscap)
{
    jspan_t root, r, s;
    size_t nn;
    if (jscan_validate(v, n, &root, NULL) || root.t != JT_OBJECT)
        return -1;
    if (!jobj_get(root, "replica", &r) || r.t != JT_STRING || jstr_get(r, replica, rcap, &nn) ||
        !nn || memchr(replica, 0, nn))
        return -1;
    if (!jobj_get(root, "ns", &s) || s.t != JT_STRING || jstr_get(s, ns, nscap, &nn) || !nn ||
        !addr_ns_valid(ns, nn))
        return -1;
    return 0;
}

/* ---- answers ---- */

static int fail(etcd_answer_t *a, const char *why)
{
    snprintf(a->err, sizeof(a->err), "%s", why);
    return -1;
}

static int parse_header(jspan_t obj, etcd_header_t *h)
{
    jspan_t v;
    if (obj.t != JT_OBJECT)
        return -1;
    if (jobj_get(obj, "cluster_id", &v) && etcd_u64(v, &h->cluster_id))
        return -1;
    if (jobj_get(obj, "member_id", &v) && etcd_u64(v, &h->member_id))
        return -1;
    if (jobj_get(obj, "revision", &v) && etcd_u64(v, &h->revision))
        return -1;
    if (jobj_get(obj, "raft_term", &v) && etcd_u64(v, &h->raft_term))
        return -1;
    return 0;
}

/* {"error": "text", "message": "text", "code": N} (unary) or
 * {"error": {"grpc_code": N, "http_code": N, "message": "text", ...}} (streams). */
static int parse_error(jspan_t err, jspan_t root, etcd_answer_t *a)
{
    jspan_t msg = {0}, code = {0};
    uint64_t c = 0;
    a->is_error = true;
    if (err.t == JT_OBJECT) {
        jobj_get(err, "message", &msg);
        jobj_get(err, "grpc_code", &code);
    } else {
        jobj_get(root, "message", &msg);
        jobj_get(root, "code", &code);
        if (msg.t != JT_STRING && err.t == JT_STRING)
            msg = err;
    }
    if (code.t && !etcd_u64(code, &c) && c < 1000)
        a->code = (int)c;
    if (msg.t != JT_STRING || jstr_get(msg, a->err, sizeof(a->err), NULL)) {
        /* Too long or not a string: keep what is printable of it. */
        snprintf(a->err, sizeof(a->err), "etcd error (code %d)", a->code);
    }
    /* Never put control characters from a peer into our log lines. */
    for (char *q = a->err; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            *q = '?';
    return 0;
}

static int open_answer(const char *p, size_t n, etcd_answer_t *a, jspan_t *root)
{
    jspan_t e, h;
    memset(a, 0, sizeof(*a));
    if (n > ETCD_MSG_MAX)
        return fail(a, "answer too large");
    if (jscan_validate(p, n, root, NULL) || root->t != JT_OBJECT)
        return fail(a, "answer is not a JSON object");
    if (jobj_get(*root, "error", &e))
        return parse_error(e, *root, a) ? -1 : 1;
    if (jobj_get(*root, "header", &h) && parse_header(h, &a->hdr))
        return fail(a, "bad header");
    return 0;
}

/* One kv: the key must be one of ours (the caller checks the layout), sizes
 * bounded. 1 = skip this entry, 0 = ok, -1 = malformed. */
static int parse_kv(jspan_t kv, etcd_kv_t *out, bool need_value)
{
    jspan_t k, v;
    out->key_len = out->value_len = 0;
    out->mod_revision = out->lease = 0;
    if (kv.t != JT_OBJECT)
        return -1;
    if (!jobj_get(kv, "key", &k) || k.t != JT_STRING)
        return -1;
    /* Base64 is plain ASCII: the span between the quotes is the text (an escape
     * would not decode, and is refused). */
    if (etcd_b64_decode(k.p + 1, k.n - 2, out->key, sizeof(out->key) - 1, &out->key_len))
        return 1;
    out->key[out->key_len] = 0;
    if (jobj_get(kv, "value", &v)) {
        if (v.t != JT_STRING)
            return -1;
        if (etcd_b64_decode(v.p + 1, v.n - 2, out->value, sizeof(out->value) - 1, &out->value_len))
            return 1;
    } else if (need_value) {
        return 1;
    }
    out->value[out->value_len] = 0;
    if (jobj_get(kv, "mod_revision", &v) && etcd_u64(v, &out->mod_revision))
        return -1;
    if (jobj_get(kv, "lease", &v) && etcd_u64(v, &out->lease))
        return -1;
    return 0;
}

int etcd_parse_range(const char *p, size_t n, etcd_answer_t *a, etcd_kv_fn fn, void *arg)
{
    jspan_t root, v, item;
    int rc = open_answer(p, n, a, &root);
    if (rc)
        return rc < 0 ? -1 : 0;
    if (jobj_get(root, "more", &v))
        a->more = v.t == JT_TRUE;
    if (!jobj_get(root, "kvs", &v))
        return 0;
    if (v.t != JT_ARRAY)
        return fail(a, "kvs is not an array");
    jiter_t it;
    etcd_kv_t kv;
    jarr_iter(&it, v);
    while (jarr_next(&it, &item)) {
        int k = parse_kv(item, &kv, true);
        if (k < 0)
            return fail(a, "bad kv in range answer");
        a->nkvs++;
        if (k > 0) {
            a->skipped++;
            continue;
        }
        memcpy(a->last_key, kv.key, kv.key_len);
        a->last_key_len = kv.key_len;
        if (fn && fn(arg, ETCD_EV_PUT, &kv))
            return fail(a, "stopped by the caller");
    }
    return 0;
}

int etcd_parse_watch(const char *p, size_t n, etcd_answer_t *a, etcd_kv_fn fn, void *arg)
{
    jspan_t root, res, v, h, ev;
    int rc = open_answer(p, n, a, &root);
    if (rc)
        return rc < 0 ? -1 : 0;
    if (!jobj_get(root, "result", &res) || res.t != JT_OBJECT)
        return fail(a, "watch message without a result");
    if (jobj_get(res, "header", &h) && parse_header(h, &a->hdr))
        return fail(a, "bad header");
    if (jobj_get(res, "created", &v))
        a->created = v.t == JT_TRUE;
    if (jobj_get(res, "canceled", &v))
        a->canceled = v.t == JT_TRUE;
    if (jobj_get(res, "compact_revision", &v) && etcd_u64(v, &a->compact_revision))
        return fail(a, "bad compact_revision");
    if (jobj_get(res, "cancel_reason", &v) && v.t == JT_STRING)
        jstr_get(v, a->err, sizeof(a->err), NULL);
    if (!jobj_get(res, "events", &v))
        return 0;
    if (v.t != JT_ARRAY)
        return fail(a, "events is not an array");
    jiter_t it;
    etcd_kv_t kv;
    jarr_iter(&it, v);
    while (jarr_next(&it, &ev)) {
        jspan_t t, k;
        etcd_ev_t type = ETCD_EV_PUT;
        if (ev.t != JT_OBJECT)
            return fail(a, "event is not an object");
        if (jobj_get(ev, "type", &t)) {
            if (jstr_eq(t, "DELETE") || (t.t == JT_NUMBER && t.n == 1 && *t.p == '1'))
                type = ETCD_EV_DELETE;
            else if (!jstr_eq(t, "PUT") && !(t.t == JT_NUMBER && t.n == 1 && *t.p == '0'))
                return fail(a, "unknown event type");
        }
        if (!jobj_get(ev, "kv", &k))
            return fail(a, "event without kv");
        int r = parse_kv(k, &kv, type == ETCD_EV_PUT);
        if (r < 0)
            return fail(a, "bad kv in watch event");
        a->nevents++;
        if (r > 0) {
            a->skipped++;
            continue;
        }
        if (fn && fn(arg, type, &kv))
            return fail(a, "stopped by the caller");
    }
    return 0;
}

int etcd_parse_lease_grant(const char *p, size_t n, etcd_answer_t *a)
{
    jspan_t root, v;
    int rc = open_answer(p, n, a, &root);
    if (rc)
        return rc < 0 ? -1 : 0;
    if (!jobj_get(root, "ID", &v) || etcd_u64(v, &a->lease_id) || !a->lease_id)
        return fail(a, "lease grant without an ID");
    if (!jobj_get(root, "TTL", &v) || etcd_i64(v, &a->ttl) || a->ttl <= 0)
        return fail(a, "lease grant without a TTL");
    return 0;
}

int etcd_parse_keepalive(const char *p, size_t n, etcd_answer_t *a)
{
    jspan_t root, res, v, h;
    int rc = open_answer(p, n, a, &root);
    if (rc)
        return rc < 0 ? -1 : 0;
    if (!jobj_get(root, "result", &res) || res.t != JT_OBJECT)
        return fail(a, "keepalive answer without a result");
    if (jobj_get(res, "header", &h) && parse_header(h, &a->hdr))
        return fail(a, "bad header");
    if (jobj_get(res, "ID", &v) && etcd_u64(v, &a->lease_id))
        return fail(a, "bad lease ID");
    a->ttl = 0;
    if (jobj_get(res, "TTL", &v) && etcd_i64(v, &a->ttl))
        return fail(a, "bad TTL");
    return 0;
}

int etcd_parse_simple(const char *p, size_t n, etcd_answer_t *a)
{
    jspan_t root, v;
    int rc = open_answer(p, n, a, &root);
    if (rc)
        return rc < 0 ? -1 : 0;
    if (jobj_get(root, "succeeded", &v))
        a->succeeded = v.t == JT_TRUE;
    return 0;
}

bool etcd_answer_lease_gone(const etcd_answer_t *a)
{
    return a->is_error && strstr(a->err, "lease not found") != NULL;
}

bool etcd_answer_compacted(const etcd_answer_t *a)
{
    return a->is_error && strstr(a->err, "compacted") != NULL;
}

/* ---- the watch stream ---- */

void etcd_stream_init(etcd_stream_t *s, size_t limit)
{
    memset(s, 0, sizeof(*s));
    s->limit = limit;
    sbuf_init(&s->buf, 0, limit);
}

void etcd_stream_reset(etcd_stream_t *s)
{
    sbuf_reset(&s->buf);
    s->buf.err = 0;
    s->depth = 0;
    s->in_str = s->esc = s->failed = false;
}

void etcd_stream_free(etcd_stream_t *s) { sbuf_free(&s->buf); }

int etcd_stream_feed(etcd_stream_t *s, const char *p, size_t n, etcd_msg_fn fn, void *arg)
{
    size_t start = 0; /* where the current object starts in p (when depth > 0) */
    if (s->failed)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (s->depth == 0) {
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                continue;
            if (c != '{') {
                s->failed = true;
                return -1;
            }
            s->depth = 1;
            start = i;
            continue;
        }
        if (s->in_str) {
            if (s->esc)
                s->esc = false;
            else if (c == '\\')
                s->esc = true;
            else if (c == '"')
                s->in_str = false;
            continue;
        }
        if (c == '"') {
            s->in_str = true;
        } else if (c == '{' || c == '[') {
            if (++s->depth > JSCAN_MAX_DEPTH) {
                s->failed = true;
                return -1;
            }
        } else if (c == '}' || c == ']') {
            if (--s->depth == 0) {
                const char *msg = p + start;
                size_t len = i + 1 - start;
                if (s->buf.len) {
                    if (sbuf_add(&s->buf, p + start, len)) {
                        s->failed = true;
                        return -1;
                    }
                    msg = sbuf_data(&s->buf);
                    len = s->buf.len;
                } else if (len > s->limit) {
                    s->failed = true;
                    return -1;
                }
                int rc = fn(arg, msg, len);
                sbuf_reset(&s->buf);
                if (rc) {
                    s->failed = true;
                    return -1;
                }
            }
        }
    }
    if (s->depth > 0 && sbuf_add(&s->buf, p + start, n - start)) {
        s->failed = true;
        return -1;
    }
    return 0;
}

/* ---- lease bookkeeping ---- */

void etcd_lease_init(etcd_lease_t *l, int64_t ttl_ms)
{
    memset(l, 0, sizeof(*l));
    l->ttl_ms = ttl_ms;
}

void etcd_lease_granted(etcd_lease_t *l, uint64_t id, int64_t ttl_s, int64_t now)
{
    l->id = id;
    /* etcd may grant more than asked (its minimum is the election timeout's
     * multiple); keep to our own TTL, which is never longer. */
    if (ttl_s > 0 && ttl_s * 1000 < l->ttl_ms)
        l->ttl_ms = ttl_s * 1000;
    l->confirmed_ms = now;
}

bool etcd_lease_kept(etcd_lease_t *l, int64_t ttl_s, int64_t now)
{
    if (!l->id)
        return false;
    if (ttl_s <= 0) {
        l->id = 0;
        return false;
    }
    l->confirmed_ms = now;
    return true;
}

bool etcd_lease_valid(const etcd_lease_t *l, int64_t now)
{
    return l->id && now - l->confirmed_ms < l->ttl_ms;
}

int64_t etcd_lease_next_keepalive(const etcd_lease_t *l)
{
    return l->confirmed_ms + l->ttl_ms / 3;
}

void etcd_lease_drop(etcd_lease_t *l) { l->id = 0; }
