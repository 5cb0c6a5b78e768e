/* Unit tests for libmicro/config.c: every option type from every source, precedence,
 * list replacement, the exact shape of each error line, --help/--version, and the
 * host:port / URL checkers. Leaks are caught by the sanitizer build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

struct tcfg {
    char *name;
    char *addr;
    char *url;
    long long port;
    long long big;
    bool verbose;
    cfg_list_t routes;
    char *mode;
    char *log_level;
    char *log_format;
};

static int check_route(const char *v, char *err, size_t errlen)
{
    if (v[0] == '/' || strcmp(v, "*") == 0)
        return 0;
    snprintf(err, errlen, "must start with / or be *");
    return -1;
}

static const char *const modes[] = {"fast", "slow", NULL};

static const cfg_opt_t table[] = {
    {.name = "name", .env = "T_NAME", .type = CFG_STR, .offset = offsetof(struct tcfg, name),
     .required = 1, .help = "the name"},
    {.name = "addr", .env = "T_ADDR,T_ADDR2", .type = CFG_STR, .def = "127.0.0.1:9000",
     .offset = offsetof(struct tcfg, addr), .check = cfg_check_hostport, .help = "an address"},
    {.name = "url", .type = CFG_STR, .def = "http://127.0.0.1:8080",
     .offset = offsetof(struct tcfg, url), .check = cfg_check_url, .help = "a URL"},
    {.name = "port", .env = "T_PORT", .type = CFG_INT, .min = 1, .max = 65535, .def = "3500",
     .offset = offsetof(struct tcfg, port), .help = "a port"},
    {.name = "big", .env = "T_BIG", .type = CFG_INT, .offset = offsetof(struct tcfg, big),
     .help = "unbounded"},
    {.name = "verbose", .env = "T_VERBOSE", .type = CFG_BOOL, .def = "false",
     .offset = offsetof(struct tcfg, verbose), .help = "say more"},
    {.name = "route", .yaml = "routes", .env = "T_ROUTES", .type = CFG_LIST,
     .offset = offsetof(struct tcfg, routes), .check = check_route, .help = "a route"},
    {.name = "mode", .env = "T_MODE", .type = CFG_ENUM, .choices = modes, .def = "fast",
     .offset = offsetof(struct tcfg, mode), .help = "the mode"},
    CFG_LOG_OPTS(struct tcfg, log_level, log_format),
    CFG_END,
};

static const char *const env_vars[] = {"T_NAME", "T_ADDR", "T_ADDR2", "T_PORT", "T_BIG",
                                       "T_VERBOSE", "T_ROUTES", "T_MODE", "T_CONFIG",
                                       "MICRO_LOG_LEVEL", "MICRO_LOG_FORMAT", NULL};

static FILE *out_f, *err_f;
static char out_text[8192], err_text[2048];
static char yaml_path[4096];
static struct tcfg cfg;

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
    out_f = tmpfile();
    err_f = tmpfile();
    assert_non_null(out_f);
    assert_non_null(err_f);
    cfg_set_output(out_f, err_f);
    memset(&cfg, 0, sizeof(cfg));
    yaml_path[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cfg_free(table, &cfg);
    cfg_set_output(NULL, NULL);
    fclose(out_f);
    fclose(err_f);
    if (yaml_path[0])
        unlink(yaml_path);
    for (size_t i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
    return 0;
}

static void slurp(FILE **f, char *buf, size_t len)
{
    size_t n;

    fflush(*f);
    fseek(*f, 0, SEEK_SET);
    n = fread(buf, 1, len - 1, *f);
    buf[n] = '\0';
    fclose(*f);
    *f = tmpfile();
    assert_non_null(*f);
}

/* Runs cfg_load on a NULL-terminated argument list (argv[0] added) and captures what
 * it printed into out_text / err_text. Frees what a previous run stored. */
static int run(const char *arg, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    int rc;

    argv[argc++] = (char *)"prog";
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    cfg_free(table, &cfg);
    rc = cfg_load(table, &cfg, argc, argv, "prog", "1.2.3", "A test program.", "T_CONFIG");
    slurp(&out_f, out_text, sizeof(out_text));
    slurp(&err_f, err_text, sizeof(err_text));
    cfg_set_output(out_f, err_f);
    if (rc == 0 && err_text[0])
        fail_msg("success, but stderr has: %s", err_text);
    return rc;
}

