/* log: see log.h. Every line is built in a stack buffer and written with one write(),
 * so lines from several threads or processes sharing a pipe do not interleave and no
 * heap allocation happens per line. The only state is set at start-up. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

/* Longest line written, newline included. Kept below PIPE_BUF (4096 on Linux) so a
 * line written to a pipe is atomic. */
#define LOG_LINE_MAX 4000
/* Longest expansion of fields_fmt kept before parsing. */
#define LOG_FIELDS_MAX 3000
/* Room kept back while filling a line for what closes it: a closing quote,
 * ,"truncated":true and }\n. */
#define LOG_TAIL_RESERVE 32

int log_level_current = LOG_LVL_INFO;

static bool log_json;
static char log_prog[64];
static FILE *log_out; /* NULL = stderr */
static bool log_lws_routed;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_text[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

int log_init(const char *level, const char *format, const char *prog)
{
    int lvl = log_level_current;
    bool json = log_json;

    if (level) {
        lvl = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(level, level_names[i]) == 0)
                lvl = i;
        if (lvl < 0)
            return -1;
    }
    if (format) {
        if (strcmp(format, "json") == 0)
            json = true;
        else if (strcmp(format, "text") == 0)
            json = false;
        else
            return -1;
    }
    log_level_current = lvl;
    log_json = json;
    snprintf(log_prog, sizeof(log_prog), "%s", prog ? prog : "");
    if (log_lws_routed)
        log_route_lws();
    return 0;
}

void log_set_output(FILE *f)
{
    log_out = f;
}

/* ---- line buffer ---------------------------------------------------------------
 * Appends never go past cap (the buffer size minus LOG_TAIL_RESERVE); an append that
 * does not fit sets full and writes nothing, so a line is cut only between whole
 * characters or escape sequences. The closing bytes are then written into the
 * reserve with put_tail(). */
struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    size_t cap;
    bool full;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (l->full || n > l->cap - l->len) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_tail(struct line *l, const char *s)
{
    size_t n = strlen(s);

    if (n > sizeof(l->buf) - l->len)
        n = sizeof(l->buf) - l->len; /* cannot happen with LOG_TAIL_RESERVE */
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0 if invalid. */
static size_t utf8_len(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len;
    unsigned cp;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range or a surrogate */
    return len;
}

/* Appends s[0..n) with control characters (and, for JSON, quotes and backslashes)
 * escaped. Text mode escapes only what would break the one-line shape. With unquote,
 * the \" and \\ escapes of a quoted field value are undone first. */
static void put_escaped(struct line *l, const char *s, size_t n, bool json, bool unquote)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n && !l->full; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];

        if (unquote && c == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\'))
            c = (unsigned char)s[++i];
        switch (c) {
        case '"':
            put(l, json ? "\\\"" : "\"", json ? 2 : 1);
            break;
        case '\\':
            put(l, "\\\\", json ? 2 : 1);
            break;
        case '\n':
            put(l, "\\n", 2);
            break;
        case '\r':
            put(l, "\\r", 2);
            break;
        case '\t':
            put(l, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                if (json) {
                    memcpy(e, "\\u00", 4);
                    e[4] = hex[c >> 4];
                    e[5] = hex[c & 15];
                    put(l, e, 6);
                } else {
                    e[0] = '\\';
                    e[1] = 'x';
                    e[2] = hex[c >> 4];
                    e[3] = hex[c & 15];
                    put(l, e, 4);
                }
            } else if (c < 0x80) {
                put(l, (const char *)&c, 1);
            } else {
                /* Whole UTF-8 sequences only, so a cut never splits one and a
                 * JSON reader never sees invalid UTF-8. */
                size_t k = utf8_len(s + i, n - i);
                if (k) {
                    put(l, s + i, k);
                    i += k - 1;
                } else if (json) {
                    put(l, "\\ufffd", 6);
                } else {
                    e[0] = '\\';
                    e[1] = 'x';
                    e[2] = hex[c >> 4];
                    e[3] = hex[c & 15];
                    put(l, e, 4);
                }
            }
        }
    }
}

/* A JSON string: always closed, even when its content had to be cut. Returns false
 * (and writes nothing) when not even the opening quote fits. */
static bool put_json_string(struct line *l, const char *s, size_t n, bool unquote)
{
    size_t start = l->len;

    put(l, "\"", 1);
    if (l->full) {
        l->len = start;
        return false;
    }
    put_escaped(l, s, n, true, unquote);
    if (l->full)
        put_tail(l, "\"");
    else
        put(l, "\"", 1);
    return true;
}

static void put_timestamp(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    char b[40];
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(b + n, sizeof(b) - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
    puts_(l, b);
}

/* ---- fields ------------------------------------------------------------------- */

struct field {
    const char *key;
    size_t klen;
    const char *val; /* raw, still with quotes and escapes */
    size_t vlen;
    bool quoted;
    bool has_val;
};

/* Splits off the next space-separated field of *p; false at the end. */
static bool next_field(const char **p, struct field *f)
{
    const char *s = *p;

    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return false;
    memset(f, 0, sizeof(*f));
    f->key = s;
    while (*s && *s != '=' && *s != ' ' && *s != '\t')
        s++;
    f->klen = (size_t)(s - f->key);
    if (*s == '=') {
        s++;
        f->has_val = true;
        if (*s == '"') {
            f->quoted = true;
            f->val = ++s;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1])
                    s++;
                s++;
            }
            f->vlen = (size_t)(s - f->val);
            if (*s == '"')
                s++;
        } else {
            f->val = s;
            while (*s && *s != ' ' && *s != '\t')
                s++;
            f->vlen = (size_t)(s - f->val);
        }
    }
    *p = s;
    return true;
}

