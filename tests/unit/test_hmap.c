/* Unit tests for libmicro/hmap.c: put/get/replace/delete, the "same value" delete,
 * growth, backward-shift deletion against a reference model, iteration, and the
 * keyed hash (SipHash-2-4 reference vectors, a random key per map). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

static void put_get_replace_del(void **state)
{
    (void)state;
    hmap_t h;
    hmap_init(&h);
    int a = 1, b = 2, c = 3, err = 99;
    assert_null(hmap_gets(&h, "a"));
    assert_null(hmap_del(&h, "a", 1));
    assert_null(hmap_put(&h, "a", 1, &a, &err));
    assert_int_equal(err, 0);
    assert_null(hmap_put(&h, "bb", 2, &b, &err));
    assert_int_equal(hmap_len(&h), 2);
    assert_ptr_equal(hmap_gets(&h, "a"), &a);
    assert_ptr_equal(hmap_get(&h, "bb", 2), &b);
    assert_null(hmap_get(&h, "b", 1));   /* prefix of a key */
    assert_null(hmap_get(&h, "bbb", 3)); /* extension of a key */

    /* replace returns the previous value and keeps the length */
    assert_ptr_equal(hmap_put(&h, "a", 1, &c, &err), &a);
    assert_int_equal(err, 0);
    assert_int_equal(hmap_len(&h), 2);
    assert_ptr_equal(hmap_gets(&h, "a"), &c);

    assert_ptr_equal(hmap_del(&h, "a", 1), &c);
    assert_int_equal(hmap_len(&h), 1);
    assert_null(hmap_gets(&h, "a"));
    assert_null(hmap_del(&h, "a", 1));
    assert_ptr_equal(hmap_gets(&h, "bb"), &b);
    hmap_free(&h);
    assert_int_equal(hmap_len(&h), 0);
    assert_null(hmap_gets(&h, "bb"));
}

/* Keys are byte strings: embedded NULs and the empty key are ordinary keys. */
static void binary_keys(void **state)
{
    (void)state;
    hmap_t h;
    hmap_init(&h);
    int a, b, c;
    hmap_put(&h, "x\0y", 3, &a, NULL);
    hmap_put(&h, "x\0z", 3, &b, NULL);
    hmap_put(&h, "", 0, &c, NULL);
    assert_int_equal(hmap_len(&h), 3);
    assert_ptr_equal(hmap_get(&h, "x\0y", 3), &a);
    assert_ptr_equal(hmap_get(&h, "x\0z", 3), &b);
    assert_ptr_equal(hmap_get(&h, "", 0), &c);
    assert_null(hmap_get(&h, "x", 1));
    hmap_free(&h);
}

/* The key pointer stored is the latest value's: the old owner may be freed. */
static void replace_takes_new_key(void **state)
{
    (void)state;
    hmap_t h;
    hmap_init(&h);
    char *k1 = strdup("conn"), *k2 = strdup("conn");
    int v1, v2;
    hmap_put(&h, k1, 4, &v1, NULL);
    hmap_put(&h, k2, 4, &v2, NULL);
    memset(k1, 'X', 4); /* the old value's key changes under the map */
    free(k1);
    assert_ptr_equal(hmap_gets(&h, "conn"), &v2);
    hmap_free(&h);
    free(k2);
}

static void del_if_only_when_value_matches(void **state)
{
    (void)state;
    hmap_t h;
    hmap_init(&h);
    int a, b;
    assert_int_equal(hmap_del_if(&h, "k", 1, &a), 0); /* empty map */
    hmap_put(&h, "k", 1, &a, NULL);
    assert_int_equal(hmap_del_if(&h, "k", 1, &b), 0);
    assert_ptr_equal(hmap_gets(&h, "k"), &a);
    assert_int_equal(hmap_del_if(&h, "other", 5, &a), 0);
    assert_int_equal(hmap_len(&h), 1);
    assert_int_equal(hmap_del_if(&h, "k", 1, &a), 1);
    assert_null(hmap_gets(&h, "k"));
    assert_int_equal(hmap_len(&h), 0);
    assert_int_equal(hmap_del_if(&h, "k", 1, &a), 0);
    hmap_free(&h);
}