/* Writes a YAML file under $TMPDIR; its path is in yaml_path. */
static const char *write_yaml(const char *content)
{
    const char *dir = getenv("TMPDIR");
    int fd;

    if (yaml_path[0])
        unlink(yaml_path);
    snprintf(yaml_path, sizeof(yaml_path), "%s/test_config_XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(yaml_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return yaml_path;
}

/* An error run: rc 2, exactly the expected line, nothing left allocated. */
static void expect_error(const char *expected)
{
    char want[4096];

    snprintf(want, sizeof(want), "%s\n", expected);
    assert_string_equal(err_text, want);
    assert_null(cfg.name);
    assert_null(cfg.addr);
    assert_null(cfg.routes.v);
    assert_int_equal(cfg.routes.n, 0);
}

#define EXPECT_ERR(msg, ...)                                                                   \
    do {                                                                                       \
        assert_int_equal(run(__VA_ARGS__, NULL), 2);                                           \
        expect_error(msg);                                                                     \
    } while (0)

static void assert_routes(const char *first, ...)
{
    va_list ap;
    size_t n = 0;

    va_start(ap, first);
    for (const char *r = first; r; r = va_arg(ap, const char *), n++) {
        if (n >= cfg.routes.n)
            fail_msg("route %zu missing (want %s)", n, r);
        assert_string_equal(cfg.routes.v[n], r);
    }
    va_end(ap);
    assert_int_equal(cfg.routes.n, n);
    assert_null(cfg.routes.v ? cfg.routes.v[n] : NULL); /* NULL-terminated */
}

/* ---- values and precedence ---------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    assert_int_equal(run("--name", "svc", NULL), 0);
    assert_string_equal(cfg.name, "svc");
    assert_string_equal(cfg.addr, "127.0.0.1:9000");
    assert_string_equal(cfg.url, "http://127.0.0.1:8080");
    assert_int_equal(cfg.port, 3500);
    assert_int_equal(cfg.big, 0);
    assert_false(cfg.verbose);
    assert_int_equal(cfg.routes.n, 0);
    assert_null(cfg.routes.v);
    assert_string_equal(cfg.mode, "fast");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.log_format, "text");
}

static const char full_yaml[] = "# every type\n"
                                "name: file-name\n"
                                "addr: file.example:1\n"
                                "port: 1111\n"
                                "big: -5\n"
                                "verbose: true\n"
                                "routes:\n"
                                "  - /f1\n"
                                "  - /f2\n"
                                "mode: slow\n"
                                "log-level: warn\n"
                                "log-format: json\n";

static void set_all_env(void)
{
    setenv("T_NAME", "env-name", 1);
    setenv("T_ADDR", "env.example:2", 1);
    setenv("T_PORT", "2222", 1);
    setenv("T_BIG", "9223372036854775807", 1);
    setenv("T_VERBOSE", "false", 1);
    setenv("T_ROUTES", "/e1, /e2 ,,/e3,", 1);
    setenv("T_MODE", "FAST", 1);
    setenv("MICRO_LOG_LEVEL", "debug", 1);
    setenv("MICRO_LOG_FORMAT", "text", 1);
}

static void test_precedence(void **state)
{
    const char *path = write_yaml(full_yaml);

    (void)state;
    /* file > default */
    assert_int_equal(run("--config", path, NULL), 0);
    assert_string_equal(cfg.name, "file-name");
    assert_string_equal(cfg.addr, "file.example:1");
    assert_int_equal(cfg.port, 1111);
    assert_int_equal(cfg.big, -5);
    assert_true(cfg.verbose);
    assert_routes("/f1", "/f2", NULL);
    assert_string_equal(cfg.mode, "slow");
    assert_string_equal(cfg.log_level, "warn");
    assert_string_equal(cfg.log_format, "json");
    assert_string_equal(cfg.url, "http://127.0.0.1:8080"); /* not in the file */

    /* env > file */
    set_all_env();
    assert_int_equal(run("--config", path, NULL), 0);
    assert_string_equal(cfg.name, "env-name");
    assert_string_equal(cfg.addr, "env.example:2");
    assert_int_equal(cfg.port, 2222);
    assert_int_equal(cfg.big, 9223372036854775807LL);
    assert_false(cfg.verbose);
    assert_routes("/e1", "/e2", "/e3", NULL);
    assert_string_equal(cfg.mode, "fast"); /* canonical spelling stored */
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.log_format, "text");

    /* flag > env > file, both --name value and --name=value */
    assert_int_equal(run("--config", path, "--name", "flag-name", "--addr=[::1]:3", "--port", "3333",
                         "--big=-9223372036854775808", "--verbose", "--route", "/a", "--route=/b",
                         "--mode", "slow", "--log-level=error", "--log-format", "json", NULL),
                     0);
    assert_string_equal(cfg.name, "flag-name");
    assert_string_equal(cfg.addr, "[::1]:3");
    assert_int_equal(cfg.port, 3333);
    assert_int_equal(cfg.big, -9223372036854775807LL - 1);
    assert_true(cfg.verbose);
    assert_routes("/a", "/b", NULL);
    assert_string_equal(cfg.mode, "slow");
    assert_string_equal(cfg.log_level, "error");
    assert_string_equal(cfg.log_format, "json");

    /* env > default without a file */
    assert_int_equal(run(NULL), 0);
    assert_string_equal(cfg.name, "env-name");
    assert_int_equal(cfg.port, 2222);

    /* a bool flag can be turned off against the env and the file */
    setenv("T_VERBOSE", "1", 1);
    assert_int_equal(run("--config", path, "--verbose=false", NULL), 0);
    assert_false(cfg.verbose);
    assert_int_equal(run("--config", path, "--verbose=TRUE", NULL), 0);
    assert_true(cfg.verbose);
    assert_int_equal(run("--config", path, "--verbose=0", NULL), 0);
    assert_false(cfg.verbose);

    /* the last of a repeated scalar flag wins */
    assert_int_equal(run("--port", "1", "--port", "2", NULL), 0);
    assert_int_equal(cfg.port, 2);
}

