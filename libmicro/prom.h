/* prom: helpers for the Prometheus text exposition format (/metrics). */
#ifndef MICRO_PROM_H
#define MICRO_PROM_H

#include "sbuf.h"

void prom_head(sbuf_t *b, const char *name, const char *type, const char *help);
void prom_value(sbuf_t *b, const char *name, double v);
/* name{label="value"} v — the label value is escaped (\\, \", \n; invalid UTF-8 as
 * U+FFFD). Values: integers as integers within long long's range, else floats;
 * NaN, +Inf, -Inf as the format spells them. */
void prom_labeled(sbuf_t *b, const char *name, const char *label, const char *value, double v);
/* HELP + TYPE + one unlabeled sample. */
void prom_metric(sbuf_t *b, const char *name, const char *type, const char *help, double v);

#endif
