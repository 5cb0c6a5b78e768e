/* config: see config.h. One pass over argv finds --help/--version/--config and syntax
 * errors; then the sources are applied from lowest to highest precedence (default,
 * file, env, argv), each value parsed and checked by the same code whatever its
 * source, so an error names where the bad value came from. Runs once, at start-up,
 * on the main thread. */
#include "config.h"

#include "addr.h"
#include "addrlist.h"
#include "url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

const char *const cfg_log_levels[] = {"error", "warn", "info", "debug", NULL};
const char *const cfg_log_formats[] = {"text", "json", NULL};

static FILE *cfg_out; /* NULL = stdout */
static FILE *cfg_err; /* NULL = stderr */

void cfg_set_output(FILE *out, FILE *err)
{
    cfg_out = out;
    cfg_err = err;
}

/* Everything one cfg_load() call works with. */
struct ctx {
    const cfg_opt_t *t;
    size_t n;
    char *base;              /* the caller's struct */
    const char *prog;
    unsigned char *set;      /* per option: some source gave it a value */
    unsigned char *argv_seen; /* per list option: argv already replaced the list */
    size_t *file_line;       /* per option: line of its YAML key, for duplicates */
};

/* ---- small helpers ------------------------------------------------------------ */

/* Prints "prog: <message>" as one line on the error output; returns 2. */
__attribute__((format(printf, 2, 3))) static int fail(const struct ctx *c, const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof(line) / 2, "%s: ", c->prog);
    va_list ap;
    FILE *f = cfg_err ? cfg_err : stderr;

    if (n < 0 || (size_t)n >= sizeof(line) / 2)
        n = (int)(sizeof(line) / 2) - 1;

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* The message must stay one line whatever a value contained. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fputs(line, f);
    fputc('\n', f);
    fflush(f);
    return 2;
}

/* A value shown in an error, quoted, with control characters escaped and cut to a
 * sensible length. */
static const char *quoted(const char *v, char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    buf[o++] = '"';
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if (o + 8 >= len) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static void *field(const struct ctx *c, const cfg_opt_t *o)
{
    return c->base + o->offset;
}

static void list_free(cfg_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Takes ownership of s (also on failure). */
static int list_push(cfg_list_t *l, char *s)
{
    char **v = realloc(l->v, (l->n + 2) * sizeof(*v));

    if (!v) {
        free(s);
        return -1;
    }
    v[l->n++] = s;
    v[l->n] = NULL;
    l->v = v;
    return 0;
}

static bool int_bounded(const cfg_opt_t *o)
{
    return !(o->min == 0 && o->max == 0);
}

/* ---- parsing one value ------------------------------------------------------- */

/* A parsed scalar, before it is stored. */
struct val {
    char *s;       /* CFG_STR / CFG_ENUM / list item: owned */
    long long i;   /* CFG_INT */
    bool b;        /* CFG_BOOL */
};

/* Parses text for option o (for a list: one item). where names the source for the
 * error ("--api-port", "env X", "file:3: key"). Returns 0 or 2 (reported). */
static int parse_one(const struct ctx *c, const cfg_opt_t *o, const char *text,
                     const char *where, struct val *out)
{
    char q[160], why[200];

    memset(out, 0, sizeof(*out));
    switch (o->type) {
    case CFG_INT: {
        const char *p = text + (text[0] == '-');
        char *end;
        long long lo = int_bounded(o) ? o->min : LLONG_MIN;
        long long hi = int_bounded(o) ? o->max : LLONG_MAX;
        bool ok = *p != '\0';

        for (; *p && ok; p++)
            ok = *p >= '0' && *p <= '9';
        if (ok) {
            errno = 0;
            out->i = strtoll(text, &end, 10);
            ok = errno == 0 && *end == '\0' && out->i >= lo && out->i <= hi;
        }
        if (!ok) {
            if (int_bounded(o))
                return fail(c, "%s: must be an integer between %lld and %lld (got %s)", where,
                            o->min, o->max, quoted(text, q, sizeof(q)));
            return fail(c, "%s: must be an integer (got %s)", where, quoted(text, q, sizeof(q)));
        }
        break;
    }
    case CFG_BOOL:
        if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0)
            out->b = true;
        else if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0)
            out->b = false;
        else
            return fail(c, "%s: must be true or false (got %s)", where, quoted(text, q, sizeof(q)));
        break;
    case CFG_ENUM: {
        const char *hit = NULL;
        char choices[200];
        size_t n = 0;

        for (size_t k = 0; o->choices && o->choices[k]; k++) {
            if (strcasecmp(text, o->choices[k]) == 0)
                hit = o->choices[k];
            n += (size_t)snprintf(choices + n, n < sizeof(choices) ? sizeof(choices) - n : 0,
                                  "%s%s", k ? ", " : "", o->choices[k]);
            if (n >= sizeof(choices))
                n = sizeof(choices) - 1;
        }
        if (!hit)
            return fail(c, "%s: must be one of %s (got %s)", where, n ? choices : "(none)",
                        quoted(text, q, sizeof(q)));
        text = hit;
        break;
    }
    case CFG_STR:
    case CFG_LIST:
        break;
    }
    if (o->check) {
        why[0] = '\0';
        if (o->check(text, why, sizeof(why)) != 0)
            return fail(c, "%s: %s (got %s)", where, why[0] ? why : "invalid value",
                        quoted(text, q, sizeof(q)));
    }
    if (o->type == CFG_STR || o->type == CFG_ENUM || o->type == CFG_LIST) {
        out->s = strdup(text);
        if (!out->s)
            return fail(c, "out of memory");
    }
    return 0;
}