/* Fits a long long comfortably, so every JSON reader takes it as an integer. */
static bool is_json_int(const char *s, size_t n)
{
    size_t i = 0;

    if (n && s[0] == '-')
        i++;
    if (i == n || n - i > 18)
        return false;
    if (s[i] == '0' && n - i > 1)
        return false;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool is_reserved_key(const char *k, size_t n)
{
    static const char *const reserved[] = {"ts", "level", "msg", "prog", "truncated"};

    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == n && memcmp(reserved[i], k, n) == 0)
            return true;
    return false;
}

static void put_json_field(struct line *l, const struct field *f)
{
    size_t start = l->len;
    char key[72];
    size_t klen = f->klen;
    const char *k = f->key;

    if (klen == 0)
        return;
    /* A field must not shadow the fixed members. */
    if (is_reserved_key(f->key, f->klen)) {
        klen = (size_t)snprintf(key, sizeof(key), "_%.*s", (int)f->klen, f->key);
        k = key;
    }
    put(l, ",", 1);
    if (!l->full && put_json_string(l, k, klen, false) && !l->full)
        put(l, ":", 1);
    if (l->full) {
        l->len = start; /* drop the whole field rather than leave a dangling key */
        return;
    }
    if (!f->has_val) {
        put(l, "true", 4); /* a bare word is a flag */
    } else if (f->quoted) {
        if (!put_json_string(l, f->val, f->vlen, true))
            l->len = start;
        return; /* a string cut short is still valid: keep it */
    } else if (is_json_int(f->val, f->vlen) ||
               (f->vlen == 4 && memcmp(f->val, "true", 4) == 0) ||
               (f->vlen == 5 && memcmp(f->val, "false", 5) == 0)) {
        put(l, f->val, f->vlen);
    } else {
        if (!put_json_string(l, f->val, f->vlen, false))
            l->len = start;
        return;
    }
    if (l->full)
        l->len = start; /* a number or bool that did not fit: drop the field */
}

/* ---- output ------------------------------------------------------------------- */

static void write_line(const char *buf, size_t len)
{
    FILE *f = log_out ? log_out : stderr;
    int fd = fileno(f);

    if (fd < 0) { /* e.g. a memory stream */
        fwrite(buf, 1, len, f);
        fflush(f);
        return;
    }
    fflush(f); /* keep order with anything already buffered in the stream */
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report it */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void log_emit(int level, const char *msg, const char *fields_fmt, ...)
{
    struct line l;
    char fields[LOG_FIELDS_MAX];
    bool cut = false;
    struct field f;
    const char *p;
    int n;

    if (level > log_level_current)
        return;
    if (level < LOG_LVL_ERROR)
        level = LOG_LVL_ERROR;
    if (level > LOG_LVL_DEBUG)
        level = LOG_LVL_DEBUG;
    if (!msg)
        msg = "";

    fields[0] = '\0';
    if (fields_fmt) {
        va_list ap;
        va_start(ap, fields_fmt);
        n = vsnprintf(fields, sizeof(fields), fields_fmt, ap);
        va_end(ap);
        if (n < 0)
            fields[0] = '\0';
        else if ((size_t)n >= sizeof(fields))
            cut = true;
    }

    l.len = 0;
    l.cap = sizeof(l.buf) - LOG_TAIL_RESERVE;
    l.full = false;

    if (log_json) {
        puts_(&l, "{\"ts\":\"");
        put_timestamp(&l);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_names[level]);
        puts_(&l, "\",\"msg\":");
        put_json_string(&l, msg, strlen(msg), false);
        if (log_prog[0] && !l.full) {
            puts_(&l, ",\"prog\":");
            put_json_string(&l, log_prog, strlen(log_prog), false);
        }
        p = fields;
        while (!l.full && next_field(&p, &f))
            put_json_field(&l, &f);
        if (l.full || cut)
            put_tail(&l, ",\"truncated\":true");
        put_tail(&l, "}\n");
    } else {
        put_timestamp(&l);
        puts_(&l, " ");
        puts_(&l, level_text[level]);
        puts_(&l, " ");
        put_escaped(&l, msg, strlen(msg), false, false);
        p = fields;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p) {
            puts_(&l, " ");
            put_escaped(&l, p, strlen(p), false, false);
        }
        if (l.full || cut)
            put_tail(&l, " truncated=true");
        put_tail(&l, "\n");
    }
    write_line(l.buf, l.len);
}

/* ---- libwebsockets ------------------------------------------------------------ */

void log_lws_line(int lws_level, const char *line)
{
    int lvl = LOG_LVL_DEBUG;
    size_t n;

    if (lws_level & LLL_ERR)
        lvl = LOG_LVL_ERROR;
    else if (lws_level & LLL_WARN)
        lvl = LOG_LVL_WARN;
    if (lvl > log_level_current || !line)
        return;

    /* lws ends every line with a newline; msg is %s-free, so copy and trim. */
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    {
        char msg[512];
        if (n >= sizeof(msg))
            n = sizeof(msg) - 1;
        memcpy(msg, line, n);
        msg[n] = '\0';
        log_emit(lvl, msg, "src=lws");
    }
}

void log_route_lws(void)
{
    /* Only ask lws for what we would print: formatting its chatty levels costs. */
    int mask = LLL_ERR;

    if (log_level_current >= LOG_LVL_WARN)
        mask |= LLL_WARN;
    if (log_level_current >= LOG_LVL_DEBUG)
        mask |= LLL_NOTICE | LLL_INFO;
    log_lws_routed = true;
    lws_set_log_level(mask, log_lws_line);
}