static void test_env_details(void **state)
{
    (void)state;
    setenv("T_NAME", "n", 1);
    /* fallback list: the first variable that is set wins */
    setenv("T_ADDR2", "second:2", 1);
    assert_int_equal(run(NULL), 0);
    assert_string_equal(cfg.addr, "second:2");
    setenv("T_ADDR", "first:1", 1);
    assert_int_equal(run(NULL), 0);
    assert_string_equal(cfg.addr, "first:1");
    /* an empty variable counts as unset */
    setenv("T_ADDR", "", 1);
    assert_int_equal(run(NULL), 0);
    assert_string_equal(cfg.addr, "second:2");
    setenv("T_PORT", "", 1);
    assert_int_equal(run(NULL), 0);
    assert_int_equal(cfg.port, 3500);
    /* bool spellings */
    setenv("T_VERBOSE", "True", 1);
    assert_int_equal(run(NULL), 0);
    assert_true(cfg.verbose);
    setenv("T_VERBOSE", "yes", 1);
    EXPECT_ERR("prog: env T_VERBOSE: must be true or false (got \"yes\")", "--name", "x");
}

static void test_list_replace(void **state)
{
    (void)state;
    setenv("T_NAME", "n", 1);
    /* YAML scalar = one item; the alias and the flag name both work as keys */
    assert_int_equal(run("--config", write_yaml("routes: /only\n"), NULL), 0);
    assert_routes("/only", NULL);
    assert_int_equal(run("--config", write_yaml("route: [/x, '*']\n"), NULL), 0);
    assert_routes("/x", "*", NULL);
    assert_int_equal(run("--config", write_yaml("routes: []\n"), NULL), 0);
    assert_routes(NULL);

    /* env replaces the file's list, flags replace env's, and are appended to each other */
    write_yaml("routes:\n  - /f1\n  - /f2\n");
    setenv("T_ROUTES", "/e1", 1);
    assert_int_equal(run("--config", yaml_path, NULL), 0);
    assert_routes("/e1", NULL);
    assert_int_equal(run("--config", yaml_path, "--route", "/a", NULL), 0);
    assert_routes("/a", NULL);
    assert_int_equal(run("--route", "/a", "--port", "1", "--route", "/b", "--route", "/c", NULL), 0);
    assert_routes("/a", "/b", "/c", NULL);
    /* --route "" clears what lower sources set */
    assert_int_equal(run("--config", yaml_path, "--route", "", NULL), 0);
    assert_routes(NULL);
    /* env of only separators: an empty list, which still replaces the file's */
    setenv("T_ROUTES", " , ", 1);
    assert_int_equal(run("--config", yaml_path, NULL), 0);
    assert_routes(NULL);
    unsetenv("T_ROUTES");
    assert_int_equal(run("--config", yaml_path, NULL), 0);
    assert_routes("/f1", "/f2", NULL);
}

