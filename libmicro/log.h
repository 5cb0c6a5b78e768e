/* log: leveled, structured logging for both binaries (one line per event, text for
 * humans or JSON lines for Kubernetes), with libwebsockets' own logs routed through it.
 * Call log_init() once at start-up (and log_route_lws() before lws_create_context()),
 * then log with the LOG_* macros and typed fields:
 *
 *     LOG_INFO("peer connected", LF_STR("peer", c->key), LF_INT("inflight", n));
 *
 * Field values are never parsed: a string stays one string field whatever it holds
 * (spaces, quotes, "k=v", control characters, invalid UTF-8), escaped for the format.
 *
 * Note: the LOG_INFO / LOG_DEBUG names clash with <syslog.h>; don't include both. */
#ifndef MICRO_LOG_H
#define MICRO_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level_t;

/* Repeated lines are rate-limited per message (the msg text and level): each has a
 * token bucket of LOG_RATE_BURST lines refilled at LOG_RATE_PER_SEC; what goes over
 * is counted, not formatted, and reported as one line
 *   msg="suppressed similar lines" suppressed=N similar_to="<msg>"
 * at the message's level when it is allowed again, when its slot is reused, or by
 * log_flush() once it has been quiet for a second. An fd-exhaustion accept loop
 * that wrote millions of lines writes a few hundred. */
#define LOG_RATE_BURST   100
#define LOG_RATE_PER_SEC 20
#define LOG_RATE_SLOTS   128
#define LOG_RATE_MSG     64 /* bytes of msg kept for the summary */

struct log_slot {
    uint64_t hash;      /* of level + msg; 0 = free */
    double   tokens;
    int64_t  last_ms;   /* last refill */
    int64_t  quiet_ms;  /* last suppressed line */
    uint64_t suppressed;
    int      level;
    char     msg[LOG_RATE_MSG];
};

/* The logger: one per process, owned by its main context (a local of main()), and
 * named to the LOG_* macros and the lws hook by log_init(). Fields other than the
 * rate-limit table are set at start-up and only read afterwards; the table is
 * guarded by mu, so any thread may log. */
typedef struct log {
    int   level;        /* the most verbose level emitted */
    bool  json;
    char  prog[64];
    FILE *out;          /* NULL = stderr */
    bool  lws_routed;
    bool  ready;
    int   rate_burst;   /* 0 = no rate limit */
    int   rate_per_sec;
    int   rate_quiet_ms; /* log_flush(): quiet this long before the summary */
    size_t pending;     /* slots holding suppressed lines */
    pthread_mutex_t mu;
    struct log_slot slots[LOG_RATE_SLOTS];
} log_t;

/* The process's logger, set by log_init(); the one piece of state log.c keeps
 * outside a struct, because lws's log hook and the call sites take no context.
 * NULL (before log_init, or in tests that never call it): lines at info and above
 * go to stderr as text, with no rate limit. */
extern log_t *log_current;

static inline bool log_enabled(int level)
{
    const log_t *l = log_current;
    return level <= (l ? l->level : LOG_LVL_INFO);
}

/* One typed field. Build them with the LF_* macros; key must be a string literal
 * (or otherwise constant) of [A-Za-z0-9_.-], 1..48 bytes: a field with another key is
 * dropped, as is a later field repeating a key. A key naming one of the fixed members
 * (ts, level, msg, prog, truncated, suppressed) is written with a '_' in front. */
enum { LOG_F_STR = 1, LOG_F_INT, LOG_F_UINT, LOG_F_BOOL };
typedef struct log_field {
    const char *key;
    int type;
    size_t len; /* LOG_F_STR: bytes of s, or (size_t)-1 for a NUL-terminated s */
    union {
        const char *s; /* NULL: JSON null, text - */
        long long i;
        unsigned long long u;
        bool b;
    } v;
} log_field_t;

#define LF_STR(k, val)                                                            \
    ((log_field_t){.key = (k), .type = LOG_F_STR, .len = (size_t)-1, .v.s = (val)})