/* Parses and stores a scalar option, replacing (and freeing) what a lower source set. */
static int set_scalar(struct ctx *c, size_t idx, const char *text, const char *where)
{
    const cfg_opt_t *o = &c->t[idx];
    struct val v;
    int rc = parse_one(c, o, text, where, &v);

    if (rc)
        return rc;
    switch (o->type) {
    case CFG_STR:
    case CFG_ENUM: {
        char **dst = field(c, o);
        free(*dst);
        *dst = v.s;
        break;
    }
    case CFG_INT:
        *(long long *)field(c, o) = v.i;
        break;
    case CFG_BOOL:
        *(bool *)field(c, o) = v.b;
        break;
    case CFG_LIST:
        free(v.s); /* not reached: lists go through the list functions */
        break;
    }
    c->set[idx] = 1;
    return 0;
}

/* Appends one item (already split) to a list being built. Empty items are skipped. */
static int list_add(struct ctx *c, const cfg_opt_t *o, cfg_list_t *l, const char *text,
                    const char *where)
{
    struct val v;
    int rc;

    if (!*text)
        return 0;
    rc = parse_one(c, o, text, where, &v);
    if (rc)
        return rc;
    if (list_push(l, v.s))
        return fail(c, "out of memory");
    return 0;
}

/* Replaces option idx's list with l (taking it over). */
static void list_replace(struct ctx *c, size_t idx, cfg_list_t *l)
{
    cfg_list_t *dst = field(c, &c->t[idx]);

    list_free(dst);
    *dst = *l;
    l->v = NULL;
    l->n = 0;
    c->set[idx] = 1;
}

/* Sets a list from comma-separated text (env, default): a whole new list. */
static int set_list_csv(struct ctx *c, size_t idx, const char *text, const char *where)
{
    cfg_list_t l = {0};
    const char *p = text;

    while (1) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *item;
        int rc;

        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        item = strndup(p, len);
        if (!item) {
            list_free(&l);
            return fail(c, "out of memory");
        }
        rc = list_add(c, &c->t[idx], &l, item, where);
        free(item);
        if (rc) {
            list_free(&l);
            return rc;
        }
        if (!e)
            break;
        p = e + 1;
    }
    list_replace(c, idx, &l);
    return 0;
}

/* Any source's text for option idx: comma-separated for lists. */
static int set_text(struct ctx *c, size_t idx, const char *text, const char *where)
{
    if (c->t[idx].type == CFG_LIST)
        return set_list_csv(c, idx, text, where);
    return set_scalar(c, idx, text, where);
}

/* ---- YAML file ---------------------------------------------------------------- */