static void test_yaml_details(void **state)
{
    (void)state;
    setenv("T_NAME", "n", 1);
    /* null values mean "not set here" */
    assert_int_equal(run("--config", write_yaml("port:\nmode: ~\naddr: null\n"), NULL), 0);
    assert_int_equal(cfg.port, 3500);
    assert_string_equal(cfg.mode, "fast");
    assert_string_equal(cfg.addr, "127.0.0.1:9000");
    /* quoted values, flow style, comments, an empty file */
    unsetenv("T_NAME"); /* env would win over the file */
    assert_int_equal(run("--config", write_yaml("{port: \"42\", name: 'a b', verbose: TRUE}"), NULL), 0);
    assert_int_equal(cfg.port, 42);
    assert_string_equal(cfg.name, "a b");
    assert_true(cfg.verbose);
    setenv("T_NAME", "n", 1);
    assert_int_equal(run("--config", write_yaml(""), NULL), 0);
    assert_int_equal(run("--config", write_yaml("# nothing\n\n"), NULL), 0);
    assert_int_equal(run("--config", write_yaml("---\nport: 7\n...\n"), NULL), 0);
    assert_int_equal(cfg.port, 7);
    /* --config=FILE, and the config file from the environment; the flag wins */
    assert_int_equal(run("--config=" , NULL), 2); /* empty path */
    write_yaml("port: 8\n");
    setenv("T_CONFIG", yaml_path, 1);
    assert_int_equal(run(NULL), 0);
    assert_int_equal(cfg.port, 8);
    {
        char other[4096];
        snprintf(other, sizeof(other), "%s", yaml_path);
        yaml_path[0] = '\0'; /* keep the first file */
        write_yaml("port: 9\n");
        assert_int_equal(run("--config", yaml_path, NULL), 0);
        assert_int_equal(cfg.port, 9);
        unlink(other);
    }
}

/* ---- errors ------------------------------------------------------------------- */

static void test_errors_flags(void **state)
{
    (void)state;
    setenv("T_NAME", "n", 1);
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"0\")", "--port", "0");
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"65536\")", "--port=65536");
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"12x\")", "--port", "12x");
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \" 12\")", "--port", " 12");
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"+12\")", "--port", "+12");
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"0x10\")", "--port", "0x10");
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"\")", "--port=");
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"-\")", "--port=-");
    EXPECT_ERR("prog: --big: must be an integer (got \"9223372036854775808\")", "--big",
               "9223372036854775808");
    EXPECT_ERR("prog: --verbose: must be true or false (got \"on\")", "--verbose=on");
    EXPECT_ERR("prog: --mode: must be one of fast, slow (got \"medium\")", "--mode", "medium");
    EXPECT_ERR("prog: --log-level: must be one of error, warn, info, debug (got \"trace\")",
               "--log-level", "trace");
    EXPECT_ERR("prog: --addr: must be host:port (port must be between 1 and 65535) (got \"h:0\")",
               "--addr", "h:0");
    EXPECT_ERR("prog: --url: must be an http:// URL (https is not supported) (got \"https://x\")",
               "--url", "https://x");
    EXPECT_ERR("prog: --route: must start with / or be * (got \"nope\")", "--route", "/ok", "--route",
               "nope");
    EXPECT_ERR("prog: unknown option --foo (see --help)", "--foo");
    EXPECT_ERR("prog: unknown option --foo (see --help)", "--foo=1");
    EXPECT_ERR("prog: unknown option -x (see --help)", "-x");
    EXPECT_ERR("prog: unexpected argument \"stray\" (see --help)", "stray");
    EXPECT_ERR("prog: unexpected argument \"after\" (see --help)", "--", "after");
    EXPECT_ERR("prog: --port requires a value", "--port");
    EXPECT_ERR("prog: --config requires a value", "--config");
    /* a control character in a value cannot split the line */
    EXPECT_ERR("prog: --port: must be an integer between 1 and 65535 (got \"1\\x0a2\")", "--port",
               "1\n2");
}