#define MANY 20000

static void growth_past_thousands(void **state)
{
    (void)state;
    hmap_t h;
    hmap_init(&h);
    static char keys[MANY][16];
    static int vals[MANY];
    for (int i = 0; i < MANY; i++) {
        int err = 1;
        snprintf(keys[i], sizeof(keys[i]), "10.0.%d:%d", i / 256, 9000 + i);
        vals[i] = i;
        assert_null(hmap_put(&h, keys[i], strlen(keys[i]), &vals[i], &err));
        assert_int_equal(err, 0);
    }
    assert_int_equal(hmap_len(&h), MANY);
    assert_true(h.cap >= MANY && (h.cap & (h.cap - 1)) == 0);
    assert_true(h.len * 4 <= h.cap * 3); /* load factor kept at or below 3/4 */
    for (int i = 0; i < MANY; i++)
        assert_ptr_equal(hmap_gets(&h, keys[i]), &vals[i]);
    for (int i = 0; i < MANY; i += 2)
        assert_ptr_equal(hmap_del(&h, keys[i], strlen(keys[i])), &vals[i]);
    assert_int_equal(hmap_len(&h), MANY / 2);
    for (int i = 0; i < MANY; i++) {
        if (i % 2)
            assert_ptr_equal(hmap_gets(&h, keys[i]), &vals[i]);
        else
            assert_null(hmap_gets(&h, keys[i]));
    }
    hmap_free(&h);
}

/* Random inserts, replaces and deletes over a small key space (so probe chains
 * collide and wrap around the table end) checked after every step against a
 * plain array. Backward-shift deletion bugs show up as lost or phantom keys. */
#define KEYSPACE 300

static void random_against_reference(void **state)
{
    (void)state;
    static uint64_t keys[KEYSPACE];
    static int vals[KEYSPACE][2];
    void *ref[KEYSPACE] = {0};
    size_t ref_len = 0;
    hmap_t h;
    hmap_init(&h);
    rng_seed(42);
    for (int i = 0; i < KEYSPACE; i++)
        keys[i] = (uint64_t)i * 0x9e3779b97f4a7c15ULL; /* 8-byte binary keys */
    for (int step = 0; step < 200000; step++) {
        int k = (int)rng_below(KEYSPACE);
        uint64_t op = rng_below(10);
        if (op < 5) {
            void *v = &vals[k][rng_below(2)];
            void *prev = hmap_put(&h, &keys[k], sizeof(keys[k]), v, NULL);
            assert_ptr_equal(prev, ref[k]);
            if (!ref[k])
                ref_len++;
            ref[k] = v;
        } else if (op < 8) {
            assert_ptr_equal(hmap_del(&h, &keys[k], sizeof(keys[k])), ref[k]);
            if (ref[k])
                ref_len--;
            ref[k] = NULL;
        } else {
            void *v = &vals[k][rng_below(2)];
            int removed = hmap_del_if(&h, &keys[k], sizeof(keys[k]), v);
            assert_int_equal(removed, ref[k] == v);
            if (removed) {
                ref[k] = NULL;
                ref_len--;
            }
        }
        assert_int_equal(hmap_len(&h), ref_len);
        if (step % 97 == 0 || step > 199000)
            for (int j = 0; j < KEYSPACE; j++)
                assert_ptr_equal(hmap_get(&h, &keys[j], sizeof(keys[j])), ref[j]);
    }
    hmap_free(&h);
}

/* Inserts names[order[0..n)] into a fresh 16-slot map, deletes each one in turn
 * (from a fresh copy every time) and checks that all the others are still found. */
/* The cluster tests need to know where keys land, so they use a map with a
 * fixed hash key. */
#define WRAP_K0 0x0706050403020100ULL
#define WRAP_K1 0x0f0e0d0c0b0a0908ULL

