#include "frame.h"
#include "util.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const jspan_t NONE = {NULL, 0, JT_NONE};

/* The members of `data`, from the index the validating pass filled; the last
 * occurrence of a key wins, as in JavaScript. */
static int decode_request(frame_t *f)
{
    if (f->data.t != JT_OBJECT)
        return FRAME_E_SHAPE;
    jmembers_t ms;
    jspan_t k, v;
    int slot;
    f->url = NONE;
    f->payload = NONE;
    f->payload_slot = JIX_NONE;
    jmembers_init(&ms, &f->ix, f->data_slot, f->data);
    while (jmembers_next(&ms, &k, &v, &slot)) {
        if (jstr_eq(k, "url")) {
            f->url = v;
        } else if (jstr_eq(k, "data")) {
            f->payload = v;
            f->payload_slot = slot;
        }
    }
    if (f->url.t != JT_STRING || f->url.n <= 2)
        return FRAME_E_SHAPE;
    return FRAME_OK;
}

static int decode_response(frame_t *f)
{
    if (f->data.t != JT_OBJECT)
        return FRAME_E_SHAPE;
    jmembers_t ms;
    jspan_t k, v, ra = NONE;
    f->status_raw = NONE;
    f->result = NONE;
    f->message = NONE;
    jmembers_init(&ms, &f->ix, f->data_slot, f->data);
    while (jmembers_next(&ms, &k, &v, NULL)) {
        if (jstr_eq(k, "status"))
            f->status_raw = v;
        else if (jstr_eq(k, "data"))
            f->result = v;
        else if (jstr_eq(k, "message"))
            f->message = v;
        else if (jstr_eq(k, "retryAfter"))
            ra = v;
    }
    if (f->status_raw.t == JT_NUMBER) {
        /* The reference tests status !== 200: 200.0 is 200, 200.5 is a failure.
         * A non-integral or absurd status counts as non-numeric (0). */
        double d = 0;
        bool integral = jnum_double(f->status_raw, &d) == 0 && d == floor(d);
        f->status = integral && d >= 1 && d < 100000 ? (int)d : 0;
    } else if (f->status_raw.t == JT_STRING) {
        f->status = 0;
    } else {
        return FRAME_E_SHAPE;
    }
    if (f->message.t != JT_STRING)
        f->message = NONE;
    /* a peer's number: finite and positive, at most a day (FRAME_RETRY_AFTER_MAX) */
    if (ra.t != JT_NUMBER || jnum_double(ra, &f->retry_after) || !(f->retry_after > 0))
        f->retry_after = 0;
    else if (f->retry_after > FRAME_RETRY_AFTER_MAX)
        f->retry_after = FRAME_RETRY_AFTER_MAX;
    return FRAME_OK;
}

int frame_decode(const char *p, size_t n, frame_t *f)
{
    jspan_t root, v;
    memset(f, 0, offsetof(frame_t, ix));
    f->data_slot = f->payload_slot = JIX_NONE;
    /* The only pass over the text: it validates and indexes. */
    int rc = jscan_validate_max(p, n, &root, NULL, &f->ix, FRAME_IX_DEPTH, FRAME_MAX_DEPTH);
    if (rc == JSCAN_E_DEPTH) {
        /* Valid as far as it went, only too deep: find who is waiting for it. */
        uint64_t m;
        f->mode = -1;
        if (jscan_root_scalar(p, n, "id", &v) && !jnum_u53(v, &f->id) &&
            jscan_root_scalar(p, n, "mode", &v) && !jnum_u53(v, &m) && m <= 2) {
            f->mode = (int)m;
            f->twoway = jscan_root_scalar(p, n, "twoway", &v) && v.t == JT_TRUE;
        }
        return FRAME_E_DEPTH;
    }
    if (rc)
        return FRAME_E_JSON;
    if (root.t != JT_OBJECT)
        return FRAME_E_SHAPE;
    /* The top-level members; unknown keys are ignored. */
    bool have_id = false, have_mode = false;
    jmembers_t ms;
    jspan_t k;
    int slot;
    jmembers_init(&ms, &f->ix, JIX_ROOT, root);
    f->data = NONE;
    while (jmembers_next(&ms, &k, &v, &slot)) {
        if (jstr_eq(k, "id")) {
            have_id = jnum_u53(v, &f->id) == 0;
        } else if (jstr_eq(k, "mode")) {
            uint64_t m;
            have_mode = jnum_u53(v, &m) == 0 && m <= 2;
            f->mode = (int)m;
        } else if (jstr_eq(k, "twoway")) {
            f->twoway = v.t == JT_TRUE;
        } else if (jstr_eq(k, "stream")) {
            f->stream = v.t == JT_TRUE;
        } else if (jstr_eq(k, "data")) {
            f->data = v;
            f->data_slot = slot;
        }
    }
    if (!have_id || !have_mode)
        return FRAME_E_SHAPE;
    switch (f->mode) {
    case FRAME_REQUEST: return decode_request(f);
    case FRAME_RESPONSE: return decode_response(f);
    default: return jnum_u53(f->data, &f->target) ? FRAME_E_SHAPE : FRAME_OK;
    }
}