static void test_errors_env(void **state)
{
    (void)state;
    setenv("T_NAME", "n", 1);
    setenv("T_PORT", "0", 1);
    EXPECT_ERR("prog: env T_PORT: must be an integer between 1 and 65535 (got \"0\")", "--port", "5");
    unsetenv("T_PORT");
    setenv("T_ADDR2", "::1:80", 1);
    EXPECT_ERR("prog: env T_ADDR2: must be host:port (an IPv6 address needs brackets, e.g. "
               "[::1]:9000) (got \"::1:80\")",
               "--port", "5");
    unsetenv("T_ADDR2");
    setenv("T_ROUTES", "/a,b", 1);
    EXPECT_ERR("prog: env T_ROUTES: must start with / or be * (got \"b\")", "--port", "5");
    unsetenv("T_ROUTES");
    setenv("MICRO_LOG_FORMAT", "xml", 1);
    EXPECT_ERR("prog: env MICRO_LOG_FORMAT: must be one of text, json (got \"xml\")", "--port", "5");
}

static void test_errors_required(void **state)
{
    (void)state;
    EXPECT_ERR("prog: --name is required (or T_NAME)", "--port", "5");
    EXPECT_ERR("prog: --name is required (or T_NAME)", "--name", "");
    setenv("T_NAME", "", 1);
    EXPECT_ERR("prog: --name is required (or T_NAME)", "--port", "5");
    setenv("T_NAME", "ok", 1);
    assert_int_equal(run(NULL), 0);
}

static void test_errors_file(void **state)
{
    char want[8192];
    const char *p;

    (void)state;
    setenv("T_NAME", "n", 1);

#define FILE_ERR(content, fmt)                                                                 \
    do {                                                                                       \
        p = write_yaml(content);                                                               \
        snprintf(want, sizeof(want), fmt, p);                                                  \
        assert_int_equal(run("--config", p, NULL), 2);                                         \
        expect_error(want);                                                                    \
    } while (0)

    FILE_ERR("# comment\n\nname: x\n\n\n\nport: x\n",
             "prog: %s:7: port: must be an integer between 1 and 65535 (got \"x\")");
    FILE_ERR("name: x\nport: 8\nfooo: 1\n", "prog: %s:3: unknown key \"fooo\"");
    FILE_ERR("port: 8\nport: 9\n", "prog: %s:2: duplicate key \"port\" (first set on line 1)");
    FILE_ERR("route: /a\nroutes: /b\n", "prog: %s:2: duplicate key \"routes\" (first set on line 1)");
    FILE_ERR("port: {a: 1}\n", "prog: %s:1: port: must be a single value, not a mapping");
    FILE_ERR("name: n\nport:\n  a: 1\n", "prog: %s:3: port: must be a single value, not a mapping");
    FILE_ERR("port: [1, 2]\n", "prog: %s:1: port: must be a single value, not a list");
    FILE_ERR("routes: {a: 1}\n", "prog: %s:1: routes: must be a list, not a mapping");
    FILE_ERR("routes:\n  - /a\n  - [/b]\n", "prog: %s:3: routes: list items must be single values");
    FILE_ERR("routes:\n  - /a\n  - /b\n  - bad\n",
             "prog: %s:4: routes: must start with / or be * (got \"bad\")");
    FILE_ERR("verbose: yes\n", "prog: %s:1: verbose: must be true or false (got \"yes\")");
    FILE_ERR("mode: quick\n", "prog: %s:1: mode: must be one of fast, slow (got \"quick\")");
    FILE_ERR("addr: nohost\n", "prog: %s:1: addr: must be host:port (missing :port) (got \"nohost\")");
    FILE_ERR("- a\n- b\n", "prog: %s:1: must be a mapping of key: value");
    FILE_ERR("just text\n", "prog: %s:1: must be a mapping of key: value");
    FILE_ERR("[a]: 1\n", "prog: %s:1: keys must be option names");
    FILE_ERR("port: 1\n---\nport: 2\n", "prog: %s:2: only one YAML document is allowed");
    FILE_ERR("name: \"a\\0b\"\n", "prog: %s:1: name: must not contain NUL characters");

    /* Syntax errors: file:line and the parser's reason on one line. */
    p = write_yaml("name: x\nport: [1, 2\n");
    assert_int_equal(run("--config", p, NULL), 2);
    snprintf(want, sizeof(want), "prog: %s:", p);
    assert_memory_equal(err_text, want, strlen(want));
    assert_non_null(strstr(err_text, ": invalid YAML: "));
    assert_non_null(strchr(err_text, '\n'));
    assert_string_equal(strchr(err_text, '\n'), "\n");
    p = write_yaml("a: b: c\n");
    snprintf(want, sizeof(want), "prog: %s:1: invalid YAML: ", p);
    assert_int_equal(run("--config", p, NULL), 2);
    assert_memory_equal(err_text, want, strlen(want));
    p = write_yaml("name: x\n\tport: 1\n");
    assert_int_equal(run("--config", p, NULL), 2);
    assert_non_null(strstr(err_text, ": invalid YAML: "));
    assert_string_equal(strchr(err_text, '\n'), "\n");

    /* The errors of files beat the flags that would override them. */
    p = write_yaml("port: 0\n");
    snprintf(want, sizeof(want), "prog: %s:1: port: must be an integer between 1 and 65535 (got \"0\")", p);
    assert_int_equal(run("--config", p, "--port", "5", NULL), 2);
    expect_error(want);

    /* Unreadable files. */
    EXPECT_ERR("prog: cannot read config file \"/nonexistent/x.yaml\": No such file or directory",
               "--config", "/nonexistent/x.yaml");
    setenv("T_CONFIG", "/nonexistent/env.yaml", 1);
    EXPECT_ERR("prog: cannot read config file \"/nonexistent/env.yaml\": No such file or directory",
               "--port", "5");
    unsetenv("T_CONFIG");
    EXPECT_ERR("prog: cannot read config file \"/\": Is a directory", "--config", "/");
#undef FILE_ERR
}