static void delete_each(char names[][8], const int *order, size_t n)
{
    static int v[512];
    for (size_t d = 0; d < n; d++) {
        hmap_t c;
        hmap_init_keyed(&c, WRAP_K0, WRAP_K1);
        for (size_t i = 0; i < n; i++)
            hmap_put(&c, names[order[i]], strlen(names[order[i]]), &v[order[i]], NULL);
        assert_int_equal(c.cap, 16);
        assert_ptr_equal(hmap_del(&c, names[order[d]], strlen(names[order[d]])), &v[order[d]]);
        for (size_t i = 0; i < n; i++)
            assert_ptr_equal(hmap_gets(&c, names[order[i]]), i == d ? NULL : (void *)&v[order[i]]);
        assert_int_equal(hmap_len(&c), n - 1);
        hmap_free(&c);
    }
}

/* Deletion in clusters that wrap past the last slot of a 16-slot table, built
 * from keys whose home slots are 14, 15 and 0. */
static void wraparound_cluster(void **state)
{
    (void)state;
    static char names[512][8];
    int n14 = 0, n15 = 0, n0 = 0, at14[3], at15[3], at0[2];
    hmap_t k;
    hmap_init_keyed(&k, WRAP_K0, WRAP_K1);
    for (int i = 0; i < 512 && (n14 < 3 || n15 < 3 || n0 < 2); i++) {
        snprintf(names[i], sizeof(names[i]), "k%d", i);
        uint64_t home = hmap_hash(&k, names[i], strlen(names[i])) & 15;
        if (home == 14 && n14 < 3)
            at14[n14++] = i;
        else if (home == 15 && n15 < 3)
            at15[n15++] = i;
        else if (home == 0 && n0 < 2)
            at0[n0++] = i;
    }
    assert_int_equal(n14, 3);
    assert_int_equal(n15, 3);
    assert_int_equal(n0, 2);
    /* two keys homed at the last slot: the second one wraps to slot 0 */
    int pair[] = {at15[0], at15[1]};
    delete_each(names, pair, 2);
    int three[] = {at15[0], at15[1], at15[2]};
    delete_each(names, three, 3);
    /* mixed homes: slots 14,15,0,1,2,3,4,5 */
    int mixed[] = {at14[0], at14[1], at15[0], at0[0], at14[2], at15[1], at0[1], at15[2]};
    delete_each(names, mixed, 8);
    int mixed2[] = {at0[0], at15[0], at15[1], at14[0], at0[1], at14[1]};
    delete_each(names, mixed2, 6);
}

static void iteration_visits_each_once(void **state)
{
    (void)state;
    hmap_t h;
    hmap_init(&h);
    void *v;
    assert_int_equal(hmap_next(&h, 0, &v), 0); /* empty, never allocated */
    enum { N = 1000 };
    static char keys[N][8];
    static int vals[N], seen[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%d", i);
        vals[i] = i;
        hmap_put(&h, keys[i], strlen(keys[i]), &vals[i], NULL);
    }
    for (int i = 0; i < N; i += 3)
        hmap_del(&h, keys[i], strlen(keys[i]));
    size_t count = 0;
    for (size_t it = 0; (it = hmap_next(&h, it, &v)) != 0;) {
        int i = *(int *)v;
        assert_true(i >= 0 && i < N);
        assert_true(i % 3 != 0);
        seen[i]++;
        count++;
    }
    assert_int_equal(count, hmap_len(&h));
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], i % 3 ? 1 : 0);
    hmap_free(&h);
}

static void hash_is_never_zero_and_stable(void **state)
{
    (void)state;
    hmap_t h;
    hmap_init_keyed(&h, 1, 2);
    assert_int_not_equal(hmap_hash(&h, "", 0), 0);
    assert_int_equal(hmap_hash(&h, "abc", 3), hmap_hash(&h, "abc", 3));
    assert_int_not_equal(hmap_hash(&h, "abc", 3), hmap_hash(&h, "abd", 3));
}