const char *frame_strerror(int err)
{
    switch (err) {
    case FRAME_OK: return "ok";
    case FRAME_E_JSON: return "not valid JSON";
    case FRAME_E_SHAPE: return "not a frame (id, mode or data missing or mistyped)";
    case FRAME_E_DEPTH: return "nested too deeply";
    }
    return "unknown error";
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* Index just past the string starting at p[i] == '"', or n when unterminated. */
static size_t skip_str(const char *p, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return n;
}

int frame_salvage_id(const char *p, size_t n, uint64_t *id, int *mode)
{
    bool have_id = false, have_mode = false;
    size_t i = skip_ws(p, n, 0);
    if (i >= n || p[i] != '{')
        return -1;
    i++;
    while (i < n && !(have_id && have_mode)) {
        i = skip_ws(p, n, i);
        if (i >= n || p[i] != '"')
            return -1;
        size_t k = i, kend = skip_str(p, n, i);
        i = skip_ws(p, n, kend);
        if (i >= n || p[i] != ':')
            return -1;
        i = skip_ws(p, n, i + 1);
        bool is_id = kend - k == 4 && !memcmp(p + k, "\"id\"", 4);
        bool is_mode = kend - k == 6 && !memcmp(p + k, "\"mode\"", 6);
        if (is_id || is_mode) {
            uint64_t v = 0;
            size_t d = 0;
            while (i < n && p[i] >= '0' && p[i] <= '9' && d < 17) {
                v = v * 10 + (uint64_t)(p[i] - '0');
                i++;
                d++;
            }
            size_t e = skip_ws(p, n, i);
            if (!d || (d > 1 && p[i - d] == '0') || e >= n || (p[e] != ',' && p[e] != '}'))
                return -1;
            if (is_id) {
                if (v > FRAME_ID_MAX)
                    return -1;
                *id = v;
                have_id = true;
            } else {
                if (v > 2)
                    return -1;
                *mode = (int)v;
                have_mode = true;
            }
            i = e;
        } else {
            /* skip one value of any shape: strings whole, brackets by depth */
            size_t depth = 0;
            while (i < n) {
                char c = p[i];
                if (c == '"') {
                    i = skip_str(p, n, i);
                    continue;
                }
                if (c == '{' || c == '[')
                    depth++;
                else if (c == '}' || c == ']') {
                    if (!depth)
                        break;
                    depth--;
                } else if (c == ',' && !depth)
                    break;
                i++;
            }
        }
        if (i >= n)
            return -1;
        if (p[i] == '}')
            break;
        if (p[i] != ',')
            return -1;
        i++;
    }
    return have_id && have_mode ? 0 : -1;
}

int frame_put_request(sbuf_t *b, uint64_t id, bool twoway, const char *url, size_t url_len,
                      const char *payload, size_t payload_len)
{
    sbuf_add(b, "{\"id\":", 6);
    sbuf_add_u64(b, id);
    sbuf_adds(b, twoway ? ",\"twoway\":true,\"data\":{\"url\":" : ",\"twoway\":false,\"data\":{\"url\":");
    sbuf_add_json_str(b, url, url_len);
    if (payload) {
        sbuf_add(b, ",\"data\":", 8);
        sbuf_add(b, payload, payload_len);
    }
    sbuf_adds(b, "},\"mode\":0}");
    return b->err ? -1 : 0;
}

int frame_put_response_ok(sbuf_t *b, uint64_t id, const char *result, size_t result_len)
{
    sbuf_add(b, "{\"id\":", 6);
    sbuf_add_u64(b, id);
    sbuf_adds(b, ",\"mode\":1,\"twoway\":false,\"data\":{\"status\":200");
    if (result) {
        sbuf_add(b, ",\"data\":", 8);
        sbuf_add(b, result, result_len);
    }
    sbuf_add(b, "}}", 2);
    return b->err ? -1 : 0;
}

int frame_put_response_err(sbuf_t *b, uint64_t id, int status, const char *message, size_t mlen)
{
    sbuf_add(b, "{\"id\":", 6);
    sbuf_add_u64(b, id);
    sbuf_adds(b, ",\"mode\":1,\"twoway\":false,\"data\":{\"status\":");
    sbuf_add_u64(b, status > 0 ? (unsigned)status : 500u);
    sbuf_adds(b, ",\"data\":null,\"message\":");
    sbuf_add_json_str(b, message ? message : "", message ? mlen : 0);
    sbuf_add(b, "}}", 2);
    return b->err ? -1 : 0;
}

int frame_put_response_limited(sbuf_t *b, uint64_t id, const char *message, size_t mlen,
                               double retry_after)
{
    sbuf_add(b, "{\"id\":", 6);
    sbuf_add_u64(b, id);
    sbuf_adds(b, ",\"mode\":1,\"twoway\":false,\"data\":{\"status\":429,\"data\":null,\"message\":");
    sbuf_add_json_str(b, message ? message : "", message ? mlen : 0);
    if (!(retry_after > 0))
        retry_after = 0.001;
    else if (retry_after > FRAME_RETRY_AFTER_MAX)
        retry_after = FRAME_RETRY_AFTER_MAX;
    sbuf_printf(b, ",\"retryAfter\":%.3f}}", retry_after);
    return b->err ? -1 : 0;
}

int frame_put_abort(sbuf_t *b, uint64_t id, uint64_t target)
{
    sbuf_add(b, "{\"id\":", 6);
    sbuf_add_u64(b, id);
    sbuf_adds(b, ",\"twoway\":false,\"data\":");
    sbuf_add_u64(b, target);
    sbuf_adds(b, ",\"mode\":2}");
    return b->err ? -1 : 0;
}

static void copy_cid(const char *s, size_t n, char *cid, size_t cidlen)
{
    if (!cidlen)
        return;
    if (n >= cidlen)
        n = cidlen - 1;
    memcpy(cid, s, n);
    cid[n] = '\0';
}

/* JavaScript's falsiness for a JSON value: null, false, 0, "" (the reference
 * replaces such an id: `else if (!data._correlationId)`). */
static bool falsy(jspan_t v)
{
    double d;
    switch (v.t) {
    case JT_NULL:
    case JT_FALSE: return true;
    case JT_STRING: return v.n == 2;
    case JT_NUMBER: return jnum_double(v, &d) == 0 && d == 0;
    default: return false;
    }
}

int frame_payload_with_cid(sbuf_t *out, const char *payload, size_t len, jtype_t type,
                           const char *given_cid, char *cid, size_t cidlen)
{
    return frame_payload_with_cid_ix(out, payload, len, type, NULL, JIX_NONE, given_cid, cid,
                                     cidlen);
}

int frame_payload_with_cid_ix(sbuf_t *out, const char *payload, size_t len, jtype_t type,
                              const jindex_t *ix, int slot, const char *given_cid, char *cid,
                              size_t cidlen)
{
    char fresh[37];
    const char *id = given_cid && *given_cid ? given_cid : NULL;
    bool replace = false;
    if (type == JT_OBJECT) {
        jspan_t obj = {payload, len, JT_OBJECT}, v;
        if (jmembers_get(ix, slot, obj, "_correlationId", &v, NULL)) {
            if (!falsy(v)) {
                size_t n = 0;
                char tmp[256];
                if (v.t == JT_STRING && jstr_get(v, tmp, sizeof(tmp), &n) == 0)
                    copy_cid(tmp, n, cid, cidlen);
                else
                    copy_cid(v.p, v.n, cid, cidlen); /* a non-string id: its JSON text */
                sbuf_add(out, payload, len);
                return out->err ? -1 : 0;
            }
            replace = true;
        }
    }
    if (!id) {
        uuid4(fresh);
        id = fresh;
    }
    copy_cid(id, strlen(id), cid, cidlen);
    sbuf_add(out, "{\"_correlationId\":", 18);
    sbuf_add_json_str(out, id, strlen(id));
    if (type == JT_OBJECT && replace) {
        /* copy every member but the falsy id, byte for byte */
        jspan_t obj = {payload, len, JT_OBJECT}, k, v;
        jiter_t it;
        jobj_iter(&it, obj);
        while (jobj_next(&it, &k, &v)) {
            if (jstr_eq(k, "_correlationId"))
                continue;
            sbuf_addc(out, ',');
            sbuf_add(out, k.p, (size_t)(v.p + v.n - k.p));
        }
    } else if (type == JT_OBJECT) {
        jspan_t obj = {payload, len, JT_OBJECT};
        if (!jobj_empty(obj)) {
            sbuf_addc(out, ',');
            /* the members, without the opening brace (closing brace included) */
            sbuf_add(out, payload + 1, len - 1);
            return out->err ? -1 : 0;
        }
    } else if (payload && type != JT_NONE) {
        sbuf_add(out, ",\"data\":", 8);
        sbuf_add(out, payload, len);
    }
    sbuf_addc(out, '}');
    return out->err ? -1 : 0;
}
