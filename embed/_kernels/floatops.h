#ifndef CORTEX_FLOATOPS_H
#define CORTEX_FLOATOPS_H
#include "common.h"

/* ---------------------------------------------------------------- float functions
 * Defined in embed/floatops.py by float32 IEEE operations only; scalar and vector versions run
 * the same operations in the same order (no FMA: built with -ffp-contract=off), so they agree
 * bit for bit with each other and with numpy. */
#define FO_LOG2E 0x1.715476p+0f
#define FO_LN2 0x1.62e43p-1f
#define FO_EXP_FLOOR -87.0f
#define FO_RSQRT2 0x1.6a09e6p-1f
#define FO_ERF_P 0x1.4f740ap-2f
static const float FO_EXP_POLY[6] = {0x1.111112p-7f, 0x1.555556p-5f, 0x1.555556p-3f, 0.5f, 1.0f, 1.0f};
static const float FO_ERF_A[5] = {0x1.0fb844p+0f, -0x1.7401c6p+0f, 0x1.6be1c6p+0f, -0x1.23531cp-2f,
                                  0x1.04f20cp-2f};
enum { ACT_NONE = 0, ACT_GELU = 1 };

static inline float fexp_nonpos(float t, float floor) {
    t = fmaxf(t, floor);
    float k = rintf(t * FO_LOG2E);
    float r = t - k * FO_LN2;
    float y = FO_EXP_POLY[0];
    for (int c = 1; c < 6; c++) y = y * r + FO_EXP_POLY[c];
    return ldexpf(y, (int)k);
}

static inline float gelu_f(float x) {
    float z = fabsf(x) * FO_RSQRT2;
    float t = 1.0f / (1.0f + FO_ERF_P * z);
    float poly = FO_ERF_A[0];
    for (int c = 1; c < 5; c++) poly = poly * t + FO_ERF_A[c];
    poly = poly * t;
    float y = 1.0f - poly * fexp_nonpos(-(z * z), FO_EXP_FLOOR);
    return (0.5f * x) * (1.0f + copysignf(y, x));
}

static void gelu_rows(float *x, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) x[i] = gelu_f(x[i]);
}

VNNI_TARGET static inline __m512 fexp16(__m512 t, float floor) {
    t = _mm512_max_ps(t, _mm512_set1_ps(floor));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(FO_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(t, _mm512_mul_ps(k, _mm512_set1_ps(FO_LN2)));
    __m512 y = _mm512_set1_ps(FO_EXP_POLY[0]);
    for (int c = 1; c < 6; c++) y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(FO_EXP_POLY[c]));
    return _mm512_scalef_ps(y, k);
}

VNNI_TARGET static inline __m512 gelu16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(FO_RSQRT2));
    __m512 t = _mm512_div_ps(one, _mm512_add_ps(one, _mm512_mul_ps(_mm512_set1_ps(FO_ERF_P), z)));
    __m512 poly = _mm512_set1_ps(FO_ERF_A[0]);
    for (int c = 1; c < 5; c++) poly = _mm512_add_ps(_mm512_mul_ps(poly, t), _mm512_set1_ps(FO_ERF_A[c]));
    poly = _mm512_mul_ps(poly, t);
    __m512 e = fexp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z)), FO_EXP_FLOOR);
    __m512 y = _mm512_sub_ps(one, _mm512_mul_ps(poly, e));
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i yi = _mm512_or_si512(_mm512_andnot_si512(sign, _mm512_castps_si512(y)),
                                 _mm512_and_si512(sign, _mm512_castps_si512(x)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(one, _mm512_castsi512_ps(yi)));
}

#endif
