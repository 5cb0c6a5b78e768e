/* etcdproto: the pure half of the registry's etcd v3 client — what goes over the
 * JSON gateway and what comes back, with no I/O. The store (store.c) builds its
 * requests with these encoders and reads every etcd answer through these parsers;
 * the unit tests and the fuzz target drive them directly.
 *
 * Everything etcd sends is hostile input: sizes are bounded by the constants below,
 * a malformed message is an error with a reason, and an entry that does not fit our
 * layout is skipped (and counted), never trusted. int64 fields arrive as JSON
 * strings ("revision":"42"); fields at their default value are omitted. */
#ifndef MICRO_ETCDPROTO_H
#define MICRO_ETCDPROTO_H

#include "addr.h"
#include "jscan.h"
#include "sbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETCD_PREFIX_MAX   256                            /* --etcd-prefix */
#define ETCD_KEY_MAX      (ETCD_PREFIX_MAX + 16 + ADDR_KEY_MAX)
#define ETCD_VALUE_MAX    4096   /* ns escaped (6 bytes a char at worst) + replica */
#define ETCD_REPLICA_MAX  64
#define ETCD_MSG_MAX      (16u << 20)                    /* one answer or stream message */

/* ---- base64 (RFC 4648, with padding: what the gateway sends and expects) ---- */
int  etcd_b64_encode(sbuf_t *b, const void *p, size_t n);
/* Decodes s (n bytes) into out; -1 on bad input or when it does not fit in cap.
 * Padding is required (the gateway always sends it). */
int  etcd_b64_decode(const char *s, size_t n, char *out, size_t cap, size_t *outn);

/* An int64 field: a JSON string of decimal digits, or a plain number. Only
 * non-negative values fit (revisions, lease ids and TTLs are). */
int  etcd_u64(jspan_t v, uint64_t *out);
int  etcd_i64(jspan_t v, int64_t *out);

/* ---- the key layout ----
 * {prefix}/instances/{host:port} → {"replica":"<id>","ns":"<namespace>"}
 * One key per host:port, like the registry's own table: the same instance
 * registering on another replica overwrites the key, which is how the old replica
 * learns it moved. */
int  etcd_instances_prefix(char *out, size_t cap, const char *prefix);   /* "{prefix}/instances/" */
/* The exclusive end of the range that holds every key starting with p. */
int  etcd_range_end(const char *p, size_t n, char *out, size_t cap);
/* The host:port of an instance key, canonical; -1 if key is not one of ours. */
int  etcd_key_instance(const char *key, size_t klen, const char *iprefix, char *hostport,
                       size_t cap);
int  etcd_value_encode(sbuf_t *b, const char *replica, const char *ns);
/* -1 unless value is {"replica": string, "ns": string} within the limits. */
int  etcd_value_decode(const char *v, size_t n, char *replica, size_t rcap, char *ns, size_t nscap);

/* ---- answers ---- */
typedef struct etcd_header {
    uint64_t cluster_id, member_id, revision, raft_term;
} etcd_header_t;

typedef struct etcd_kv {
    char     key[ETCD_KEY_MAX];
    size_t   key_len;
    char     value[ETCD_VALUE_MAX];
    size_t   value_len;
    uint64_t mod_revision, lease;
} etcd_kv_t;

typedef enum { ETCD_EV_PUT = 0, ETCD_EV_DELETE = 1 } etcd_ev_t;
/* Called per kv or watch event; return non-zero to stop (the parse then fails). */
typedef int (*etcd_kv_fn)(void *arg, etcd_ev_t type, const etcd_kv_t *kv);

