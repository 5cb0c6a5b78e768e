#include "prom.h"

#include <string.h>

void prom_head(sbuf_t *b, const char *name, const char *type, const char *help)
{
    sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void num(sbuf_t *b, double v)
{
    if (v == (double)(long long)v)
        sbuf_printf(b, " %lld\n", (long long)v);
    else
        sbuf_printf(b, " %.6f\n", v);
}

void prom_value(sbuf_t *b, const char *name, double v)
{
    sbuf_adds(b, name);
    num(b, v);
}

void prom_labeled(sbuf_t *b, const char *name, const char *label, const char *value, double v)
{
    sbuf_printf(b, "%s{%s=\"", name, label);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            sbuf_addc(b, '\\');
        if (*p == '\n') {
            sbuf_adds(b, "\\n");
            continue;
        }
        sbuf_addc(b, *p);
    }
    sbuf_addc(b, '"');
    sbuf_addc(b, '}');
    num(b, v);
}

void prom_metric(sbuf_t *b, const char *name, const char *type, const char *help, double v)
{
    prom_head(b, name, type, help);
    prom_value(b, name, v);
}
