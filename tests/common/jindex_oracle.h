/* The member index's oracle, shared by tests/unit/test_jscan.c and
 * tests/fuzz/fuzz_jscan.c: every object the index holds must yield, through
 * jmembers_*, exactly the members walking its text yields (same spans, same
 * order), and a member's slot must lead to its own members. */
#ifndef MICRO_TESTS_JINDEX_ORACLE_H
#define MICRO_TESTS_JINDEX_ORACLE_H

#include "jscan.h"

/* 0 when the index agrees with the text under obj (at `parent`), -1 otherwise. */
static inline int jindex_agrees_with_text(const jindex_t *ix, int parent, jspan_t obj)
{
    jmembers_t ms;
    jiter_t it;
    jspan_t k1, v1, k2, v2;
    int slot;
    jmembers_init(&ms, ix, parent, obj);
    jobj_iter(&it, obj);
    while (jmembers_next(&ms, &k1, &v1, &slot)) {
        if (!jobj_next(&it, &k2, &v2))
            return -1;
        if (k1.p != k2.p || k1.n != k2.n || v1.p != v2.p || v1.n != v2.n || v1.t != v2.t)
            return -1;
        if (v1.t == JT_OBJECT && jindex_agrees_with_text(ix, slot, v1))
            return -1;
    }
    return jobj_next(&it, &k2, &v2) ? -1 : 0;
}

#endif