/* At most n bytes of p (stops early at a NUL). */
#define LF_STRN(k, p, n)                                                          \
    ((log_field_t){.key = (k), .type = LOG_F_STR, .len = (size_t)(n), .v.s = (p)})
#define LF_INT(k, val)  ((log_field_t){.key = (k), .type = LOG_F_INT, .v.i = (long long)(val)})
#define LF_UINT(k, val)                                                           \
    ((log_field_t){.key = (k), .type = LOG_F_UINT, .v.u = (unsigned long long)(val)})
#define LF_BOOL(k, val) ((log_field_t){.key = (k), .type = LOG_F_BOOL, .v.b = (val) != 0})

/* Makes lg the process's logger. A zeroed lg starts at info, text, no prog, stderr,
 * the default rate limit; then level "error|warn|info|debug" (NULL = keep), format
 * "text|json" (NULL = keep) and prog, added as "prog" in json mode (NULL/"" = none).
 * Returns 0, or -1 (and changes nothing) on an unknown level or format. */
int log_init(log_t *lg, const char *level, const char *format, const char *prog);

/* Writes what is left of the suppressed-line counts and stops using lg (the process
 * logs to stderr again). Call before lg goes away. */
void log_close(log_t *lg);

/* Writes the summary of every message that has been quiet for a second after lines
 * were suppressed. Cheap when there are none; both binaries call it after every loop
 * pass. */
void log_flush(log_t *lg);

/* Rate limit for tests: burst lines, refilled at per_sec, summaries written by
 * log_flush() after quiet_ms; burst 0 turns it off. Refills every bucket (counts of
 * suppressed lines are kept). */
void log_set_rate(log_t *lg, int burst, int per_sec, int quiet_ms);

/* One log line: msg and nfields typed fields. Text: `TS LEVEL msg k=v k="a b"`, a
 * value quoted when it is empty or holds a space, '=', '"' or anything escaped; JSON:
 * {"ts":..,"level":..,"msg":..,"prog":..,fields..}. In both, control characters,
 * U+2028/U+2029, bidi controls and invalid UTF-8 are escaped. Thread-safe: formats
 * on the stack (an over-long line is cut and marked "truncated") and writes each line
 * with a single write(). Does nothing above the level; see LOG_RATE_BURST. */
void log_emit(int level, const char *msg, const log_field_t *fields, size_t nfields);

/* Route libwebsockets' logs through log_emit (msg = lws's line without its trailing
 * newline, field src=lws): LLL_ERR -> error, LLL_WARN -> warn, LLL_NOTICE/LLL_INFO
 * (and anything else) -> debug. Call after log_init() and before lws_create_context();
 * a later log_init() re-applies the lws mask for the new level. */
void log_route_lws(void);

/* The emit callback log_route_lws() installs; exposed for tests. */
void log_lws_line(int lws_level, const char *line);

/* Where the process logger's lines go; default (and NULL) is stderr. For tests. */
void log_set_output(FILE *f);

/* The fields are built only when the level is enabled: a disabled level costs one
 * compare, and its arguments are not evaluated. The leading {0} keeps the no-fields
 * form LOG_WARN("msg") a valid (non-empty) array. */
#define LOG_AT(lvl, msg, ...)                                                     \
    do {                                                                          \
        if (log_enabled((int)(lvl))) {                                            \
            const log_field_t log_f_[] = {{0}, __VA_ARGS__};                      \
            log_emit((lvl), (msg), log_f_ + 1,                                    \
                     sizeof(log_f_) / sizeof(log_f_[0]) - 1);                     \
        }                                                                         \
    } while (0)
#define LOG_ERROR(msg, ...) LOG_AT(LOG_LVL_ERROR, msg, __VA_ARGS__)
#define LOG_WARN(msg, ...)  LOG_AT(LOG_LVL_WARN, msg, __VA_ARGS__)
#define LOG_INFO(msg, ...)  LOG_AT(LOG_LVL_INFO, msg, __VA_ARGS__)
#define LOG_DEBUG(msg, ...) LOG_AT(LOG_LVL_DEBUG, msg, __VA_ARGS__)

#endif