/* ---- --help / --version -------------------------------------------------------- */

static void test_help_version(void **state)
{
    (void)state;
    assert_int_equal(run("--help", NULL), 1);
    assert_string_equal(err_text, "");
    assert_non_null(strstr(out_text, "Usage: prog [OPTIONS]\n"));
    assert_non_null(strstr(out_text, "A test program."));
    assert_non_null(strstr(out_text, "--name STRING"));
    assert_non_null(strstr(out_text, "the name [env: T_NAME] [required]\n"));
    assert_non_null(strstr(out_text, "--addr HOST:PORT"));
    assert_non_null(strstr(out_text, "[env: T_ADDR, T_ADDR2] [default: 127.0.0.1:9000]"));
    assert_non_null(strstr(out_text, "--url URL"));
    assert_non_null(strstr(out_text, "--port N"));
    assert_non_null(strstr(out_text, "a port [1..65535] [env: T_PORT] [default: 3500]\n"));
    assert_non_null(strstr(out_text, "--verbose "));
    assert_non_null(strstr(out_text, "--route STRING"));
    assert_non_null(strstr(out_text, "[repeatable]"));
    assert_non_null(strstr(out_text, "--mode fast|slow"));
    assert_non_null(strstr(out_text, "--log-level error|warn|info|debug"));
    assert_non_null(strstr(out_text, "[env: MICRO_LOG_LEVEL] [default: info]"));
    assert_non_null(strstr(out_text, "--log-format text|json"));
    assert_non_null(strstr(out_text, "--config FILE"));
    assert_non_null(strstr(out_text, "[env: T_CONFIG]"));
    assert_non_null(strstr(out_text, "--version"));
    assert_null(cfg.name);

    assert_int_equal(run("-h", NULL), 1);
    assert_non_null(strstr(out_text, "Usage: prog"));
    /* --help wins over bad arguments and needs no required option */
    assert_int_equal(run("--bogus", "--port", "0", "--help", NULL), 1);
    assert_non_null(strstr(out_text, "Usage: prog"));
    assert_string_equal(err_text, "");

    assert_int_equal(run("--version", NULL), 1);
    assert_string_equal(out_text, "prog 1.2.3\n");
    assert_string_equal(err_text, "");
    setenv("T_PORT", "bad", 1);
    assert_int_equal(run("--name", "x", "--version", NULL), 1);
    assert_string_equal(out_text, "prog 1.2.3\n");
    assert_null(cfg.name);
}

/* ---- checkers ------------------------------------------------------------------ */

