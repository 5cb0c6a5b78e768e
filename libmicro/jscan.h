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

/* Nesting accepted by jscan_validate(_ix): a payload or an app answer may nest
 * this deep (a Node peer accepts 1,000 and more). Frames carry a few levels of
 * envelope on top (FRAME_MAX_DEPTH). The validator keeps one bit per open
 * level, not a stack frame, so the limit costs no stack; JSCAN_DEPTH_CAP bounds
 * what jscan_validate_max can be asked for. */
#define JSCAN_MAX_DEPTH 1024
#define JSCAN_DEPTH_CAP 4096

enum {
    JSCAN_OK = 0,
    JSCAN_E_SYNTAX = -1, /* not one JSON value (or not UTF-8) */
    JSCAN_E_DEPTH = -2,  /* valid so far, but nested deeper than allowed */
};

/* Validates that [p, p+n) is exactly one JSON value (surrounding white space
 * allowed, UTF-8 checked, at most JSCAN_MAX_DEPTH deep) and returns its span.
 * JSCAN_OK, or a negative JSCAN_E_*; *errpos (optional) gets the offset of the
 * first bad byte (for JSCAN_E_DEPTH, the bracket one level too deep). */
int jscan_validate(const char *p, size_t n, jspan_t *root, size_t *errpos);

typedef struct jiter {
    const char *p, *end;
} jiter_t;

/* A member index, filled by jscan_validate_ix in its one pass so that decoding
 * a frame and looking up its fields walk no text again: the members of the root
 * object and, down to `depth` levels, of objects that are member values (not of
 * objects inside arrays), in document order. Each slot names the slot of the
 * member whose value holds it (JIX_ROOT for the root's members). Bounded: when
 * more members would be recorded than fit, `complete` is false and jmembers_*
 * walk the text instead. */
#define JIX_MAX  64
#define JIX_MAX_DEPTH 7 /* deepest level an index records (larger depths are clamped) */
#define JIX_ROOT (-1)
#define JIX_NONE (-2) /* no slot: members come from the text */
typedef struct jix_member {
    jspan_t key, val;
    int     parent;
    int     level; /* 1 for the root's members */
} jix_member_t;
typedef struct jindex {
    int          n, depth;
    bool         complete;
    jix_member_t m[JIX_MAX];
} jindex_t;

/* jscan_validate, also filling ix (which may be NULL) down to depth levels. */
int jscan_validate_ix(const char *p, size_t n, jspan_t *root, size_t *errpos, jindex_t *ix,
                      int depth);
/* The same with another nesting limit (clamped to JSCAN_DEPTH_CAP). */
int jscan_validate_max(const char *p, size_t n, jspan_t *root, size_t *errpos, jindex_t *ix,
                       int ixdepth, int max_depth);

/* For text that jscan refused with JSCAN_E_DEPTH, so that the sender can be
 * told at once: the last top-level member `name` (no escapes in the key) of the
 * root object, when its value is a number, true, false or null. Nested values
 * are skipped by counting brackets, without a stack and without validating
 * them; the root object's own members must be well formed up to its end.
 * Returns true and the value's span, or false. */
bool jscan_root_scalar(const char *p, size_t n, const char *name, jspan_t *val);

/* The members of a validated object: from the index when it holds them (parent:
 * the object's slot, JIX_ROOT for the root), otherwise from the text. */
typedef struct jmembers {
    const jindex_t *ix; /* NULL: walking the text */
    int             parent, i;
    jiter_t         it;
} jmembers_t;
void jmembers_init(jmembers_t *ms, const jindex_t *ix, int parent, jspan_t obj);
/* Next member; *slot (optional) gets its slot, for its own members, or JIX_NONE. */
bool jmembers_next(jmembers_t *ms, jspan_t *key, jspan_t *val, int *slot);
/* jobj_get through the index: the last member named `name`, and its slot. */
bool jmembers_get(const jindex_t *ix, int parent, jspan_t obj, const char *name, jspan_t *val,
                  int *slot);

/* Member iteration over a validated object span. */
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
