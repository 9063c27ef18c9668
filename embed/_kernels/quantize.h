#ifndef CORTEX_QUANTIZE_H
#define CORTEX_QUANTIZE_H
#include "common.h"

/* ---------------------------------------------------------------- quantize (scalar, exact) */
static void quantize_rows(const float *x, Py_ssize_t m, Py_ssize_t k, uint8_t *q, float *a) {
    for (Py_ssize_t i = 0; i < m; i++) {
        const float *xr = x + i * k;
        float amax = 0.0f;
        for (Py_ssize_t j = 0; j < k; j++) amax = fmaxf(amax, fabsf(xr[j]));
        amax = fmaxf(amax, EPS);
        const float s = ACT_QMAX / amax;
        a[i] = amax / ACT_QMAX;
        uint8_t *qr = q + i * k;
        for (Py_ssize_t j = 0; j < k; j++) {
            float v = rintf(xr[j] * s);
            v = fminf(fmaxf(v, -ACT_QMAX), ACT_QMAX);
            qr[j] = (uint8_t)((int)v + 128);
        }
    }
}

/* One row's codes from its absmax (before the EPS floor); k a multiple of 16. The same IEEE ops
 * as the scalar loop. Also the tail of layernorm.h's fused pass. */
__attribute__((target("avx512f,avx512bw"), always_inline))
static inline void quantize_row_avx512(const float *xr, Py_ssize_t k, float absmax, uint8_t *qr,
                                       float *a) {
    const __m512 lo = _mm512_set1_ps(-ACT_QMAX), hi = _mm512_set1_ps(ACT_QMAX);
    const __m512i off = _mm512_set1_epi32(128);
    const float amax = fmaxf(absmax, EPS);
    *a = amax / ACT_QMAX;
    const __m512 vs = _mm512_set1_ps(ACT_QMAX / amax);
    for (Py_ssize_t j = 0; j < k; j += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xr + j), vs);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i iv = _mm512_add_epi32(_mm512_cvtps_epi32(v), off);
        _mm_storeu_si128((__m128i *)(qr + j), _mm512_cvtepi32_epi8(iv));
    }
}

__attribute__((target("avx512f,avx512bw")))
static void quantize_rows_avx512(const float *x, Py_ssize_t m, Py_ssize_t k, uint8_t *q, float *a) {
    for (Py_ssize_t i = 0; i < m; i++) {
        const float *xr = x + i * k;
        __m512 mx = _mm512_setzero_ps();
        for (Py_ssize_t j = 0; j < k; j += 16)
            mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(xr + j)));
        quantize_row_avx512(xr, k, _mm512_reduce_max_ps(mx), q + i * k, &a[i]);
    }
}

#endif
