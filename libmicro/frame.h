/* frame: the three message kinds of docs/PROTOCOL.md §3 — REQUEST (mode 0), RESPONSE (1),
 * ABORT (2) — decoded from and encoded to the exact text the reference writes.
 * Decoding validates the whole frame once and leaves spans into the caller's
 * buffer; encoding appends to an sbuf (with LWS_PRE headroom for lws_write). */
#ifndef MICRO_FRAME_H
#define MICRO_FRAME_H

#include "jscan.h"
#include "sbuf.h"

#include <stdbool.h>
#include <stdint.h>

enum { FRAME_REQUEST = 0, FRAME_RESPONSE = 1, FRAME_ABORT = 2 };

enum {
    FRAME_OK = 0,
    FRAME_E_JSON = -1,   /* not JSON */
    FRAME_E_SHAPE = -2,  /* JSON, but not a frame: missing/mistyped id, mode, data */
    FRAME_E_DEPTH = -3,  /* nested deeper than FRAME_MAX_DEPTH */
};

/* Nesting a frame may have: a payload or result of JSCAN_MAX_DEPTH levels plus
 * the envelope around it (the frame, its data, the {_correlationId, data}
 * wrapper of a non-object payload) and some slack. */
#define FRAME_MAX_DEPTH (JSCAN_MAX_DEPTH + 8)

#define FRAME_ID_MAX 9007199254740991ULL /* 2^53 - 1 */
#define FRAME_RETRY_AFTER_MAX 86400.0    /* seconds: a retryAfter is clamped to a day */

typedef struct frame {
    uint64_t id;
    int      mode;
    bool     twoway;
    bool     stream;
    jspan_t  data;     /* the frame's "data" member; JT_NONE when absent */
    /* REQUEST: data = {"url": url, "data": payload} */
    jspan_t  url;      /* string span */
    jspan_t  payload;  /* JT_NONE when absent */
    /* RESPONSE: data = {"status": s, "data": result, "message": m} */
    int      status;   /* numeric status, or 0 when the peer sent a string */
    jspan_t  status_raw;
    jspan_t  result;   /* JT_NONE when absent */
    jspan_t  message;  /* string span, or JT_NONE */
    double   retry_after; /* "retryAfter" of a 429 RESPONSE (ours), else 0 */
    /* ABORT: data = id of the request it cancels */
    uint64_t target;
    /* Where data and payload sit in the index (JIX_NONE: walk their text). */
    int      data_slot, payload_slot;
    /* The members of the frame, its data and the payload (REQUEST) or result
     * (RESPONSE), recorded by the validating pass: decoding and the correlation
     * id lookup read these instead of walking the text again. Last: frame_decode
     * clears only what comes before it. */
    jindex_t ix;
} frame_t;

/* Index depth frame_decode records: frame, data, payload/result members. */
#define FRAME_IX_DEPTH 3

/* FRAME_OK or a FRAME_E_*. For FRAME_E_DEPTH the frame was not decoded, but
 * when its top-level "id" and "mode" could be recovered (jscan_root_scalar) f->id,
 * f->mode and f->twoway are set, so that the sender can be answered at once;
 * otherwise f->mode is -1. */
int frame_decode(const char *p, size_t n, frame_t *f);
const char *frame_strerror(int err);
/* For a message frame_decode refused (invalid UTF-8, too deep, a bad member):
 * finds the top-level "id" and "mode" members by a lexical scan that checks no
 * string contents, so the request a broken RESPONSE answers can still be failed
 * at once instead of timing out. Linear, no recursion. Returns 0 when both were
 * found as plain integers (id <= FRAME_ID_MAX, mode 0..2), else -1. */
int frame_salvage_id(const char *p, size_t n, uint64_t *id, int *mode);

/* Encoders append one frame to b; 0 or -1 (size limit / OOM). `payload`/`result`
 * are raw JSON text (already validated), or NULL to leave the key out. */
int frame_put_request(sbuf_t *b, uint64_t id, bool twoway, const char *url, size_t url_len,
                      const char *payload, size_t payload_len);
int frame_put_response_ok(sbuf_t *b, uint64_t id, const char *result, size_t result_len);
int frame_put_response_err(sbuf_t *b, uint64_t id, int status, const char *message, size_t mlen);
/* A 429 with "retryAfter" (seconds) beside status/data/message: an extra key the
 * reference ignores, so the caller's sidecar can send Retry-After. */
int frame_put_response_limited(sbuf_t *b, uint64_t id, const char *message, size_t mlen,
                               double retry_after);
int frame_put_abort(sbuf_t *b, uint64_t id, uint64_t target);

/* The correlation-id rules of docs/PROTOCOL.md §5.3, on raw payload text (NULL = no payload):
 * - an object with a truthy "_correlationId" is kept as is; its value is returned
 *   in cid; a falsy one (null, false, 0, "") is replaced, as the reference does;
 * - an object without one gets one added (given_cid if non-NULL, else a new UUID);
 * - anything else (none, null, array, scalar) becomes {"_correlationId":..,"data":..}.
 * Appends the resulting payload to out and the id (unescaped) to cid (NUL-terminated,
 * truncated to cidlen). */
int frame_payload_with_cid(sbuf_t *out, const char *payload, size_t len, jtype_t type,
                           const char *given_cid, char *cid, size_t cidlen);
/* The same, with the payload's members looked up in ix at `slot` (see jmembers_init)
 * when ix is not NULL. */
int frame_payload_with_cid_ix(sbuf_t *out, const char *payload, size_t len, jtype_t type,
                              const jindex_t *ix, int slot, const char *given_cid, char *cid,
                              size_t cidlen);

#endif
