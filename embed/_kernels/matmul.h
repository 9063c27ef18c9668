#ifndef CORTEX_MATMUL_H
#define CORTEX_MATMUL_H
#include "common.h"

#include "floatops.h"

/* ---------------------------------------------------------------- matmul: scalar */
static void mm_scalar(const uint8_t *q, const float *a, Py_ssize_t m, Py_ssize_t k,
                      const int8_t *w, const int32_t *wsum, const float *ws, const float *b,
                      Py_ssize_t n, float *out) {
    for (Py_ssize_t i = 0; i < m; i++) {
        const uint8_t *qr = q + i * k;
        for (Py_ssize_t p = 0; p < n / 16; p++) {
            int32_t acc[16] = {0};
            const int8_t *wp = w + p * 16 * k;
            for (Py_ssize_t kk = 0; kk < k / 4; kk++) {
                const int8_t *wq = wp + kk * 64;
                const uint8_t *qq = qr + kk * 4;
                for (int c = 0; c < 16; c++)
                    for (int t = 0; t < 4; t++) acc[c] += (int32_t)qq[t] * wq[c * 4 + t];
            }
            for (int c = 0; c < 16; c++) {
                Py_ssize_t col = p * 16 + c;
                float v = (float)(acc[c] - 128 * wsum[col]);
                out[i * n + col] = (v * a[i]) * ws[col] + b[col];
            }
        }
    }
}

/* ---------------------------------------------------------------- matmul: AVX2 */
__attribute__((target("avx2")))
static inline void epi_avx2(__m256i acc, const int32_t *wsum, const float *ws, const float *b,
                            float ai, float *dst) {
    acc = _mm256_sub_epi32(acc, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)wsum), 7));
    __m256 v = _mm256_cvtepi32_ps(acc);
    v = _mm256_mul_ps(v, _mm256_set1_ps(ai));
    v = _mm256_mul_ps(v, _mm256_loadu_ps(ws));
    v = _mm256_add_ps(v, _mm256_loadu_ps(b));
    _mm256_storeu_ps(dst, v);
}

__attribute__((target("avx2")))
static void mm_avx2(const uint8_t *q, const float *a, Py_ssize_t m, Py_ssize_t k,
                    const int8_t *w, const int32_t *wsum, const float *ws, const float *b,
                    Py_ssize_t n, float *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (Py_ssize_t p = 0; p < n / 16; p++) {
        const int8_t *wp = w + p * 16 * k;
        Py_ssize_t col = p * 16;
        Py_ssize_t i = 0;
        for (; i + 4 <= m; i += 4) {
            __m256i c[4][2];
            for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_si256();
            for (Py_ssize_t kk = 0; kk < k / 4; kk++) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(wp + kk * 64));
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(wp + kk * 64 + 32));
                for (int r = 0; r < 4; r++) {
                    int32_t v;
                    memcpy(&v, q + (i + r) * k + kk * 4, 4);
                    __m256i x = _mm256_set1_epi32(v);
                    /* |pair sum| <= 2 * 255: ternary weights never saturate maddubs */
                    c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w0), ones));
                    c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w1), ones));
                }
            }
            for (int r = 0; r < 4; r++) {
                float *dst = out + (i + r) * n + col;
                epi_avx2(c[r][0], wsum + col, ws + col, b + col, a[i + r], dst);
                epi_avx2(c[r][1], wsum + col + 8, ws + col + 8, b + col + 8, a[i + r], dst + 8);
            }
        }
        for (; i < m; i++) {
            __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
            for (Py_ssize_t kk = 0; kk < k / 4; kk++) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(wp + kk * 64));
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(wp + kk * 64 + 32));
                int32_t v;
                memcpy(&v, q + i * k + kk * 4, 4);
                __m256i x = _mm256_set1_epi32(v);
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w0), ones));
                c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w1), ones));
            }
            float *dst = out + i * n + col;
            epi_avx2(c0, wsum + col, ws + col, b + col, a[i], dst);
            epi_avx2(c1, wsum + col + 8, ws + col + 8, b + col + 8, a[i], dst + 8);
        }
    }
}

