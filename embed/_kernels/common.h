/* Shared by the Cortex kernel sections (one translation unit: cortex_kernels.c includes them
 * in order). Every section keeps its functions static; SIMD code carries its own target
 * attribute and runs only after a run-time CPU check, so the file builds without -m flags. */
#ifndef CORTEX_COMMON_H
#define CORTEX_COMMON_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ACT_QMAX 127.0f
#define EPS 1e-5f

enum { PATH_SCALAR = 0, PATH_AVX2 = 1, PATH_VNNI = 2 };

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))

/* GCC 12 round-trips every _mm512_dpbusd_epi32 accumulator through the stack; the one-line asm
 * keeps it in a register (same instruction, same result). */
#define DPBUSD(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w))
#endif
