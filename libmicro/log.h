/* log: leveled, structured logging for both binaries (one line per event, text for
 * humans or JSON lines for Kubernetes), with libwebsockets' own logs routed through it.
 * Call log_init() once at start-up (and log_route_lws() before lws_create_context()),
 * then log with the LOG_* macros from any thread.
 *
 * Note: the LOG_INFO / LOG_DEBUG names clash with <syslog.h>; don't include both. */
#ifndef MICRO_LOG_H
#define MICRO_LOG_H

#include <stdio.h>

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level_t;

/* The most verbose level emitted; the macros check it before any formatting.
 * Set by log_init(); not meant to change while other threads log. */
extern int log_level_current;

/* level "error|warn|info|debug" (NULL = keep, default info), format "text|json"
 * (NULL = keep, default text), prog added as "prog" in json mode (NULL/"" = none).
 * Returns 0, or -1 (and changes nothing) on an unknown level or format. */
int log_init(const char *level, const char *format, const char *prog);

/* One log line. fields_fmt is printf-style and expands to space-separated key=value
 * pairs; a value may be double-quoted to hold spaces (err="connection refused"), with
 * \" and \\ inside quotes. In json mode a plain integer or true/false becomes a JSON
 * number/bool, anything else (including every quoted value) a string. Thread-safe:
 * formats on the stack (over-long lines are cut and marked "truncated") and writes
 * each line with a single write(). Does nothing above log_level_current. */
void log_emit(int level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Route libwebsockets' logs through log_emit (msg = lws's line without its trailing
 * newline, field src=lws): LLL_ERR -> error, LLL_WARN -> warn, LLL_NOTICE/LLL_INFO
 * (and anything else) -> debug. Call after log_init() and before lws_create_context();
 * a later log_init() re-applies the lws mask for the new level. */
void log_route_lws(void);

/* The emit callback log_route_lws() installs; exposed for tests. */
void log_lws_line(int lws_level, const char *line);

/* Where lines go; default (and NULL) is stderr. For tests. */
void log_set_output(FILE *f);

/* The fields argument, when present, must be a string literal. " " (not "") is pasted
 * in front of it so that the no-fields form LOG_WARN("msg") does not pass a
 * zero-length format string (gcc's -Wformat-zero-length is part of -Wall). */
#define LOG_AT(lvl, msg, ...)                                                     \
    do {                                                                          \
        if ((int)(lvl) <= log_level_current)                                      \
            log_emit((lvl), (msg), " " __VA_ARGS__);                              \
    } while (0)
#define LOG_ERROR(msg, ...) LOG_AT(LOG_LVL_ERROR, msg, __VA_ARGS__)
#define LOG_WARN(msg, ...)  LOG_AT(LOG_LVL_WARN, msg, __VA_ARGS__)
#define LOG_INFO(msg, ...)  LOG_AT(LOG_LVL_INFO, msg, __VA_ARGS__)
#define LOG_DEBUG(msg, ...) LOG_AT(LOG_LVL_DEBUG, msg, __VA_ARGS__)

#endif