/* The reference implementation's vectors (vectors_sip64 in the SipHash repository,
 * the n = 15 one is the paper's worked example): key 00 01 .. 0f, message
 * 00 01 .. n-1. Covers the empty message, every tail length and whole words. */
static void siphash_reference_vectors(void **state)
{
    (void)state;
    static const uint64_t want[17] = {
        0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL,
        0x85676696d7fb7e2dULL, 0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL,
        0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL, 0x93f5f5799a932462ULL,
        0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
        0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL,
        0xa129ca6149be45e5ULL, 0x3f2acc7f57c29bdbULL,
    };
    unsigned char msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    for (size_t n = 0; n < 17; n++)
        assert_true(hmap_siphash(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, msg, n) == want[n]);
    assert_true(hmap_siphash(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, msg, 32) ==
                0x7127512f72f27cceULL);
    /* the map's slot hash is that SipHash under the map's key */
    hmap_t h;
    hmap_init_keyed(&h, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL);
    assert_true(hmap_hash(&h, msg, 15) == 0xa129ca6149be45e5ULL);
}

/* hmap_init draws a random key at the first insert: two maps (as two processes
 * would) place the same keys differently, and a map that never held anything
 * has drawn nothing. */
static void unkeyed_maps_draw_random_keys(void **state)
{
    (void)state;
    hmap_t a, b;
    hmap_init(&a);
    hmap_init(&b);
    assert_int_equal(a.keyed, 0);
    int v = 1;
    hmap_put(&a, "x", 1, &v, NULL);
    hmap_put(&b, "x", 1, &v, NULL);
    assert_int_equal(a.keyed, 1);
    assert_int_equal(b.keyed, 1);
    assert_false(a.k0 == b.k0 && a.k1 == b.k1);
    assert_true(hmap_hash(&a, "payments", 8) != hmap_hash(&b, "payments", 8));
    /* the key survives a free: entries put again hash as before */
    uint64_t k0 = a.k0;
    hmap_free(&a);
    assert_true(a.k0 == k0);
    assert_null(hmap_gets(&a, "x"));
    hmap_put(&a, "x", 1, &v, NULL);
    assert_ptr_equal(hmap_gets(&a, "x"), &v);
    hmap_free(&a);
    hmap_free(&b);
}

/* Keys that all share a home slot under one map's key spread out under another
 * key: what an attacker precomputes offline is worth nothing in the process. */
static void precomputed_collisions_do_not_collide(void **state)
{
    (void)state;
    hmap_t fixed;
    hmap_init_keyed(&fixed, 0, 0);
    enum { N = 64 };
    static char keys[N][16];
    int n = 0;
    for (int i = 0; n < N; i++) {
        char k[16];
        snprintf(k, sizeof(k), "ns-%d", i);
        if ((hmap_hash(&fixed, k, strlen(k)) & 1023) == 7)
            memcpy(keys[n++], k, sizeof(k));
    }
    hmap_t h;
    hmap_init(&h);
    int v = 1;
    for (int i = 0; i < N; i++)
        hmap_put(&h, keys[i], strlen(keys[i]), &v, NULL);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += (hmap_hash(&h, keys[i], strlen(keys[i])) & 1023) == 7;
    assert_true(same < 8); /* ~N/1024 expected; all N would be the flood */
    hmap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_replace_del),
        cmocka_unit_test(binary_keys),
        cmocka_unit_test(replace_takes_new_key),
        cmocka_unit_test(del_if_only_when_value_matches),
        cmocka_unit_test(growth_past_thousands),
        cmocka_unit_test(random_against_reference),
        cmocka_unit_test(wraparound_cluster),
        cmocka_unit_test(iteration_visits_each_once),
        cmocka_unit_test(hash_is_never_zero_and_stable),
        cmocka_unit_test(siphash_reference_vectors),
        cmocka_unit_test(unkeyed_maps_draw_random_keys),
        cmocka_unit_test(precomputed_collisions_do_not_collide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