/* ---------------------------------------------------------------- matmul: AVX-512 VNNI */
VNNI_TARGET static inline void epi_vnni(__m512i acc, const int32_t *wsum, const float *ws,
                                        const float *b, float ai, float *dst, int act) {
    acc = _mm512_sub_epi32(acc, _mm512_slli_epi32(_mm512_loadu_si512(wsum), 7));
    __m512 v = _mm512_cvtepi32_ps(acc);
    v = _mm512_mul_ps(v, _mm512_set1_ps(ai));
    v = _mm512_mul_ps(v, _mm512_loadu_ps(ws));
    v = _mm512_add_ps(v, _mm512_loadu_ps(b));
    _mm512_storeu_ps(dst, act == ACT_GELU ? gelu16(v) : v);
}

/* Epilogue for accumulators that started at -128 * wsum (the same exact integer at the end). */
VNNI_TARGET static inline void epi_vnni_biased(__m512i acc, const float *ws, const float *b,
                                               float ai, float *dst, int act) {
    __m512 v = _mm512_cvtepi32_ps(acc);
    v = _mm512_mul_ps(v, _mm512_set1_ps(ai));
    v = _mm512_mul_ps(v, _mm512_loadu_ps(ws));
    v = _mm512_add_ps(v, _mm512_loadu_ps(b));
    _mm512_storeu_ps(dst, act == ACT_GELU ? gelu16(v) : v);
}

VNNI_TARGET static inline __m512i wbias(const int32_t *wsum) {
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_loadu_si512(wsum), 7));
}

/* The main tile: 6 rows x 64 columns, 24 accumulators named one by one so that GCC keeps them
 * all in zmm registers (an accumulator array gets spilled to the stack on every update). */