static void test_check_hostport(void **state)
{
    static const char *const good[] = {
        "a:1", "localhost:65535", "10.0.0.1:80", "[::1]:9000", "[fe80::1%eth0]:80",
        "[2001:db8::42]:443", "[::ffff:10.0.0.1]:1", "registry.default.svc.cluster.local:9000",
        "my_host:1", "example.com.:80", "REGISTRY:9000", "1e100.net:80", "0.0.0.0:9000",
        "x:08080", NULL};
    static const char *const bad[] = {
        "", "host", "host:", ":80", "host:0", "host:65536", "host:-1", "host:+80", "host:80x",
        "host:123456", "::1:9000", "::", "[::1]", "[::1]9000", "[::g]:80", "[::1:80", "[]:80",
        "[fe80::1%]:80", "300.1.1.1:80", "10.0.0:80", "-bad.com:80", "bad-.com:80", "a..b:80",
        ".a:80", "host name:80", "h\n:80", "[::1]:", "a:1:2", NULL};
    char err[128];

    (void)state;
    for (size_t i = 0; good[i]; i++) {
        err[0] = '\0';
        if (cfg_check_hostport(good[i], err, sizeof(err)) != 0)
            fail_msg("\"%s\" rejected: %s", good[i], err);
    }
    for (size_t i = 0; bad[i]; i++) {
        err[0] = '\0';
        if (cfg_check_hostport(bad[i], err, sizeof(err)) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_memory_equal(err, "must be host:port", 17);
    }
    assert_int_equal(cfg_check_hostport("h:1", NULL, 0), 0);
    assert_int_equal(cfg_check_hostport("h", NULL, 0), -1);
    cfg_check_hostport("[::1]", err, sizeof(err));
    assert_string_equal(err, "must be host:port (missing :port)");
    cfg_check_hostport("host:99999", err, sizeof(err));
    assert_string_equal(err, "must be host:port (port must be between 1 and 65535)");
    cfg_check_hostport("[zz]:1", err, sizeof(err));
    assert_string_equal(err, "must be host:port (invalid IPv6 address)");
    cfg_check_hostport("a b:1", err, sizeof(err));
    assert_string_equal(err, "must be host:port (invalid host name)");
}

static void test_check_url(void **state)
{
    static const char *const good[] = {
        "http://127.0.0.1:8080", "http://app", "http://app/base", "HTTP://x:1/",
        "http://[::1]:8080/p", "http://[::1]", "http://svc.ns.svc.cluster.local:80/a/b-c_d.e~f",
        NULL};
    static const char *const bad[] = {
        "", "https://x", "ftp://x", "127.0.0.1:8080", "http://", "http:///p", "http://:80",
        "http://x:0", "http://x:99999", "http://x:", "http://u@x", "http://x/a b", "http://x?q",
        "http://x/#f", "http://[::1", "http://::1:80", "http://bad_.-x", "http:/x", NULL};
    char err[128];

    (void)state;
    for (size_t i = 0; good[i]; i++) {
        err[0] = '\0';
        if (cfg_check_url(good[i], err, sizeof(err)) != 0)
            fail_msg("\"%s\" rejected: %s", good[i], err);
    }
    for (size_t i = 0; bad[i]; i++) {
        err[0] = '\0';
        if (cfg_check_url(bad[i], err, sizeof(err)) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_memory_equal(err, "must be an http:// URL", 22);
    }
    cfg_check_url("http://x:0", err, sizeof(err));
    assert_string_equal(err, "must be an http:// URL (port must be between 1 and 65535)");
}

/* A table with a bad default is a programming error, reported like any bad value. */
static void test_bad_default(void **state)
{
    struct {
        long long n;
    } t = {0};
    static const cfg_opt_t bad_table[] = {
        {.name = "n", .type = CFG_INT, .min = 1, .max = 5, .def = "9", .offset = 0},
        CFG_END,
    };
    char *argv[] = {(char *)"prog", NULL};

    (void)state;
    assert_int_equal(cfg_load(bad_table, &t, 1, argv, "prog", "1", NULL, NULL), 2);
    slurp(&err_f, err_text, sizeof(err_text));
    cfg_set_output(out_f, err_f);
    assert_string_equal(err_text,
                        "prog: default for --n: must be an integer between 1 and 5 (got \"9\")\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_details, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_details, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_hostport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_default, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
