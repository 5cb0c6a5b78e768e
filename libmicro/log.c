/* log: see log.h. Every line is built in a stack buffer and written with one write(),
 * so lines from several threads or processes sharing a pipe do not interleave and no
 * heap allocation happens per line. Fields arrive typed and are only ever escaped,
 * never parsed back, so no value can turn into another field (issue 10, item 4).
 * The state is the process's log_t (log.h), set up by main(); the only global is the
 * pointer to it. */
#include "log.h"
#include "utf8.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

/* Longest line written, newline included. Kept below PIPE_BUF (4096 on Linux) so a
 * line written to a pipe is atomic. */
#define LOG_LINE_MAX 4000
/* Room kept back while filling a line for what closes it: a closing quote,
 * ,"truncated":true and }\n. */
#define LOG_TAIL_RESERVE 32
/* Longest field key; see log.h. */
#define LOG_KEY_MAX 48

log_t *log_current;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_text[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

int log_init(log_t *lg, const char *level, const char *format, const char *prog)
{
    int lvl;
    bool json;

    if (!lg->ready) {
        lg->level = LOG_LVL_INFO;
        lg->json = false;
        lg->prog[0] = '\0';
        lg->out = NULL;
        lg->lws_routed = false;
        lg->rate_burst = LOG_RATE_BURST;
        lg->rate_per_sec = LOG_RATE_PER_SEC;
        lg->rate_quiet_ms = 1000;
        lg->pending = 0;
        memset(lg->slots, 0, sizeof(lg->slots));
        pthread_mutex_init(&lg->mu, NULL);
        lg->ready = true;
    }
    lvl = lg->level;
    json = lg->json;
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
    lg->level = lvl;
    lg->json = json;
    snprintf(lg->prog, sizeof(lg->prog), "%s", prog ? prog : "");
    log_current = lg;
    if (lg->lws_routed)
        log_route_lws();
    return 0;
}

void log_set_output(FILE *f)
{
    if (log_current)
        log_current->out = f;
}

void log_set_rate(log_t *lg, int burst, int per_sec, int quiet_ms)
{
    pthread_mutex_lock(&lg->mu);
    lg->rate_burst = burst > 0 ? burst : 0;
    lg->rate_per_sec = per_sec > 0 ? per_sec : 0;
    lg->rate_quiet_ms = quiet_ms > 0 ? quiet_ms : 0;
    for (size_t i = 0; i < LOG_RATE_SLOTS; i++)
        lg->slots[i].tokens = lg->rate_burst;
    pthread_mutex_unlock(&lg->mu);
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

/* ---- characters ----------------------------------------------------------------
 * One unit of a string: a byte or a whole UTF-8 sequence, and whether it is printed
 * as is or escaped. */
enum unit_kind {
    U_PLAIN,   /* printable ASCII other than '"' and '\\' */
    U_QUOTE,   /* '"' */
    U_BSLASH,  /* '\\' */
    U_CTL,     /* an ASCII control character or DEL */
    U_UTF8,    /* a valid sequence printed as is */
    U_UESC,    /* a valid sequence escaped as \uXXXX: C1 controls, U+2028/2029, bidi */
    U_INVALID, /* a byte that does not start a valid sequence */
};

static enum unit_kind next_unit(const char *str, size_t n, size_t *len, unsigned *cp)
{
    const unsigned char *s = (const unsigned char *)str;

    *len = 1;
    *cp = s[0];
    if (s[0] < 0x20 || s[0] == 0x7f)
        return U_CTL;
    if (s[0] == '"')
        return U_QUOTE;
    if (s[0] == '\\')
        return U_BSLASH;
    if (s[0] < 0x80)
        return U_PLAIN;
    *len = utf8_decode(str, n, cp);
    if (*len == 0) {
        *len = 1;
        *cp = s[0];
        return U_INVALID;
    }
    return utf8_is_control(*cp) ? U_UESC : U_UTF8;
}

/* Appends "\\" + kind + cp in `digits` hex digits: \xNN, \u00NN, \uNNNN. */
static void put_hex(struct line *l, const char *kind, unsigned cp, int digits)
{
    static const char hex[] = "0123456789abcdef";
    char e[8];
    size_t n = 0;
    e[n++] = '\\';
    while (*kind)
        e[n++] = *kind++;
    for (int d = digits - 1; d >= 0; d--)
        e[n++] = hex[(cp >> (4 * d)) & 15];
    put(l, e, n);
}

/* Appends s[0..n) escaped for the format: JSON string content, or a text value
 * (quote and backslash escaped only when the value is quoted). */
static void put_escaped(struct line *l, const char *s, size_t n, bool json, bool quoted)
{
    size_t k;
    unsigned cp;

    for (size_t i = 0; i < n && !l->full; i += k) {
        switch (next_unit(s + i, n - i, &k, &cp)) {
        case U_PLAIN:
        case U_UTF8:
            put(l, s + i, k);
            break;
        case U_QUOTE:
            put(l, "\\\"", json || quoted ? 2 : 1);
            break;
        case U_BSLASH:
            put(l, "\\\\", json || quoted ? 2 : 1);
            break;
        case U_CTL:
            if (cp == '\n')
                put(l, "\\n", 2);
            else if (cp == '\r')
                put(l, "\\r", 2);
            else if (cp == '\t')
                put(l, "\\t", 2);
            else
                put_hex(l, json ? "u00" : "x", cp, 2);
            break;
        case U_UESC:
            put_hex(l, "u", cp, 4);
            break;
        case U_INVALID:
            if (json)
                put(l, "\\ufffd", 6);
            else
                put_hex(l, "x", cp, 2);
            break;
        }
    }
}

/* Whether a text value must be quoted to read back as one value: empty, or holding
 * a space, '=', a quote, a backslash or anything escaped. */
static bool text_needs_quotes(const char *s, size_t n)
{
    size_t k;
    unsigned cp;

    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i += k) {
        enum unit_kind u = next_unit(s + i, n - i, &k, &cp);
        if (u == U_PLAIN) {
            if (s[i] == ' ' || s[i] == '=')
                return true;
        } else if (u != U_UTF8) {
            return true;
        }
    }
    return false;
}

/* A quoted string: always closed, even when its content had to be cut. Returns false
 * (and writes nothing) when not even the opening quote fits. */
static bool put_quoted(struct line *l, const char *s, size_t n, bool json)
{
    size_t start = l->len;

    put(l, "\"", 1);
    if (l->full) {
        l->len = start;
        return false;
    }
    put_escaped(l, s, n, json, true);
    start = l->len;
    put(l, "\"", 1);
    if (l->len == start) /* the content, or just the closing quote, did not fit */
        put_tail(l, "\"");
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

static bool key_ok(const char *k)
{
    size_t n = 0;

    if (!k)
        return false;
    for (; k[n]; n++) {
        char c = k[n];
        if (n >= LOG_KEY_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n > 0;
}

static bool is_reserved_key(const char *k)
{
    static const char *const reserved[] = {"ts",   "level",     "msg",
                                           "prog", "truncated", "suppressed"};

    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(reserved[i], k) == 0)
            return true;
    return false;
}

/* Whether field i is written: a valid key not used by an earlier written field. */
static bool field_used(const log_field_t *f, size_t i)
{
    if (!key_ok(f[i].key) || f[i].type < LOG_F_STR || f[i].type > LOG_F_BOOL)
        return false;
    for (size_t j = 0; j < i; j++)
        if (key_ok(f[j].key) && f[j].type >= LOG_F_STR && f[j].type <= LOG_F_BOOL &&
            strcmp(f[j].key, f[i].key) == 0)
            return false;
    return true;
}

static size_t str_len(const log_field_t *f)
{
    if (f->len == (size_t)-1)
        return strlen(f->v.s);
    return strnlen(f->v.s, f->len);
}

/* One field, preceded by its separator; dropped whole if it does not fit, except a
 * string, which is cut (and still closed). */
static void put_field(struct line *l, const log_field_t *f, bool json, bool own)
{
    size_t start = l->len;
    char num[32];
    const char *val = NULL;
    size_t vlen = 0;

    put(l, json ? ",\"" : " ", json ? 2 : 1);
    if (!own && is_reserved_key(f->key))
        put(l, "_", 1);
    puts_(l, f->key); /* key_ok(): nothing to escape */
    put(l, json ? "\":" : "=", json ? 2 : 1);
    if (l->full) {
        l->len = start; /* drop the whole field rather than leave a dangling key */
        return;
    }
    switch (f->type) {
    case LOG_F_STR:
        if (!f->v.s) {
            val = json ? "null" : "-";
            break;
        }
        vlen = str_len(f);
        if (json || text_needs_quotes(f->v.s, vlen)) {
            if (!put_quoted(l, f->v.s, vlen, json))
                l->len = start;
        } else {
            put_escaped(l, f->v.s, vlen, false, false);
        }
        return; /* a string cut short is still valid: keep it */
    case LOG_F_INT:
        snprintf(num, sizeof(num), "%lld", f->v.i);
        val = num;
        break;
    case LOG_F_UINT:
        /* Above INT64_MAX many JSON readers (jansson among them) refuse the number. */
        snprintf(num, sizeof(num), json && f->v.u > (unsigned long long)INT64_MAX ? "\"%llu\"" : "%llu",
                 f->v.u);
        val = num;
        break;
    case LOG_F_BOOL:
        val = f->v.b ? "true" : "false";
        break;
    }
    puts_(l, val);
    if (l->full)
        l->len = start; /* a number or bool that did not fit: drop the field */
}

/* ---- output ------------------------------------------------------------------- */

static void write_line(const log_t *lg, const char *buf, size_t len)
{
    FILE *f = lg && lg->out ? lg->out : stderr;
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

/* Text mode writes msg bare (it is normally a literal) unless it holds '=' or '"',
 * which could make part of it read as a field, or a backslash, which could pass for an
 * escape: then it is quoted. */
static void put_text_msg(struct line *l, const char *msg, size_t n)
{
    if (memchr(msg, '=', n) || memchr(msg, '"', n) || memchr(msg, '\\', n))
        put_quoted(l, msg, n, false);
    else
        put_escaped(l, msg, n, false, false);
}

/* Formats and writes one line. own: the logger's own summary line, whose fields may
 * use the reserved key "suppressed". */
static void emit_line(const log_t *lg, int level, const char *msg, const log_field_t *fields,
                      size_t nfields, bool own)
{
    bool json = lg && lg->json;
    const char *prog = lg ? lg->prog : "";
    struct line l;

    l.len = 0;
    l.cap = sizeof(l.buf) - LOG_TAIL_RESERVE;
    l.full = false;

    if (json) {
        puts_(&l, "{\"ts\":\"");
        put_timestamp(&l);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_names[level]);
        puts_(&l, "\",\"msg\":");
        put_quoted(&l, msg, strlen(msg), true);
        if (prog[0] && !l.full) {
            size_t start = l.len;
            puts_(&l, ",\"prog\":");
            if (l.full || !put_quoted(&l, prog, strlen(prog), true))
                l.len = start; /* no dangling key */
        }
    } else {
        put_timestamp(&l);
        puts_(&l, " ");
        puts_(&l, level_text[level]);
        puts_(&l, " ");
        put_text_msg(&l, msg, strlen(msg));
    }
    for (size_t i = 0; i < nfields && !l.full; i++)
        if (field_used(fields, i))
            put_field(&l, &fields[i], json, own);
    if (json) {
        if (l.full)
            put_tail(&l, ",\"truncated\":true");
        put_tail(&l, "}\n");
    } else {
        if (l.full)
            put_tail(&l, " truncated=true");
        put_tail(&l, "\n");
    }
    write_line(lg, l.buf, l.len);
}

/* ---- rate limit ----------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a of level and msg; never 0 (0 marks a free slot). Not keyed: a collision
 * only makes two messages share one bucket, it never lets a line through. */
static uint64_t msg_hash(int level, const char *msg)
{
    uint64_t h = 14695981039346656037ull ^ (uint64_t)level;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h | 1;
}

/* A slot's suppressed count, taken out of the table to be written. */
struct summary {
    uint64_t n;
    int level;
    char msg[LOG_RATE_MSG];
};

static void take_summary(log_t *lg, struct log_slot *s, struct summary *sum)
{
    sum->n = s->suppressed;
    sum->level = s->level;
    memcpy(sum->msg, s->msg, sizeof(sum->msg));
    s->suppressed = 0;
    lg->pending--;
}

static void write_summary(const log_t *lg, const struct summary *sum)
{
    const log_field_t f[] = {LF_UINT("suppressed", sum->n), LF_STR("similar_to", sum->msg)};
    emit_line(lg, sum->level, "suppressed similar lines", f, 2, true);
}

/* Whether a line of (level, msg) may be written now; *sum gets a summary to write
 * first (sum->n > 0) whether or not the line itself is. */
static bool rate_admit(log_t *lg, int level, const char *msg, struct summary *sum)
{
    uint64_t h = msg_hash(level, msg);
    int64_t now = mono_ms();
    struct log_slot *s = &lg->slots[h % LOG_RATE_SLOTS];
    bool ok;

    sum->n = 0;
    pthread_mutex_lock(&lg->mu);
    if (lg->rate_burst <= 0) {
        pthread_mutex_unlock(&lg->mu);
        return true;
    }
    if (s->hash != h) {
        if (s->suppressed)
            take_summary(lg, s, sum);
        if (s->hash == 0) { /* a colliding message keeps the bucket: no fresh burst */
            s->tokens = lg->rate_burst;
            s->last_ms = now;
        }
        s->hash = h;
        s->level = level;
        snprintf(s->msg, sizeof(s->msg), "%s", msg);
    }
    s->tokens += (double)(now - s->last_ms) * lg->rate_per_sec / 1000.0;
    if (s->tokens > lg->rate_burst)
        s->tokens = lg->rate_burst;
    s->last_ms = now;
    ok = s->tokens >= 1.0;
    if (ok) {
        s->tokens -= 1.0;
        if (s->suppressed)
            take_summary(lg, s, sum);
    } else {
        if (!s->suppressed)
            lg->pending++;
        s->suppressed++;
        s->quiet_ms = now;
    }
    pthread_mutex_unlock(&lg->mu);
    return ok;
}

static void flush(log_t *lg, bool all)
{
    int64_t now;

    pthread_mutex_lock(&lg->mu);
    if (!lg->pending) {
        pthread_mutex_unlock(&lg->mu);
        return;
    }
    now = mono_ms();
    for (size_t i = 0; i < LOG_RATE_SLOTS && lg->pending; i++) {
        struct log_slot *s = &lg->slots[i];
        struct summary sum;
        if (!s->suppressed || (!all && now - s->quiet_ms < lg->rate_quiet_ms))
            continue;
        take_summary(lg, s, &sum);
        write_summary(lg, &sum); /* under the lock: the summary bypasses the limiter */
    }
    pthread_mutex_unlock(&lg->mu);
}

void log_flush(log_t *lg)
{
    if (lg && lg->ready)
        flush(lg, false);
}

void log_close(log_t *lg)
{
    if (!lg->ready)
        return;
    flush(lg, true);
    if (log_current == lg)
        log_current = NULL;
    pthread_mutex_destroy(&lg->mu);
    lg->ready = false;
}

void log_emit(int level, const char *msg, const log_field_t *fields, size_t nfields)
{
    log_t *lg = log_current;
    struct summary sum;
    bool ok = true;

    if (!log_enabled(level))
        return;
    if (level < LOG_LVL_ERROR)
        level = LOG_LVL_ERROR;
    if (level > LOG_LVL_DEBUG)
        level = LOG_LVL_DEBUG;
    if (!msg)
        msg = "";
    if (!fields)
        nfields = 0;
    if (lg) {
        ok = rate_admit(lg, level, msg, &sum);
        if (sum.n)
            write_summary(lg, &sum);
    }
    if (ok)
        emit_line(lg, level, msg, fields, nfields, false);
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
    if (!log_enabled(lvl) || !line)
        return;

    /* lws ends every line with a newline; copy and trim. */
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    {
        char msg[512];
        if (n >= sizeof(msg))
            n = sizeof(msg) - 1;
        memcpy(msg, line, n);
        msg[n] = '\0';
        LOG_AT(lvl, msg, LF_STR("src", "lws"));
    }
}

void log_route_lws(void)
{
    /* Only ask lws for what we would print: formatting its chatty levels costs. */
    int mask = LLL_ERR;

    if (log_enabled(LOG_LVL_WARN))
        mask |= LLL_WARN;
    if (log_enabled(LOG_LVL_DEBUG))
        mask |= LLL_NOTICE | LLL_INFO;
    if (log_current)
        log_current->lws_routed = true;
    lws_set_log_level(mask, log_lws_line);
}