#define ROW(r)                                                                                 \
    {                                                                                          \
        int32_t v;                                                                             \
        memcpy(&v, qi + (r) * k + kk * 4, 4);                                                  \
        __m512i x = _mm512_set1_epi32(v);                                                      \
        DPBUSD(c##r##0, x, w0);                                                                \
        DPBUSD(c##r##1, x, w1);                                                                \
        DPBUSD(c##r##2, x, w2);                                                                \
        DPBUSD(c##r##3, x, w3);                                                                \
    }
#define EPI(r)                                                                                 \
    {                                                                                          \
        float *o = out + (i + (r)) * n + col;                                                  \
        epi_vnni_biased(c##r##0, ws + col, b + col, a[i + (r)], o, act);                       \
        epi_vnni_biased(c##r##1, ws + col + 16, b + col + 16, a[i + (r)], o + 16, act);        \
        epi_vnni_biased(c##r##2, ws + col + 32, b + col + 32, a[i + (r)], o + 32, act);        \
        epi_vnni_biased(c##r##3, ws + col + 48, b + col + 48, a[i + (r)], o + 48, act);        \
    }

__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline))
static void tile_6x4(const uint8_t *q, const float *a, Py_ssize_t k,
                                        const int8_t *w, const int32_t *wsum, const float *ws,
                                        const float *b, Py_ssize_t n, float *out, Py_ssize_t i,
                                        Py_ssize_t p0, int act) {
    const __m512i z0 = wbias(wsum + p0 * 16), z1 = wbias(wsum + p0 * 16 + 16);
    const __m512i z2 = wbias(wsum + p0 * 16 + 32), z3 = wbias(wsum + p0 * 16 + 48);
    __m512i c00 = z0, c01 = z1, c02 = z2, c03 = z3, c10 = z0, c11 = z1, c12 = z2, c13 = z3;
    __m512i c20 = z0, c21 = z1, c22 = z2, c23 = z3, c30 = z0, c31 = z1, c32 = z2, c33 = z3;
    __m512i c40 = z0, c41 = z1, c42 = z2, c43 = z3, c50 = z0, c51 = z1, c52 = z2, c53 = z3;
    const int8_t *wp = w + p0 * 16 * k;
    const uint8_t *qi = q + i * k;
    for (Py_ssize_t kk = 0; kk < k / 4; kk++) {
        const __m512i w0 = _mm512_loadu_si512(wp + kk * 64);
        const __m512i w1 = _mm512_loadu_si512(wp + 16 * k + kk * 64);
        const __m512i w2 = _mm512_loadu_si512(wp + 32 * k + kk * 64);
        const __m512i w3 = _mm512_loadu_si512(wp + 48 * k + kk * 64);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
    }
    const Py_ssize_t col = p0 * 16;
    EPI(0) EPI(1) EPI(2) EPI(3) EPI(4) EPI(5)
}

/* Remainders: one row x one 16-column panel. */
VNNI_TARGET static inline void tile_1x1(const uint8_t *q, const float *a, Py_ssize_t k,
                                        const int8_t *w, const int32_t *wsum, const float *ws,
                                        const float *b, Py_ssize_t n, float *out, Py_ssize_t i,
                                        Py_ssize_t p, int act) {
    __m512i c = _mm512_setzero_si512();
    const int8_t *wp = w + p * 16 * k;
    for (Py_ssize_t kk = 0; kk < k / 4; kk++) {
        int32_t v;
        memcpy(&v, q + i * k + kk * 4, 4);
        c = _mm512_dpbusd_epi32(c, _mm512_set1_epi32(v), _mm512_loadu_si512(wp + kk * 64));
    }
    Py_ssize_t col = p * 16;
    epi_vnni(c, wsum + col, ws + col, b + col, a[i], out + i * n + col, act);
}

/* Remainder rows of a 64-column block: one row, four independent accumulators. */
VNNI_TARGET static inline void tile_1x4(const uint8_t *q, const float *a, Py_ssize_t k,
                                        const int8_t *w, const int32_t *wsum, const float *ws,
                                        const float *b, Py_ssize_t n, float *out, Py_ssize_t i,
                                        Py_ssize_t p0, int act) {
    __m512i c0 = wbias(wsum + p0 * 16), c1 = wbias(wsum + p0 * 16 + 16);
    __m512i c2 = wbias(wsum + p0 * 16 + 32), c3 = wbias(wsum + p0 * 16 + 48);
    const int8_t *wp = w + p0 * 16 * k;
    const uint8_t *qi = q + i * k;
    for (Py_ssize_t kk = 0; kk < k / 4; kk++) {
        int32_t v;
        memcpy(&v, qi + kk * 4, 4);
        const __m512i x = _mm512_set1_epi32(v);
        DPBUSD(c0, x, _mm512_loadu_si512(wp + kk * 64));
        DPBUSD(c1, x, _mm512_loadu_si512(wp + 16 * k + kk * 64));
        DPBUSD(c2, x, _mm512_loadu_si512(wp + 32 * k + kk * 64));
        DPBUSD(c3, x, _mm512_loadu_si512(wp + 48 * k + kk * 64));
    }
    const Py_ssize_t col = p0 * 16;
    float *o = out + i * n + col;
    epi_vnni_biased(c0, ws + col, b + col, a[i], o, act);
    epi_vnni_biased(c1, ws + col + 16, b + col + 16, a[i], o + 16, act);
    epi_vnni_biased(c2, ws + col + 32, b + col + 32, a[i], o + 32, act);
    epi_vnni_biased(c3, ws + col + 48, b + col + 48, a[i], o + 48, act);
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void mm_vnni(const uint8_t *q, const float *a, Py_ssize_t m, Py_ssize_t k,
                    const int8_t *w, const int32_t *wsum, const float *ws, const float *b,
                    Py_ssize_t n, float *out, int act) {
    const Py_ssize_t np_ = n / 16;
    const Py_ssize_t MB = 96; /* rows per block: 96 x K bytes of activations stay in L2 */
    for (Py_ssize_t i0 = 0; i0 < m; i0 += MB) {
        Py_ssize_t i1 = i0 + MB < m ? i0 + MB : m;
        Py_ssize_t p = 0;
        for (; p + 4 <= np_; p += 4) {
            Py_ssize_t i = i0;
            for (; i + 6 <= i1; i += 6) tile_6x4(q, a, k, w, wsum, ws, b, n, out, i, p, act);
            for (; i < i1; i++) tile_1x4(q, a, k, w, wsum, ws, b, n, out, i, p, act);
        }
        for (; p < np_; p++)
            for (Py_ssize_t i = i0; i < i1; i++) tile_1x1(q, a, k, w, wsum, ws, b, n, out, i, p, act);
    }
}

#endif