static size_t node_line(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static bool yaml_is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static long find_opt(const struct ctx *c, const char *name, size_t len, bool yaml_key)
{
    for (size_t i = 0; i < c->n; i++) {
        const char *a = c->t[i].name;
        const char *b = yaml_key ? c->t[i].yaml : NULL;
        if ((strlen(a) == len && memcmp(a, name, len) == 0) ||
            (b && strlen(b) == len && memcmp(b, name, len) == 0))
            return (long)i;
    }
    return -1;
}

/* A YAML scalar's text; NUL bytes (possible through "\0") are refused. */
static int scalar_text(const struct ctx *c, const char *path, const char *key, yaml_node_t *n,
                       const char **text)
{
    *text = (const char *)n->data.scalar.value;
    if (strlen(*text) != n->data.scalar.length)
        return fail(c, "%s:%zu: %s: must not contain NUL characters", path, node_line(n), key);
    return 0;
}

static int apply_yaml(struct ctx *c, const char *path, yaml_document_t *doc, size_t idx,
                      const char *key, yaml_node_t *val)
{
    const cfg_opt_t *o = &c->t[idx];
    char where[512];
    const char *text;
    int rc;

    snprintf(where, sizeof(where), "%s:%zu: %s", path, node_line(val), key);
    if (val->type == YAML_MAPPING_NODE)
        return fail(c, "%s: must be %s, not a mapping", where,
                    o->type == CFG_LIST ? "a list" : "a single value");
    if (val->type == YAML_SEQUENCE_NODE) {
        cfg_list_t l = {0};

        if (o->type != CFG_LIST)
            return fail(c, "%s: must be a single value, not a list", where);
        for (yaml_node_item_t *it = val->data.sequence.items.start;
             it < val->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(doc, *it);
            snprintf(where, sizeof(where), "%s:%zu: %s", path, node_line(item), key);
            if (item->type != YAML_SCALAR_NODE) {
                list_free(&l);
                return fail(c, "%s: list items must be single values", where);
            }
            if (yaml_is_null(item))
                continue;
            rc = scalar_text(c, path, key, item, &text);
            if (!rc)
                rc = list_add(c, o, &l, text, where);
            if (rc) {
                list_free(&l);
                return rc;
            }
        }
        list_replace(c, idx, &l);
        return 0;
    }
    if (yaml_is_null(val))
        return 0; /* "key:" alone: not set here */
    rc = scalar_text(c, path, key, val, &text);
    if (rc)
        return rc;
    if (o->type == CFG_LIST) { /* a scalar is a one-item list */
        cfg_list_t l = {0};
        rc = list_add(c, o, &l, text, where);
        if (rc)
            return rc;
        list_replace(c, idx, &l);
        return 0;
    }
    return set_scalar(c, idx, text, where);
}

static int yaml_fail(const struct ctx *c, const char *path, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "cannot parse";

    if (p->error == YAML_READER_ERROR)
        return fail(c, "%s: invalid YAML: %s", path, problem);
    if (p->error == YAML_MEMORY_ERROR)
        return fail(c, "out of memory");
    return fail(c, "%s:%zu: invalid YAML: %s", path, p->problem_mark.line + 1, problem);
}

static int load_mapping(struct ctx *c, const char *path, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    char q[160];

    if (!root || yaml_is_null(root))
        return 0; /* empty file, or only comments */
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, "%s:%zu: must be a mapping of key: value", path, node_line(root));
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        const char *key;
        long idx;
        int rc;

        if (k->type != YAML_SCALAR_NODE)
            return fail(c, "%s:%zu: keys must be option names", path, node_line(k));
        key = (const char *)k->data.scalar.value;
        idx = find_opt(c, key, k->data.scalar.length, true);
        if (idx < 0)
            return fail(c, "%s:%zu: unknown key %s", path, node_line(k), quoted(key, q, sizeof(q)));
        if (c->file_line[idx])
            return fail(c, "%s:%zu: duplicate key %s (first set on line %zu)", path, node_line(k),
                        quoted(key, q, sizeof(q)), c->file_line[idx]);
        c->file_line[idx] = node_line(k);
        rc = apply_yaml(c, path, doc, (size_t)idx, key, v);
        if (rc)
            return rc;
    }
    return 0;
}

