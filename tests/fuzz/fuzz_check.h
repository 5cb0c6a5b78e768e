/* The fuzz targets' one assertion: unlike assert(), it stays on in every build
 * and names the failed condition before libFuzzer saves the input. */
#ifndef MICRO_FUZZ_CHECK_H
#define MICRO_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

#endif
