/* config: table-driven settings for both binaries. Each binary describes its options in
 * one cfg_opt_t table (name, type, bounds, default, env, target field) and calls
 * cfg_load() once from main(); values come from, highest precedence first, the command
 * line, the environment, a YAML config file (--config FILE) and the table's default.
 *
 * Value syntax, the same from every source:
 *   CFG_STR   any text (passed to check if set)
 *   CFG_INT   a decimal integer ("-" allowed, no "+", spaces or trailing junk) within
 *             [min, max]; min == max == 0 means no bounds
 *   CFG_BOOL  true/false/1/0 (true/false in any case); yes/no/on/off are NOT accepted,
 *             in YAML either; a bare --flag means true
 *   CFG_ENUM  one of choices (any case; the canonical spelling from choices is stored)
 *   CFG_LIST  flag: repeatable (--route /a --route /b); env and default: comma-separated
 *             (spaces around items trimmed, empty items skipped); YAML: a sequence, or a
 *             scalar for a one-item list. A source replaces the whole list of a lower
 *             one, it never appends to it.
 * An environment variable set to the empty string counts as unset.
 * YAML: one document holding a single mapping of key: value, keys being the flag names
 * (or the entry's yaml alias). A plain null value (key:, key: ~, key: null) means
 * "not set here". Unknown or duplicate keys, wrong types and bad values are errors. */
#ifndef MICRO_CONFIG_H
#define MICRO_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { CFG_STR, CFG_INT, CFG_BOOL, CFG_LIST, CFG_ENUM } cfg_type_t;

/* CFG_LIST target. v has n items followed by a NULL (v is NULL when empty). */
typedef struct {
    char **v;
    size_t n;
} cfg_list_t;

/* A table is an array of these ended by an entry whose name is NULL (CFG_END). */
typedef struct cfg_opt {
    const char *name;           /* long flag without "--" and the YAML key, e.g. "heartbeat-timeout-ms" */
    const char *env;            /* NULL, one variable, or a comma-separated fallback list "MICRO_ADVERTISE_HOST,POD_IP" (first set one wins) */
    cfg_type_t type;
    long long min, max;         /* CFG_INT bounds, inclusive; both 0 = unbounded */
    const char *const *choices; /* CFG_ENUM: NULL-terminated list of allowed strings; stored as char * */
    const char *def;            /* default as text, parsed like any other source; NULL = unset */
    size_t offset;              /* offsetof() into the caller's struct; CFG_STR/CFG_ENUM: char *, CFG_INT: long long, CFG_BOOL: bool, CFG_LIST: cfg_list_t */
    int required;               /* missing after all sources -> error (an empty list counts as missing) */
    int (*check)(const char *value, char *err, size_t errlen); /* optional extra validation (e.g. "host:port"), per item for lists; 0 = ok */
    const char *help;           /* one line for --help; metavar derived from type (and check) */
    const char *yaml;           /* optional alternative YAML key (e.g. "routes" for flag "route"); NULL = name only */
} cfg_opt_t;

#define CFG_END { .name = NULL }

/* Reads defaults, then --config FILE (the flag, or the env var named config_env if
 * non-NULL), then env, then argv. --config, --help/-h and --version are built in.
 * The table's fields in target are zeroed first (not freed: cfg_free() before loading
 * into the same struct again).
 * Returns 0 ok; 1 when --help or --version was printed to stdout (caller exits 0);
 * 2 on a bad value, with exactly one line on stderr (caller exits 2). On 1 and 2,
 * nothing is left allocated in target. */
int cfg_load(const cfg_opt_t *table, void *target, int argc, char **argv,
             const char *prog, const char *version, const char *summary,
             const char *config_env);

/* Frees every string and list cfg_load stored in target and zeroes those fields. */
void cfg_free(const cfg_opt_t *table, void *target);

/* Where cfg_load prints --help/--version (out) and its error line (err); NULL restores
 * stdout / stderr. For tests. */
void cfg_set_output(FILE *out, FILE *err);

/* Helpers usable as `check` and by callers. 0 = ok; else -1 and a reason in err
 * (cfg_load adds the key and the offending value). */
int cfg_check_hostport(const char *value, char *err, size_t errlen); /* "host:port", "[v6]:port", DNS name ok; port 1..65535 */
/* "host:port[,host:port...]": 1..ADDR_LIST_MAX entries as cfg_check_hostport, no duplicates */
int cfg_check_hostport_list(const char *value, char *err, size_t errlen);
int cfg_check_url(const char *value, char *err, size_t errlen);      /* "http://host[:port][/path]" */

/* The shared --log-level / --log-format rows (env MICRO_LOG_LEVEL / MICRO_LOG_FORMAT);
 * level_field and format_field are char * members of struct type stype, ready for log_init(lg, level, format, prog). */
extern const char *const cfg_log_levels[];
extern const char *const cfg_log_formats[];
#define CFG_LOG_OPTS(stype, level_field, format_field)                                  \
    {.name = "log-level", .env = "MICRO_LOG_LEVEL", .type = CFG_ENUM,                  \
     .choices = cfg_log_levels, .def = "info", .offset = offsetof(stype, level_field),  \
     .help = "log verbosity"},                                                         \
    {.name = "log-format", .env = "MICRO_LOG_FORMAT", .type = CFG_ENUM,                \
     .choices = cfg_log_formats, .def = "text",                                        \
     .offset = offsetof(stype, format_field),                                           \
     .help = "log line format (json: one JSON object per line)"}

#endif