static int load_file(struct ctx *c, const char *path)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    struct stat st;
    char q[160];
    FILE *f;
    int rc;

    f = fopen(path, "rb");
    if (!f)
        return fail(c, "cannot read config file %s: %s", quoted(path, q, sizeof(q)), strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return fail(c, "cannot read config file %s: %s", quoted(path, q, sizeof(q)), strerror(EISDIR));
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return fail(c, "out of memory");
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_fail(c, path, &parser);
        goto out_parser;
    }
    rc = load_mapping(c, path, &doc);
    yaml_document_delete(&doc);
    if (rc)
        goto out_parser;

    /* A second document ("---") is most likely a mistake: refuse it. */
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_fail(c, path, &parser);
        goto out_parser;
    }
    if (yaml_document_get_root_node(&doc))
        rc = fail(c, "%s:%zu: only one YAML document is allowed", path, doc.start_mark.line + 1);
    yaml_document_delete(&doc);
out_parser:
    yaml_parser_delete(&parser);
    if (ferror(f) && !rc)
        rc = fail(c, "cannot read config file %s: %s", quoted(path, q, sizeof(q)), strerror(EIO));
    fclose(f);
    return rc;
}

/* ---- environment -------------------------------------------------------------- */

/* The first non-empty variable of a comma-separated list; its name goes to name. */
static const char *env_lookup(const char *vars, char *name, size_t namelen)
{
    const char *p = vars;

    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *v;

        if (len && len < namelen) {
            memcpy(name, p, len);
            name[len] = '\0';
            v = getenv(name);
            if (v && *v)
                return v;
        }
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

static int load_env(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        char name[128], where[160];
        const char *v;
        int rc;

        if (!c->t[i].env)
            continue;
        v = env_lookup(c->t[i].env, name, sizeof(name));
        if (!v)
            continue;
        snprintf(where, sizeof(where), "env %s", name);
        rc = set_text(c, i, v, where);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- command line -------------------------------------------------------------- */

struct arg {
    size_t idx;
    const char *val;
};

struct argscan {
    struct arg *args;
    size_t nargs;
    const char *config;
    bool help, version;
    char err[512]; /* the first syntax error, reported unless --help/--version */
};

static void scan_err(struct argscan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void scan_err(struct argscan *s, const char *fmt, ...)
{
    va_list ap;

    if (s->err[0])
        return;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

static void scan_argv(const struct ctx *c, int argc, char **argv, struct argscan *s)
{
    char q[160];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name, *eq, *val;
        size_t nlen;
        long idx;

        if (strcmp(a, "-h") == 0) {
            s->help = true;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            if (i + 1 < argc)
                scan_err(s, "unexpected argument %s (see --help)", quoted(argv[i + 1], q, sizeof(q)));
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            scan_err(s, "unexpected argument %s (see --help)", quoted(a, q, sizeof(q)));
            continue;
        }
        if (a[1] != '-') {
            scan_err(s, "unknown option %s (see --help)", a);
            continue;
        }
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 4 && memcmp(name, "help", 4) == 0) {
            s->help = true;
            continue;
        }
        if (nlen == 7 && memcmp(name, "version", 7) == 0) {
            s->version = true;
            continue;
        }
        idx = (nlen == 6 && memcmp(name, "config", 6) == 0) ? -2 : find_opt(c, name, nlen, false);
        if (idx == -1) {
            scan_err(s, "unknown option --%.*s (see --help)", (int)nlen, name);
            continue;
        }
        if (eq)
            val = eq + 1;
        else if (idx >= 0 && c->t[idx].type == CFG_BOOL)
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            scan_err(s, "--%.*s requires a value", (int)nlen, name);
            continue;
        }
        if (idx == -2) {
            s->config = val;
            continue;
        }
        s->args[s->nargs].idx = (size_t)idx;
        s->args[s->nargs].val = val;
        s->nargs++;
    }
}

static int apply_argv(struct ctx *c, const struct argscan *s)
{
    for (size_t k = 0; k < s->nargs; k++) {
        size_t idx = s->args[k].idx;
        const cfg_opt_t *o = &c->t[idx];
        char where[160];
        int rc;

        snprintf(where, sizeof(where), "--%s", o->name);
        if (o->type != CFG_LIST) {
            rc = set_scalar(c, idx, s->args[k].val, where);
        } else {
            /* The first --route replaces lower sources' list; later ones append. */
            cfg_list_t *l = field(c, o);
            if (!c->argv_seen[idx]) {
                list_free(l);
                c->argv_seen[idx] = 1;
            }
            c->set[idx] = 1;
            rc = list_add(c, o, l, s->args[k].val, where);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- --help ------------------------------------------------------------------- */

static const char *metavar(const cfg_opt_t *o, char *buf, size_t len)
{
    size_t nl = strlen(o->name);

    switch (o->type) {
    case CFG_BOOL:
        return "";
    case CFG_INT:
        return nl > 3 && strcmp(o->name + nl - 3, "-ms") == 0 ? " MS" : " N";
    case CFG_ENUM: {
        size_t n = 0;
        buf[0] = '\0';
        for (size_t k = 0; o->choices && o->choices[k] && n < len; k++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? "|" : " ", o->choices[k]);
        return buf;
    }
    case CFG_STR:
    case CFG_LIST:
        break;
    }
    if (o->check == cfg_check_hostport)
        return " HOST:PORT";
    if (o->check == cfg_check_hostport_list)
        return " HOST:PORT[,HOST:PORT...]";
    if (o->check == cfg_check_url)
        return " URL";
    return " STRING";
}

static void help_line(FILE *f, const char *flag, const char *text)
{
    if (strlen(flag) <= 30)
        fprintf(f, "  %-30s  %s\n", flag, text);
    else
        fprintf(f, "  %s\n  %-30s  %s\n", flag, "", text);
}

static void print_help(const struct ctx *c, const char *summary, const char *config_env)
{
    FILE *f = cfg_out ? cfg_out : stdout;
    char flag[256], text[1024], mv[200];

    fprintf(f, "Usage: %s [OPTIONS]\n", c->prog);
    if (summary && *summary)
        fprintf(f, "\n%s\n", summary);
    fprintf(f, "\nOptions (flag > environment > config file > default):\n");
    for (size_t i = 0; i < c->n; i++) {
        const cfg_opt_t *o = &c->t[i];
        size_t n;

        snprintf(flag, sizeof(flag), "--%s%s", o->name, metavar(o, mv, sizeof(mv)));
        n = (size_t)snprintf(text, sizeof(text), "%s", o->help ? o->help : "");
#define ADD(...)                                                                               \
    do {                                                                                       \
        if (n < sizeof(text))                                                                  \
            n += (size_t)snprintf(text + n, sizeof(text) - n, __VA_ARGS__);                    \
    } while (0)
        if (o->type == CFG_LIST)
            ADD(" [repeatable]");
        if (o->type == CFG_INT && int_bounded(o))
            ADD(" [%lld..%lld]", o->min, o->max);
        if (o->env) {
            ADD(" [env: ");
            for (const char *p = o->env; *p; p++) {
                if (*p == ',')
                    ADD(", ");
                else
                    ADD("%c", *p);
            }
            ADD("]");
        }
        if (o->def)
            ADD(" [default: %s]", o->def);
        if (o->required)
            ADD(" [required]");
#undef ADD
        help_line(f, flag, text);
    }
    if (config_env)
        snprintf(text, sizeof(text), "YAML config file [env: %s]", config_env);
    else
        snprintf(text, sizeof(text), "YAML config file");
    help_line(f, "--config FILE", text);
    help_line(f, "-h, --help", "print this help and exit");
    help_line(f, "--version", "print the version and exit");
    fflush(f);
}

/* ---- cfg_load ------------------------------------------------------------------ */

static void zero_fields(const cfg_opt_t *table, void *target)
{
    for (const cfg_opt_t *o = table; o->name; o++) {
        char *p = (char *)target + o->offset;
        switch (o->type) {
        case CFG_STR:
        case CFG_ENUM:
            *(char **)p = NULL;
            break;
        case CFG_INT:
            *(long long *)p = 0;
            break;
        case CFG_BOOL:
            *(bool *)p = false;
            break;
        case CFG_LIST:
            memset(p, 0, sizeof(cfg_list_t));
            break;
        }
    }
}

static int check_required(const struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const cfg_opt_t *o = &c->t[i];
        bool missing = !c->set[i];
        char env[256] = "";

        /* An empty list or string (say --namespace "") is as good as none. */
        if (o->type == CFG_LIST && ((cfg_list_t *)field(c, o))->n == 0)
            missing = true;
        if ((o->type == CFG_STR || o->type == CFG_ENUM) && !(*(char **)field(c, o) && **(char **)field(c, o)))
            missing = true;
        if (!o->required || !missing)
            continue;
        if (o->env) {
            size_t n = (size_t)snprintf(env, sizeof(env), " (or ");
            for (const char *p = o->env; *p && n + 8 < sizeof(env); p++) {
                if (*p == ',') {
                    memcpy(env + n, " or ", 4);
                    n += 4;
                } else {
                    env[n++] = *p;
                }
            }
            env[n++] = ')';
            env[n] = '\0';
        }
        return fail(c, "--%s is required%s", o->name, env);
    }
    return 0;
}

int cfg_load(const cfg_opt_t *table, void *target, int argc, char **argv,
             const char *prog, const char *version, const char *summary,
             const char *config_env)
{
    struct ctx c = {.t = table, .base = target, .prog = prog ? prog : "micro"};
    struct argscan s = {0};
    const char *path;
    int rc = 2;

    while (table[c.n].name)
        c.n++;
    zero_fields(table, target);
    c.set = calloc(c.n + 1, 1);
    c.argv_seen = calloc(c.n + 1, 1);
    c.file_line = calloc(c.n + 1, sizeof(*c.file_line));
    s.args = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*s.args));
    if (!c.set || !c.argv_seen || !c.file_line || !s.args) {
        fail(&c, "out of memory");
        goto out;
    }

    scan_argv(&c, argc, argv, &s);
    if (s.help) {
        print_help(&c, summary, config_env);
        rc = 1;
        goto out;
    }
    if (s.version) {
        FILE *f = cfg_out ? cfg_out : stdout;
        fprintf(f, "%s %s\n", c.prog, version ? version : "");
        fflush(f);
        rc = 1;
        goto out;
    }
    if (s.err[0]) {
        fail(&c, "%s", s.err);
        goto out;
    }

    for (size_t i = 0; i < c.n; i++) {
        char where[160];
        if (!table[i].def)
            continue;
        snprintf(where, sizeof(where), "default for --%s", table[i].name);
        if (set_text(&c, i, table[i].def, where))
            goto out;
    }

    path = s.config;
    if (!path && config_env) {
        path = getenv(config_env);
        if (path && !*path)
            path = NULL;
    }
    if (path && load_file(&c, path))
        goto out;
    if (load_env(&c) || apply_argv(&c, &s) || check_required(&c))
        goto out;
    rc = 0;
out:
    if (rc)
        cfg_free(table, target);
    free(c.set);
    free(c.argv_seen);
    free(c.file_line);
    free(s.args);
    return rc;
}

void cfg_free(const cfg_opt_t *table, void *target)
{
    for (const cfg_opt_t *o = table; o->name; o++) {
        char *p = (char *)target + o->offset;
        if (o->type == CFG_STR || o->type == CFG_ENUM) {
            free(*(char **)p);
            *(char **)p = NULL;
        } else if (o->type == CFG_LIST) {
            list_free((cfg_list_t *)p);
        }
    }
}

/* ---- address checks ----------------------------------------------------------- */

static bool port_ok(const char *p, size_t n)
{
    unsigned long v = 0;

    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* An IPv4 address or a DNS name (letters, digits, '-' and '_' in labels of 1..63). */
static bool host_ok(const char *h, size_t n)
{
    char buf[256];
    struct in_addr a4;
    size_t label = 0;
    bool digits_only = true;

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return true;
    if (buf[n - 1] == '.') /* a fully qualified name */
        buf[--n] = '\0';
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char ch = buf[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || buf[i - 1] == '-')
                return false;
            if (ch == '\0')
                break;
            label = 0;
            digits_only = true;
            continue;
        }
        if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_')
            return false;
        if (label == 0 && ch == '-')
            return false;
        if (!isdigit((unsigned char)ch))
            digits_only = false;
        label++;
    }
    /* "10.0.0" or "300.1.1.1": meant as an IPv4 address, and not a valid one. */
    return !digits_only;
}

