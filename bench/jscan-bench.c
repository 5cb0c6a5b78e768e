/* jscan-bench: how fast jscan validates (and indexes) the documents the hot path
 * sees. Single-threaded, in-process, no I/O: MB/s and ns per document.
 *
 *   cmake --build build --target jscan-bench && build/bench/jscan-bench [bench/payload.json]
 *
 * Documents: the benchmark payload (1 KiB order) as a frame, the same frame
 * indexed as frame_decode does (depth 3), a 64 KiB array of numbers and strings,
 * and a payload nested 1,000 deep (what a Node peer sends and we must accept).
 * Each figure is the best of 25 rounds of thread CPU time, so a busy machine
 * disturbs it less; on a shared machine count instructions instead, which do
 * not depend on the neighbours:
 *
 *   jscan-bench bench/payload.json ITERS DOC     (DOC 0-4: run only that one, ITERS times)
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null jscan-bench ... 2>&1 | grep refs
 *
 * and take the difference of two ITERS over their difference. */
#include "jscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[*n] = '\0';
    return buf;
}

static volatile size_t sink;

static int once(const char *doc, size_t n, int ixdepth, jindex_t *ix)
{
    jspan_t root;
    int rc = ixdepth ? jscan_validate_ix(doc, n, &root, NULL, ix, ixdepth) : jscan_validate(doc, n, &root, NULL);
    sink += root.n;
    return rc;
}

/* The best of 25 rounds of ~20 ms each: the machine may be busy, and the
 * fastest round is the one least disturbed. */
static void run(const char *name, const char *doc, size_t n, int ixdepth)
{
    jindex_t ix;
    int rc = once(doc, n, ixdepth, &ix);
    if (rc) {
        printf("%-28s %8zu bytes  refused (%d)\n", name, n, rc);
        return;
    }
    size_t iters = 1;
    for (;;) {
        double t0 = now_s();
        for (size_t i = 0; i < iters; i++)
            once(doc, n, ixdepth, &ix);
        if (now_s() - t0 > 0.02)
            break;
        iters *= 2;
    }
    double best = 1e9;
    for (int round = 0; round < 25; round++) {
        double t0 = now_s();
        for (size_t i = 0; i < iters; i++)
            once(doc, n, ixdepth, &ix);
        double dt = (now_s() - t0) / (double)iters;
        if (dt < best)
            best = dt;
    }
    printf("%-28s %8zu bytes  %9.1f ns/doc  %8.1f MB/s\n", name, n, best * 1e9, (double)n / best / 1e6);
}

int main(int argc, char **argv)
{
    size_t pn = 0;
    char *payload = read_file(argc > 1 ? argv[1] : "bench/payload.json", &pn);
    if (!payload) {
        fprintf(stderr, "usage: jscan-bench [payload.json]\n");
        return 2;
    }
    while (pn && (payload[pn - 1] == '\n' || payload[pn - 1] == ' '))
        pn--;
    char *frame = malloc(pn + 128);
    int fn = sprintf(frame, "{\"id\":12345,\"twoway\":true,\"data\":{\"url\":\"/charge\",\"data\":%.*s},\"mode\":0}",
                     (int)pn, payload);

    size_t wn = 0, wcap = 70000;
    char *wide = malloc(wcap);
    wide[wn++] = '[';
    for (int i = 0; wn < 65000; i++)
        wn += (size_t)sprintf(wide + wn, i % 2 ? "%s%d.%03d" : "%s\"item-%d\"", i ? "," : "", i, i % 1000);
    wide[wn++] = ']';

    const int depth = 1000;
    char *deep = malloc(2 * (size_t)depth * 6 + 16);
    size_t dn = 0;
    for (int i = 0; i < depth; i++)
        dn += (size_t)sprintf(deep + dn, i % 2 ? "[" : "{\"k\":");
    deep[dn++] = '1';
    for (int i = depth - 1; i >= 0; i--)
        deep[dn++] = i % 2 ? ']' : '}';

    const struct { const char *name, *doc; size_t n; int ixdepth; } docs[] = {
        {"payload (1 KiB)", payload, pn, 0},
        {"frame", frame, (size_t)fn, 0},
        {"frame, indexed (depth 3)", frame, (size_t)fn, 3},
        {"array of 64 KiB", wide, wn, 0},
        {"nested 1,000 deep", deep, dn, 0},
    };
    if (argc > 3) { /* fixed work, for instruction counts */
        long iters = atol(argv[2]), d = atol(argv[3]);
        jindex_t ix;
        if (d < 0 || d > 4 || iters < 0)
            return 2;
        for (long i = 0; i < iters; i++)
            once(docs[d].doc, docs[d].n, docs[d].ixdepth, &ix);
    } else {
        for (size_t d = 0; d < 5; d++)
            run(docs[d].name, docs[d].doc, docs[d].n, docs[d].ixdepth);
    }
    free(payload);
    free(frame);
    free(wide);
    free(deep);
    return 0;
}