/* What every parser reports besides its callbacks. */
typedef struct etcd_answer {
    etcd_header_t hdr;
    bool     is_error;       /* {"error": ...}: the gateway's error object */
    int      code;           /* its gRPC code (5 = not found, 11 = out of range...) */
    char     err[160];       /* parse failure or etcd's message, for the log */
    size_t   skipped;        /* entries that did not fit our layout or limits */
    /* range */
    bool     more;
    size_t   nkvs;
    char     last_key[ETCD_KEY_MAX];
    size_t   last_key_len;
    /* watch */
    bool     created, canceled;
    uint64_t compact_revision;
    size_t   nevents;
    /* lease */
    uint64_t lease_id;
    int64_t  ttl;
    /* txn */
    bool     succeeded;
} etcd_answer_t;

/* Each returns 0 on a well-formed answer (which may be an etcd error object:
 * is_error), -1 on a malformed one (err says why). */
int etcd_parse_range(const char *p, size_t n, etcd_answer_t *a, etcd_kv_fn fn, void *arg);
/* One message of the /v3/watch stream: {"result": {...}} or {"error": {...}}. */
int etcd_parse_watch(const char *p, size_t n, etcd_answer_t *a, etcd_kv_fn fn, void *arg);
int etcd_parse_lease_grant(const char *p, size_t n, etcd_answer_t *a);
/* /v3/lease/keepalive answers {"result": {"ID", "TTL"}}; a TTL of 0 (omitted)
 * means the lease is gone. */
int etcd_parse_keepalive(const char *p, size_t n, etcd_answer_t *a);
/* txn, put, deleterange, revoke, compaction: header (+ succeeded). */
int etcd_parse_simple(const char *p, size_t n, etcd_answer_t *a);
/* "requested lease not found" in any answer. */
bool etcd_answer_lease_gone(const etcd_answer_t *a);
/* "required revision has been compacted". */
bool etcd_answer_compacted(const etcd_answer_t *a);

/* ---- the watch stream ----
 * The gateway streams JSON objects back to back (newline separated, but any
 * white space is accepted). The splitter finds object boundaries incrementally
 * (strings and escapes tracked), so the same messages come out under every split
 * of the input; one message is at most `limit` bytes. */
typedef int (*etcd_msg_fn)(void *arg, const char *p, size_t n);
typedef struct etcd_stream {
    sbuf_t buf;     /* the message being assembled */
    size_t limit;
    int    depth;
    bool   in_str, esc, failed;
} etcd_stream_t;
void etcd_stream_init(etcd_stream_t *s, size_t limit);
/* Feeds bytes; fn gets each complete object. -1 (and stays failed) on a message
 * over the limit, bytes outside an object that are not white space, or when fn
 * returns non-zero. */
int  etcd_stream_feed(etcd_stream_t *s, const char *p, size_t n, etcd_msg_fn fn, void *arg);
void etcd_stream_reset(etcd_stream_t *s);
void etcd_stream_free(etcd_stream_t *s);

/* ---- lease bookkeeping ----
 * One lease per replica. Keepalives go out every ttl/3; a lease that has not been
 * confirmed for a whole TTL is presumed gone (etcd may have expired it while we
 * could not reach it), and a new one is granted when etcd answers again. */
typedef struct etcd_lease {
    uint64_t id;            /* 0: none */
    int64_t  ttl_ms;
    int64_t  confirmed_ms;  /* last grant or successful keepalive */
} etcd_lease_t;
void    etcd_lease_init(etcd_lease_t *l, int64_t ttl_ms);
void    etcd_lease_granted(etcd_lease_t *l, uint64_t id, int64_t ttl_s, int64_t now);
/* A keepalive answer: ttl_s > 0 confirms; 0 means etcd no longer has it. Returns
 * true while the lease is still held. */
bool    etcd_lease_kept(etcd_lease_t *l, int64_t ttl_s, int64_t now);
bool    etcd_lease_valid(const etcd_lease_t *l, int64_t now);
/* When the next keepalive is due (absolute ms). */
int64_t etcd_lease_next_keepalive(const etcd_lease_t *l);
void    etcd_lease_drop(etcd_lease_t *l);

#endif
