/* jscan: a strict, allocation-free JSON validator and scanner over raw text.
 * Payloads cross the sidecar as the exact text the app or peer sent: we validate
 * once and then work with spans into the original buffer, so numbers, key order
 * and escapes arrive unchanged (a parse/re-serialise round trip would turn 0.1 into
 * 0.10000000000000001 and refuse integers beyond 2^63 that JavaScript accepts). */
#ifndef MICRO_JSCAN_H
#define MICRO_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JT_NONE = 0, JT_OBJECT, JT_ARRAY, JT_STRING, JT_NUMBER, JT_TRUE, JT_FALSE, JT_NULL } jtype_t;

/* A value's raw text; a string span includes its quotes. */
typedef struct jspan {
    const char *p;
    size_t      n;
    jtype_t     t;
} jspan_t;

#define JSCAN_MAX_DEPTH 256

/* Validates that [p, p+n) is exactly one JSON value (surrounding white space
 * allowed, UTF-8 checked) and returns its span. 0 on success, -1 otherwise;
 * *errpos (optional) gets the offset of the first bad byte. */
int jscan_validate(const char *p, size_t n, jspan_t *root, size_t *errpos);

/* Member iteration over a validated object span. */
typedef struct jiter {
    const char *p, *end;
} jiter_t;
void jobj_iter(jiter_t *it, jspan_t obj);
bool jobj_next(jiter_t *it, jspan_t *key, jspan_t *val);
/* Item iteration over a validated array span (same iterator type). */
void jarr_iter(jiter_t *it, jspan_t arr);
bool jarr_next(jiter_t *it, jspan_t *val);
/* Finds a top-level member by (unescaped) name; the last occurrence wins, as in JS. */
bool jobj_get(jspan_t obj, const char *name, jspan_t *val);
/* True when the object has no members. */
bool jobj_empty(jspan_t obj);

/* String helpers on string spans (quotes included). */
bool jstr_eq(jspan_t s, const char *lit);
/* Unescapes into out (NUL-terminated); -1 if it does not fit. */
int  jstr_get(jspan_t s, char *out, size_t outlen, size_t *outn);
/* Integer in [0, 2^53-1] (a JSON number with an integral value, e.g. 5 or 5.0). */
int  jnum_u53(jspan_t s, uint64_t *out);
/* Any number as a double (strtod on the span). */
int  jnum_double(jspan_t s, double *out);

#endif