/* Checks "host", "host:port", "[v6]" or "[v6]:port" in s[0..n); NULL or the reason. */
static const char *authority_check(const char *s, size_t n, bool need_port)
{
    const char *port = NULL;
    size_t plen = 0;

    if (n == 0)
        return "missing host";
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return "missing ] after the IPv6 address";
        if (!addr_is_ipv6(s + 1, (size_t)(close - s - 1)))
            return "invalid IPv6 address";
        if (close + 1 < s + n) {
            if (close[1] != ':')
                return "unexpected text after ]";
            port = close + 2;
            plen = (size_t)(s + n - port);
        }
    } else {
        const char *colon = memchr(s, ':', n);
        size_t hlen = colon ? (size_t)(colon - s) : n;
        if (colon && memchr(colon + 1, ':', (size_t)(s + n - colon - 1)))
            return "an IPv6 address needs brackets, e.g. [::1]:9000";
        if (hlen == 0)
            return "missing host";
        if (!host_ok(s, hlen))
            return "invalid host name";
        if (colon) {
            port = colon + 1;
            plen = (size_t)(s + n - port);
        }
    }
    if (!port && need_port)
        return "missing :port";
    if (port && !port_ok(port, plen))
        return "port must be between 1 and 65535";
    return NULL;
}

static int check_fail(char *err, size_t errlen, const char *fmt, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, why);
    return -1;
}

