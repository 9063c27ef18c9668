#ifndef CORTEX_LAYERNORM_H
#define CORTEX_LAYERNORM_H
#include "common.h"

#include "quantize.h"

/* ---------------------------------------------------------------- residual add + LayerNorm + quantize
 * h = LayerNorm(y + h) * gamma + beta in place, then h's int8 codes for the next linear layer.
 * Sums run in 16 lanes (first chunk loaded, later chunks added in order) and the lanes are then
 * added one after another: the order embed/floatops.py's add_layer_norm spells out. */
#define LN_EPS 0x1.197998p-40f

static void add_ln_scalar(const float *y, float *h, const float *g, const float *b, Py_ssize_t m,
                          Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < m; i++) {
        const float *yr = y + i * n;
        float *hr = h + i * n;
        float acc[16], acc2[16];
        for (Py_ssize_t j = 0; j < n; j++) {
            float x = yr[j] + hr[j];
            hr[j] = x;
            if (j < 16) acc[j] = x;
            else acc[j % 16] += x;
        }
        float sum = acc[0];
        for (int l = 1; l < 16; l++) sum += acc[l];
        const float mean = sum / (float)n;
        for (Py_ssize_t j = 0; j < n; j++) {
            float d = hr[j] - mean;
            if (j < 16) acc2[j] = d * d;
            else acc2[j % 16] += d * d;
        }
        float sq = acc2[0];
        for (int l = 1; l < 16; l++) sq += acc2[l];
        const float rstd = 1.0f / sqrtf(sq / (float)n + LN_EPS);
        for (Py_ssize_t j = 0; j < n; j++) hr[j] = ((hr[j] - mean) * rstd) * g[j] + b[j];
    }
}

VNNI_TARGET static inline float lanes_in_order(__m512 v) {
    float l[16];
    _mm512_storeu_ps(l, v);
    float s = l[0];
    for (int i = 1; i < 16; i++) s += l[i];
    return s;
}

/* n % 16 == 0: the same operations, 16 columns at a time, with the quantization fused. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void add_ln_quant_avx512(const float *y, float *h, const float *g, const float *b,
                                uint8_t *q, float *a, Py_ssize_t m, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < m; i++) {
        const float *yr = y + i * n;
        float *hr = h + i * n;
        __m512 acc = _mm512_add_ps(_mm512_loadu_ps(yr), _mm512_loadu_ps(hr));
        _mm512_storeu_ps(hr, acc);
        for (Py_ssize_t j = 16; j < n; j += 16) {
            __m512 x = _mm512_add_ps(_mm512_loadu_ps(yr + j), _mm512_loadu_ps(hr + j));
            _mm512_storeu_ps(hr + j, x);
            acc = _mm512_add_ps(acc, x);
        }
        const __m512 mean = _mm512_set1_ps(lanes_in_order(acc) / (float)n);
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(hr), mean);
        __m512 acc2 = _mm512_mul_ps(d, d);
        for (Py_ssize_t j = 16; j < n; j += 16) {
            d = _mm512_sub_ps(_mm512_loadu_ps(hr + j), mean);
            acc2 = _mm512_add_ps(acc2, _mm512_mul_ps(d, d));
        }
        const __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(lanes_in_order(acc2) / (float)n + LN_EPS));
        __m512 mx = _mm512_setzero_ps();
        for (Py_ssize_t j = 0; j < n; j += 16) {
            d = _mm512_sub_ps(_mm512_loadu_ps(hr + j), mean);
            __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(d, rstd), _mm512_loadu_ps(g + j)),
                                     _mm512_loadu_ps(b + j));
            _mm512_storeu_ps(hr + j, v);
            mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
        }
        quantize_row_avx512(hr, n, _mm512_reduce_max_ps(mx), q + i * n, &a[i]);
    }
}

#endif
