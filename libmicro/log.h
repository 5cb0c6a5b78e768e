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

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level_t;

/* The most verbose level emitted; the macros check it before any formatting.
 * Set by log_init(); not meant to change while other threads log. */
extern int log_level_current;

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

/* level "error|warn|info|debug" (NULL = keep, default info), format "text|json"
 * (NULL = keep, default text), prog added as "prog" in json mode (NULL/"" = none).
 * Returns 0, or -1 (and changes nothing) on an unknown level or format. */
int log_init(const char *level, const char *format, const char *prog);

/* One log line: msg and nfields typed fields. Text: `TS LEVEL msg k=v k="a b"`, a
 * value quoted when it is empty or holds a space, '=', '"' or anything escaped; JSON:
 * {"ts":..,"level":..,"msg":..,"prog":..,fields..}. In both, control characters,
 * U+2028/U+2029, bidi controls and invalid UTF-8 are escaped. Thread-safe: formats
 * on the stack (an over-long line is cut and marked "truncated") and writes each line
 * with a single write(). Does nothing above log_level_current. */
void log_emit(int level, const char *msg, const log_field_t *fields, size_t nfields);

/* Route libwebsockets' logs through log_emit (msg = lws's line without its trailing
 * newline, field src=lws): LLL_ERR -> error, LLL_WARN -> warn, LLL_NOTICE/LLL_INFO
 * (and anything else) -> debug. Call after log_init() and before lws_create_context();
 * a later log_init() re-applies the lws mask for the new level. */
void log_route_lws(void);

/* The emit callback log_route_lws() installs; exposed for tests. */
void log_lws_line(int lws_level, const char *line);

/* Where lines go; default (and NULL) is stderr. For tests. */
void log_set_output(FILE *f);

/* The fields are built only when the level is enabled: a disabled level costs one
 * compare, and its arguments are not evaluated. The leading {0} keeps the no-fields
 * form LOG_WARN("msg") a valid (non-empty) array. */
#define LOG_AT(lvl, msg, ...)                                                     \
    do {                                                                          \
        if ((int)(lvl) <= log_level_current) {                                    \
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