int cfg_check_hostport(const char *value, char *err, size_t errlen)
{
    const char *why = value ? authority_check(value, strlen(value), true) : "missing host";

    if (!why)
        return 0;
    return check_fail(err, errlen, "must be host:port (%s)", why);
}

int cfg_check_hostport_list(const char *value, char *err, size_t errlen)
{
    addr_list_t l;
    size_t bad = 0, n = value ? strlen(value) : 0;
    char why[160];
    const char *s = value;

    /* each entry as cfg_check_hostport sees it, then the list's own rules */
    for (size_t i = 0; value; i++) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        while (len && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        const char *w = len ? authority_check(s, len, true) : "empty entry";
        if (w) {
            snprintf(why, sizeof(why), "entry %zu: %s", i + 1, w);
            return check_fail(err, errlen, "must be host:port[,host:port...] (%s)", why);
        }
        if (!comma)
            break;
        s = comma + 1;
    }
    int rc = value ? addr_list_parse(value, n, &l, &bad) : ADDR_LIST_E_EMPTY;
    if (!rc)
        return 0;
    snprintf(why, sizeof(why), "entry %zu: %s", bad + 1, addr_list_strerror(rc));
    return check_fail(err, errlen, "must be host:port[,host:port...] (%s)", why);
}

int cfg_check_url(const char *value, char *err, size_t errlen)
{
    const char *auth, *end, *why;

    if (!value || strncasecmp(value, "http://", 7) != 0) {
        if (value && strncasecmp(value, "https://", 8) == 0)
            return check_fail(err, errlen, "must be an http:// URL (%s)", "https is not supported");
        return check_fail(err, errlen, "must be an http:// URL (%s)", "e.g. http://127.0.0.1:8080");
    }
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return check_fail(err, errlen, "must be an http:// URL (%s)",
                              "no spaces or control characters");
        if (*p == '?' || *p == '#')
            return check_fail(err, errlen, "must be an http:// URL (%s)",
                              "no query or fragment");
    }
    auth = value + 7;
    end = strchr(auth, '/');
    if (!end)
        end = auth + strlen(auth);
    if (memchr(auth, '@', (size_t)(end - auth)))
        return check_fail(err, errlen, "must be an http:// URL (%s)", "no user info");
    why = authority_check(auth, (size_t)(end - auth), false);
    if (why)
        return check_fail(err, errlen, "must be an http:// URL (%s)", why);
    /* the path goes into request lines: the same check as a call url */
    if (*end) {
        int rc = url_check(end, strlen(end));
        if (rc)
            return check_fail(err, errlen, "must be an http:// URL (path: %s)", url_strerror(rc));
    }
    return 0;
}
