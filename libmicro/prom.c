#include "prom.h"
#include "utf8.h"

#include <math.h>
#include <string.h>

void prom_head(sbuf_t *b, const char *name, const char *type, const char *help)
{
    sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample value. Integers print as integers, but only inside long long's range:
 * converting a double outside it (or NaN) to long long is undefined behaviour, and
 * printed as 1e308 -> -9223372036854775808. Past that range it is printed as a float
 * (%.17g: exact), and non-finite values as the format spells them. */
static void num(sbuf_t *b, double v)
{
    if (isnan(v))
        sbuf_adds(b, " NaN\n");
    else if (isinf(v))
        sbuf_adds(b, v > 0 ? " +Inf\n" : " -Inf\n");
    else if (v >= -9223372036854775808.0 && v < 9223372036854775808.0 && v == (double)(long long)v)
        sbuf_printf(b, " %lld\n", (long long)v);
    else if (fabs(v) >= 1e15)
        sbuf_printf(b, " %.17g\n", v);
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
    size_t n = strlen(value), k;
    unsigned cp;
    for (size_t i = 0; i < n; i += k) {
        const char *p = value + i;
        k = utf8_decode(p, n - i, &cp);
        if (!k) { /* label values are UTF-8: a stray byte becomes U+FFFD */
            sbuf_adds(b, "\xef\xbf\xbd");
            k = 1;
            continue;
        }
        if (*p == '\\' || *p == '"')
            sbuf_addc(b, '\\');
        if (*p == '\n') {
            sbuf_adds(b, "\\n");
            continue;
        }
        sbuf_add(b, p, k);
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
