/* Cortex CPU kernels: per-token int8 quantization and ternary x int8 matmul.
 *
 * Weights are ternary {-1,0,1} int8 in a panel layout [N/16][K/4][16][4] (16 output columns,
 * 4 consecutive k per column: the operand shape of VNNI's vpdpbusd). Activations are stored as
 * u8 = q + 128 so u8 x s8 instructions apply; the bias 128 * sum_k w[n,k] is subtracted exactly.
 * All integer work is exact, and the float epilogue ((float)acc * a[m]) * ws[n] + b[n] is done as
 * separate IEEE multiplies and adds (built with -ffp-contract=off), so every path equals the
 * numpy reference bit for bit. Paths are chosen at run time; none runs unsupported instructions.
 */
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

__attribute__((target("avx512f,avx512bw")))
static void quantize_rows_avx512(const float *x, Py_ssize_t m, Py_ssize_t k, uint8_t *q, float *a) {
    /* k is a multiple of 16 (checked by the caller). Same IEEE ops as the scalar loop. */
    const __m512 lo = _mm512_set1_ps(-ACT_QMAX), hi = _mm512_set1_ps(ACT_QMAX);
    const __m512i off = _mm512_set1_epi32(128);
    for (Py_ssize_t i = 0; i < m; i++) {
        const float *xr = x + i * k;
        __m512 mx = _mm512_setzero_ps();
        for (Py_ssize_t j = 0; j < k; j += 16)
            mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(xr + j)));
        float amax = fmaxf(_mm512_reduce_max_ps(mx), EPS);
        const float s = ACT_QMAX / amax;
        a[i] = amax / ACT_QMAX;
        const __m512 vs = _mm512_set1_ps(s);
        uint8_t *qr = q + i * k;
        for (Py_ssize_t j = 0; j < k; j += 16) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xr + j), vs);
            v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            __m512i iv = _mm512_add_epi32(_mm512_cvtps_epi32(v), off);
            _mm_storeu_si128((__m128i *)(qr + j), _mm512_cvtepi32_epi8(iv));
        }
    }
}

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

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))

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
    const __m512 lo = _mm512_set1_ps(-ACT_QMAX), hi = _mm512_set1_ps(ACT_QMAX);
    const __m512i off = _mm512_set1_epi32(128);
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
        /* the activation quantizer (quantize_rows_avx512), on the row just written */
        float amax = fmaxf(_mm512_reduce_max_ps(mx), EPS);
        const float sc = ACT_QMAX / amax;
        a[i] = amax / ACT_QMAX;
        const __m512 vs = _mm512_set1_ps(sc);
        uint8_t *qr = q + i * n;
        for (Py_ssize_t j = 0; j < n; j += 16) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(hr + j), vs);
            v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            __m512i iv = _mm512_add_epi32(_mm512_cvtps_epi32(v), off);
            _mm_storeu_si128((__m128i *)(qr + j), _mm512_cvtepi32_epi8(iv));
        }
    }
}

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
/* GCC 12 round-trips every _mm512_dpbusd_epi32 accumulator through the stack; the one-line asm
 * keeps it in a register (same instruction, same result). */
#define DPBUSD(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w))
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

/* ---------------------------------------------------------------- 8-bit attention
 * The definition (and its numpy reference) is in embed/attention.py. Per sequence and head:
 * int8 Q/K per token, u8 probabilities from a polynomial exp, int8 V per channel; both products
 * are exact integer sums and the float steps are the same IEEE operations on every path. */
#define ATT_CUTOFF -6.5f
#define ATT_PMAX 255.0f

typedef struct {
    Py_ssize_t n, n16, n4, d, heads, stride; /* stride: floats per qkv row */
    uint8_t *qq;   /* [n][d] Q codes + 128 */
    float *aq;     /* [n] */
    int8_t *kp;    /* K codes, panels [n16/16][d/4][16][4] */
    int32_t *ksum; /* [n16] */
    float *ck;     /* [n16] aK * scale */
    int8_t *vp;    /* V codes, panels [d/16][n4/4][16][4] */
    float *av;     /* [d] */
    float *s;      /* [n16] one score row */
    uint8_t *p;    /* [n16] one probability row (zeros past n) */
} AttWork;

static int att_alloc(AttWork *w, Py_ssize_t n, Py_ssize_t d, Py_ssize_t heads) {
    memset(w, 0, sizeof *w);
    w->n = n; w->d = d; w->heads = heads; w->stride = 3 * heads * d;
    w->n16 = (n + 15) / 16 * 16; w->n4 = (n + 3) / 4 * 4;
    w->qq = calloc((size_t)(n * d), 1); w->aq = calloc((size_t)n, sizeof(float));
    w->kp = calloc((size_t)(w->n16 * d), 1); w->ksum = calloc((size_t)w->n16, sizeof(int32_t));
    w->ck = calloc((size_t)w->n16, sizeof(float)); w->vp = calloc((size_t)(w->n4 * d), 1);
    w->av = calloc((size_t)d, sizeof(float)); w->s = calloc((size_t)w->n16, sizeof(float));
    w->p = calloc((size_t)w->n16, 1);
    return w->qq && w->aq && w->kp && w->ksum && w->ck && w->vp && w->av && w->s && w->p;
}

static void att_free(AttWork *w) {
    free(w->qq); free(w->aq); free(w->kp); free(w->ksum); free(w->ck); free(w->vp); free(w->av);
    free(w->s); free(w->p);
}

static inline float att_quant_scale(const float *x, Py_ssize_t d, Py_ssize_t step, float *a) {
    float amax = 0.0f;
    for (Py_ssize_t j = 0; j < d; j++) amax = fmaxf(amax, fabsf(x[j * step]));
    amax = fmaxf(amax, EPS);
    *a = amax / ACT_QMAX;
    return ACT_QMAX / amax;
}

static inline int att_code(float v, float s) {
    float r = rintf(v * s);
    return (int)fminf(fmaxf(r, -ACT_QMAX), ACT_QMAX);
}

/* Codes for one sequence and head (scalar: O(n d), small next to the O(n^2 d) products). */
static void att_prepare(AttWork *w, const float *x, Py_ssize_t h, float scale) {
    const Py_ssize_t n = w->n, d = w->d, st = w->stride;
    memset(w->kp, 0, (size_t)(w->n16 * d));
    memset(w->ksum, 0, (size_t)w->n16 * sizeof(int32_t));
    memset(w->vp, 0, (size_t)(w->n4 * d));
    for (Py_ssize_t i = 0; i < n; i++) {
        const float *q = x + i * st + h * d, *k = q + w->heads * d;
        float s = att_quant_scale(q, d, 1, &w->aq[i]);
        for (Py_ssize_t t = 0; t < d; t++) w->qq[i * d + t] = (uint8_t)(att_code(q[t], s) + 128);
        float ak;
        s = att_quant_scale(k, d, 1, &ak);
        w->ck[i] = ak * scale;
        int32_t sum = 0;
        int8_t *panel = w->kp + (i / 16) * 16 * d;
        for (Py_ssize_t t = 0; t < d; t++) {
            int c = att_code(k[t], s);
            sum += c;
            panel[(t / 4) * 64 + (i % 16) * 4 + t % 4] = (int8_t)c;
        }
        w->ksum[i] = sum;
    }
    for (Py_ssize_t t = 0; t < d; t++) {
        const float *v = x + 2 * w->heads * d + h * d + t;
        float s = att_quant_scale(v, n, st, &w->av[t]);
        int8_t *panel = w->vp + (t / 16) * 16 * w->n4;
        for (Py_ssize_t j = 0; j < n; j++)
            panel[(j / 4) * 64 + (t % 16) * 4 + j % 4] = (int8_t)att_code(v[j * st], s);
    }
}

static inline float att_exp(float t) { return fexp_nonpos(t, ATT_CUTOFF); }

/* Scalar path: one query row of one head. */
static void att_row_scalar(AttWork *w, Py_ssize_t i, float *o) {
    const Py_ssize_t n = w->n, d = w->d;
    float m = -INFINITY;
    for (Py_ssize_t j = 0; j < n; j++) {
        const int8_t *panel = w->kp + (j / 16) * 16 * d;
        int32_t acc = 0;
        for (Py_ssize_t t = 0; t < d; t++)
            acc += (int32_t)w->qq[i * d + t] * panel[(t / 4) * 64 + (j % 16) * 4 + t % 4];
        float s = ((float)(acc - 128 * w->ksum[j]) * w->aq[i]) * w->ck[j];
        w->s[j] = s;
        m = fmaxf(m, s);
    }
    int32_t z = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        int p = (int)rintf(att_exp(w->s[j] - m) * ATT_PMAX);
        w->p[j] = (uint8_t)p;
        z += p;
    }
    for (Py_ssize_t t = 0; t < d; t++) {
        const int8_t *panel = w->vp + (t / 16) * 16 * w->n4;
        int32_t acc = 0;
        for (Py_ssize_t j = 0; j < n; j++) acc += (int32_t)w->p[j] * panel[(j / 4) * 64 + (t % 16) * 4 + j % 4];
        o[t] = ((float)acc * w->av[t]) / (float)z;
    }
}

VNNI_TARGET static inline __m512 att_exp16(__m512 t) { return fexp16(t, ATT_CUTOFF); }


/* Codes of 16 floats, the same IEEE steps as att_code. */
VNNI_TARGET static inline __m512i att_codes16(__m512 v, __m512 s) {
    __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-ACT_QMAX)), _mm512_set1_ps(ACT_QMAX));
    return _mm512_cvtps_epi32(r);
}

/* Transposes 4 rows of 16 V codes into one 64-byte panel block [16 channels][4 rows]. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static inline void att_v_block(__m128i r0, __m128i r1, __m128i r2, __m128i r3, int8_t *dst) {
    __m128i a = _mm_unpacklo_epi8(r0, r1), b = _mm_unpacklo_epi8(r2, r3);
    __m128i c = _mm_unpackhi_epi8(r0, r1), e = _mm_unpackhi_epi8(r2, r3);
    _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(a, b));
    _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpackhi_epi16(a, b));
    _mm_storeu_si128((__m128i *)(dst + 32), _mm_unpacklo_epi16(c, e));
    _mm_storeu_si128((__m128i *)(dst + 48), _mm_unpackhi_epi16(c, e));
}

VNNI_TARGET static inline __m128i att_codes16x8(__m512 v, __m512 s) {
    return _mm512_cvtepi32_epi8(att_codes16(v, s));
}

/* att_prepare for every head of one sequence (d == 32) in two passes over its rows, so each row
 * of qkv is read while it is in cache; identical codes and scales to att_prepare. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void att_prepare_all_vnni(AttWork *W, const float *x, float scale, float *vmax) {
    const Py_ssize_t n = W[0].n, heads = W[0].heads, d = 32, st = W[0].stride, n4 = W[0].n4;
    const __m512 qmax = _mm512_set1_ps(ACT_QMAX), eps = _mm512_set1_ps(EPS);
    const __m512i off = _mm512_set1_epi32(128);
    for (Py_ssize_t h = 0; h < heads; h++) {
        AttWork *w = &W[h];
        memset(w->kp + (n / 16) * 16 * d, 0, (size_t)((w->n16 - n / 16 * 16) * d));
        memset(w->ksum + n, 0, (size_t)(w->n16 - n) * sizeof(int32_t));
        _mm512_storeu_ps(vmax + h * d, _mm512_setzero_ps());
        _mm512_storeu_ps(vmax + h * d + 16, _mm512_setzero_ps());
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const float *row = x + i * st;
        for (Py_ssize_t h = 0; h < heads; h++) {
            AttWork *w = &W[h];
            const float *q = row + h * d, *k = q + heads * d, *v = k + heads * d;
            __m512 q0 = _mm512_loadu_ps(q), q1 = _mm512_loadu_ps(q + 16);
            float amax = fmaxf(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(q0), _mm512_abs_ps(q1))), EPS);
            w->aq[i] = amax / ACT_QMAX;
            __m512 sv = _mm512_set1_ps(ACT_QMAX / amax);
            _mm_storeu_si128((__m128i *)(w->qq + i * d), _mm512_cvtepi32_epi8(_mm512_add_epi32(att_codes16(q0, sv), off)));
            _mm_storeu_si128((__m128i *)(w->qq + i * d + 16), _mm512_cvtepi32_epi8(_mm512_add_epi32(att_codes16(q1, sv), off)));
            __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16);
            amax = fmaxf(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(k0), _mm512_abs_ps(k1))), EPS);
            w->ck[i] = (amax / ACT_QMAX) * scale;
            sv = _mm512_set1_ps(ACT_QMAX / amax);
            __m512i c0 = att_codes16(k0, sv), c1 = att_codes16(k1, sv);
            w->ksum[i] = _mm512_reduce_add_epi32(_mm512_add_epi32(c0, c1));
            int8_t codes[32];
            _mm_storeu_si128((__m128i *)codes, _mm512_cvtepi32_epi8(c0));
            _mm_storeu_si128((__m128i *)(codes + 16), _mm512_cvtepi32_epi8(c1));
            int8_t *panel = w->kp + (i / 16) * 16 * d + (i % 16) * 4;
            for (int t = 0; t < 8; t++) memcpy(panel + t * 64, codes + t * 4, 4);
            float *vm = vmax + h * d;
            _mm512_storeu_ps(vm, _mm512_max_ps(_mm512_loadu_ps(vm), _mm512_abs_ps(_mm512_loadu_ps(v))));
            _mm512_storeu_ps(vm + 16, _mm512_max_ps(_mm512_loadu_ps(vm + 16), _mm512_abs_ps(_mm512_loadu_ps(v + 16))));
        }
    }
    /* per head: scales; vmax becomes the code multipliers 127 / amax */
    for (Py_ssize_t h = 0; h < heads; h++) {
        float *vm = vmax + h * d;
        __m512 m0 = _mm512_max_ps(_mm512_loadu_ps(vm), eps), m1 = _mm512_max_ps(_mm512_loadu_ps(vm + 16), eps);
        _mm512_storeu_ps(W[h].av, _mm512_div_ps(m0, qmax));
        _mm512_storeu_ps(W[h].av + 16, _mm512_div_ps(m1, qmax));
        _mm512_storeu_ps(vm, _mm512_div_ps(qmax, m0));
        _mm512_storeu_ps(vm + 16, _mm512_div_ps(qmax, m1));
    }
    const __m128i zero = _mm_setzero_si128();
    for (Py_ssize_t j0 = 0; j0 < n4; j0 += 4) {
        for (Py_ssize_t h = 0; h < heads; h++) {
            const __m512 s0 = _mm512_loadu_ps(vmax + h * d), s1 = _mm512_loadu_ps(vmax + h * d + 16);
            __m128i lo[4], hi[4];
            for (int r = 0; r < 4; r++) {
                if (j0 + r < n) {
                    const float *v = x + (j0 + r) * st + 2 * heads * d + h * d;
                    lo[r] = att_codes16x8(_mm512_loadu_ps(v), s0);
                    hi[r] = att_codes16x8(_mm512_loadu_ps(v + 16), s1);
                } else {
                    lo[r] = hi[r] = zero;
                }
            }
            int8_t *dst = W[h].vp + (j0 / 4) * 64;
            att_v_block(lo[0], lo[1], lo[2], lo[3], dst);
            att_v_block(hi[0], hi[1], hi[2], hi[3], dst + 16 * n4);
        }
    }
}

VNNI_TARGET static inline __m512 att_scores16(const AttWork *w, const uint8_t *qi, __m512i acc,
                                              Py_ssize_t b, __m512 vaq) {
    (void)qi;
    acc = _mm512_sub_epi32(acc, _mm512_slli_epi32(_mm512_loadu_si512(w->ksum + b * 16), 7));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), vaq), _mm512_loadu_ps(w->ck + b * 16));
}

/* One query row of one head (d == 32). Independent accumulators hide vpdpbusd's latency. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void att_row_vnni(AttWork *w, Py_ssize_t i, float *o) {
    const Py_ssize_t n = w->n, d = 32, nb = w->n16 / 16;
    const uint8_t *qi = w->qq + i * d;
    const __m512 vaq = _mm512_set1_ps(w->aq[i]);
    __m512i qb[8];
    for (int t = 0; t < 8; t++) {
        int32_t v;
        memcpy(&v, qi + t * 4, 4);
        qb[t] = _mm512_set1_epi32(v);
    }
    /* Full blocks keep the running max in a register; only the last block can be partial. */
    __m512 vm = _mm512_set1_ps(-INFINITY);
    const Py_ssize_t full = n / 16;
    Py_ssize_t b = 0;
    for (; b + 4 <= full; b += 4) {
        const int8_t *p0 = w->kp + b * 16 * d;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (int t = 0; t < 8; t++) {
            DPBUSD(a0, qb[t], _mm512_loadu_si512(p0 + t * 64));
            DPBUSD(a1, qb[t], _mm512_loadu_si512(p0 + 512 + t * 64));
            DPBUSD(a2, qb[t], _mm512_loadu_si512(p0 + 1024 + t * 64));
            DPBUSD(a3, qb[t], _mm512_loadu_si512(p0 + 1536 + t * 64));
        }
        __m512 s0 = att_scores16(w, qi, a0, b, vaq), s1 = att_scores16(w, qi, a1, b + 1, vaq);
        __m512 s2 = att_scores16(w, qi, a2, b + 2, vaq), s3 = att_scores16(w, qi, a3, b + 3, vaq);
        _mm512_storeu_ps(w->s + b * 16, s0);
        _mm512_storeu_ps(w->s + b * 16 + 16, s1);
        _mm512_storeu_ps(w->s + b * 16 + 32, s2);
        _mm512_storeu_ps(w->s + b * 16 + 48, s3);
        vm = _mm512_max_ps(vm, _mm512_max_ps(_mm512_max_ps(s0, s1), _mm512_max_ps(s2, s3)));
    }
    for (; b < nb; b++) {
        const int8_t *p0 = w->kp + b * 16 * d;
        __m512i a0 = _mm512_setzero_si512();
        for (int t = 0; t < 8; t++) DPBUSD(a0, qb[t], _mm512_loadu_si512(p0 + t * 64));
        __m512 s0 = att_scores16(w, qi, a0, b, vaq);
        _mm512_storeu_ps(w->s + b * 16, s0);
        Py_ssize_t left = n - b * 16;
        __mmask16 valid = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        vm = _mm512_mask_max_ps(vm, valid, vm, s0);
    }
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
    __m512i vz = _mm512_setzero_si512();
    for (b = 0; b < nb; b++) {
        __m512 e = att_exp16(_mm512_sub_ps(_mm512_loadu_ps(w->s + b * 16), m));
        __m512i p = _mm512_cvtps_epi32(_mm512_roundscale_ps(
            _mm512_mul_ps(e, _mm512_set1_ps(ATT_PMAX)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        Py_ssize_t left = n - b * 16;
        __mmask16 valid = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        p = _mm512_maskz_mov_epi32(valid, p);
        vz = _mm512_add_epi32(vz, p);
        _mm_storeu_si128((__m128i *)(w->p + b * 16), _mm512_cvtepi32_epi8(p)); /* 0 past n */
    }
    const float z = (float)_mm512_reduce_add_epi32(vz);
    const int8_t *v0 = w->vp, *v1 = w->vp + 16 * w->n4;
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00;
    const Py_ssize_t jn = w->n4 / 4;
    Py_ssize_t jb = 0;
    for (; jb + 2 <= jn; jb += 2) {
        int32_t pa, pb;
        memcpy(&pa, w->p + jb * 4, 4);
        memcpy(&pb, w->p + jb * 4 + 4, 4);
        __m512i xa = _mm512_set1_epi32(pa), xb = _mm512_set1_epi32(pb);
        DPBUSD(c00, xa, _mm512_loadu_si512(v0 + jb * 64));
        DPBUSD(c10, xa, _mm512_loadu_si512(v1 + jb * 64));
        DPBUSD(c01, xb, _mm512_loadu_si512(v0 + jb * 64 + 64));
        DPBUSD(c11, xb, _mm512_loadu_si512(v1 + jb * 64 + 64));
    }
    if (jb < jn) {
        int32_t pa;
        memcpy(&pa, w->p + jb * 4, 4);
        __m512i xa = _mm512_set1_epi32(pa);
        DPBUSD(c00, xa, _mm512_loadu_si512(v0 + jb * 64));
        DPBUSD(c10, xa, _mm512_loadu_si512(v1 + jb * 64));
    }
    const __m512 vz16 = _mm512_set1_ps(z);
    __m512 r0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(c00, c01)), _mm512_loadu_ps(w->av));
    __m512 r1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(c10, c11)), _mm512_loadu_ps(w->av + 16));
    _mm512_storeu_ps(o, _mm512_div_ps(r0, vz16));
    _mm512_storeu_ps(o + 16, _mm512_div_ps(r1, vz16));
}

/* qkv rows of `seqs` sequences of `n` tokens -> out rows (heads * d floats each). */
static int attention_run(const float *qkv, float *out, Py_ssize_t seqs, Py_ssize_t n,
                         Py_ssize_t heads, Py_ssize_t d, int path) {
    const int fast = path == PATH_VNNI && d == 32;
    const Py_ssize_t nw = fast ? heads : 1; /* the fast path prepares all heads in one pass */
    AttWork *W = calloc((size_t)nw, sizeof(AttWork));
    float *vmax = fast ? malloc((size_t)(heads * d) * sizeof(float)) : NULL;
    int ok = W != NULL && (!fast || vmax != NULL);
    Py_ssize_t made = 0;
    for (; ok && made < nw; made++) ok = att_alloc(&W[made], n, d, heads);
    if (ok) {
        const float scale = 1.0f / sqrtf((float)d);
        for (Py_ssize_t g = 0; g < seqs; g++) {
            const float *x = qkv + g * n * W[0].stride;
            if (fast) att_prepare_all_vnni(W, x, scale, vmax);
            for (Py_ssize_t h = 0; h < heads; h++) {
                AttWork *w = &W[fast ? h : 0];
                if (!fast) att_prepare(w, x, h, scale);
                for (Py_ssize_t i = 0; i < n; i++) {
                    float *o = out + (g * n + i) * heads * d + h * d;
                    if (fast) att_row_vnni(w, i, o);
                    else att_row_scalar(w, i, o);
                }
            }
        }
    }
    for (Py_ssize_t i = 0; W != NULL && i < made; i++) att_free(&W[i]);
    free(W);
    free(vmax);
    return ok;
}

/* ---------------------------------------------------------------- dispatch */
static int path_supported(int path) {
    __builtin_cpu_init();
    switch (path) {
    case PATH_SCALAR: return 1;
    /* libgcc checks XCR0 (OS-enabled YMM/ZMM state) before reporting these features. */
    case PATH_AVX2: return __builtin_cpu_supports("avx2");
    case PATH_VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
    default: return 0;
    }
}

static PyObject *py_supported_paths(PyObject *self, PyObject *args) {
    (void)self; (void)args;
    PyObject *lst = PyList_New(0);
    static const char *names[] = {"scalar", "avx2", "vnni"};
    for (int p = PATH_VNNI; p >= PATH_SCALAR; p--)
        if (path_supported(p)) {
            PyObject *s = PyUnicode_FromString(names[p]);
            PyList_Append(lst, s);
            Py_DECREF(s);
        }
    return lst;
}

static int need(Py_buffer *buf, Py_ssize_t bytes, const char *what) {
    if (buf->len != bytes || !PyBuffer_IsContiguous(buf, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous bytes, got %zd", what, bytes,
                     buf->len);
        return 0;
    }
    return 1;
}

/* quantize(x f32 (m,k), q u8 (m,k) out, a f32 (m,) out, m, k, path) */
static PyObject *py_quantize(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer x, q, a;
    Py_ssize_t m, k;
    int path;
    if (!PyArg_ParseTuple(args, "y*w*w*nni", &x, &q, &a, &m, &k, &path)) return NULL;
    PyObject *ret = NULL;
    if (!path_supported(path)) {
        PyErr_SetString(PyExc_ValueError, "kernel path not supported on this CPU");
    } else if (need(&x, m * k * 4, "x") && need(&q, m * k, "q") && need(&a, m * 4, "a")) {
        int wide = path == PATH_VNNI && k % 16 == 0;
        Py_BEGIN_ALLOW_THREADS
        if (wide) quantize_rows_avx512(x.buf, m, k, q.buf, a.buf);
        else quantize_rows(x.buf, m, k, q.buf, a.buf);
        Py_END_ALLOW_THREADS
        ret = Py_None;
        Py_INCREF(ret);
    }
    PyBuffer_Release(&x); PyBuffer_Release(&q); PyBuffer_Release(&a);
    return ret;
}

/* matmul(q u8 (m,k), a f32 (m,), w i8 panels (n*k), wsum i32 (n,), ws f32 (n,), b f32 (n,),
 *        out f32 (m,n), m, k, n, path[, act]): act 1 applies GELU (embed/floatops.py) */
static PyObject *py_matmul(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer q, a, w, wsum, ws, b, out;
    Py_ssize_t m, k, n;
    int path, act = ACT_NONE;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*w*nnni|i", &q, &a, &w, &wsum, &ws, &b, &out, &m, &k,
                          &n, &path, &act))
        return NULL;
    PyObject *ret = NULL;
    if (!path_supported(path)) {
        PyErr_SetString(PyExc_ValueError, "kernel path not supported on this CPU");
    } else if (k % 4 || n % 16) {
        PyErr_SetString(PyExc_ValueError, "k must be a multiple of 4 and n of 16");
    } else if (act != ACT_NONE && act != ACT_GELU) {
        PyErr_SetString(PyExc_ValueError, "act must be 0 (none) or 1 (GELU)");
    } else if (need(&q, m * k, "q") && need(&a, m * 4, "a") && need(&w, n * k, "w") &&
               need(&wsum, n * 4, "wsum") && need(&ws, n * 4, "ws") && need(&b, n * 4, "b") &&
               need(&out, m * n * 4, "out")) {
        Py_BEGIN_ALLOW_THREADS
        switch (path) {
        case PATH_VNNI: mm_vnni(q.buf, a.buf, m, k, w.buf, wsum.buf, ws.buf, b.buf, n, out.buf, act); break;
        case PATH_AVX2: mm_avx2(q.buf, a.buf, m, k, w.buf, wsum.buf, ws.buf, b.buf, n, out.buf); break;
        default: mm_scalar(q.buf, a.buf, m, k, w.buf, wsum.buf, ws.buf, b.buf, n, out.buf);
        }
        if (path != PATH_VNNI && act == ACT_GELU) gelu_rows(out.buf, m * n);
        Py_END_ALLOW_THREADS
        ret = Py_None;
        Py_INCREF(ret);
    }
    PyBuffer_Release(&q); PyBuffer_Release(&a); PyBuffer_Release(&w); PyBuffer_Release(&wsum);
    PyBuffer_Release(&ws); PyBuffer_Release(&b); PyBuffer_Release(&out);
    return ret;
}

/* attention(qkv f32 (seqs*n, 3*heads*d), out f32 (seqs*n, heads*d), seqs, n, heads, d, path) */
static PyObject *py_attention(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer qkv, out;
    Py_ssize_t seqs, n, heads, d;
    int path;
    if (!PyArg_ParseTuple(args, "y*w*nnnni", &qkv, &out, &seqs, &n, &heads, &d, &path)) return NULL;
    PyObject *ret = NULL;
    if (!path_supported(path)) {
        PyErr_SetString(PyExc_ValueError, "kernel path not supported on this CPU");
    } else if (n < 1 || d % 16 || heads < 1 || seqs < 0) {
        PyErr_SetString(PyExc_ValueError, "attention: need n >= 1 and d a multiple of 16");
    } else if (need(&qkv, seqs * n * 3 * heads * d * 4, "qkv") &&
               need(&out, seqs * n * heads * d * 4, "out")) {
        int ok;
        Py_BEGIN_ALLOW_THREADS
        ok = attention_run(qkv.buf, out.buf, seqs, n, heads, d, path);
        Py_END_ALLOW_THREADS
        if (ok) { ret = Py_None; Py_INCREF(ret); }
        else PyErr_NoMemory();
    }
    PyBuffer_Release(&qkv); PyBuffer_Release(&out);
    return ret;
}

/* add_ln_quant(y f32 (m,n), h f32 (m,n) in/out, gamma f32 (n,), beta f32 (n,), q u8 (m,n) out,
 *              a f32 (m,) out, m, n, path) */
static PyObject *py_add_ln_quant(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer y, h, g, b, q, a;
    Py_ssize_t m, n;
    int path;
    if (!PyArg_ParseTuple(args, "y*w*y*y*w*w*nni", &y, &h, &g, &b, &q, &a, &m, &n, &path))
        return NULL;
    PyObject *ret = NULL;
    if (!path_supported(path)) {
        PyErr_SetString(PyExc_ValueError, "kernel path not supported on this CPU");
    } else if (n < 16 || n % 16) {
        PyErr_SetString(PyExc_ValueError, "add_ln_quant: n must be a positive multiple of 16");
    } else if (need(&y, m * n * 4, "y") && need(&h, m * n * 4, "h") && need(&g, n * 4, "gamma") &&
               need(&b, n * 4, "beta") && need(&q, m * n, "q") && need(&a, m * 4, "a")) {
        Py_BEGIN_ALLOW_THREADS
        if (path == PATH_VNNI) add_ln_quant_avx512(y.buf, h.buf, g.buf, b.buf, q.buf, a.buf, m, n);
        else {
            add_ln_scalar(y.buf, h.buf, g.buf, b.buf, m, n);
            quantize_rows(h.buf, m, n, q.buf, a.buf);
        }
        Py_END_ALLOW_THREADS
        ret = Py_None;
        Py_INCREF(ret);
    }
    PyBuffer_Release(&y); PyBuffer_Release(&h); PyBuffer_Release(&g); PyBuffer_Release(&b);
    PyBuffer_Release(&q); PyBuffer_Release(&a);
    return ret;
}

static PyMethodDef methods[] = {
    {"supported_paths", py_supported_paths, METH_NOARGS, "Kernel paths this CPU runs, best first."},
    {"quantize", py_quantize, METH_VARARGS, "Per-row absmax int8 quantization (u8 = q + 128)."},
    {"attention", py_attention, METH_VARARGS, "8-bit self-attention (see embed/attention.py)."},
    {"add_ln_quant", py_add_ln_quant, METH_VARARGS, "Residual add + LayerNorm + quantize (in place)."},
    {"matmul", py_matmul, METH_VARARGS, "Ternary x int8 matmul with fused dequantize + bias."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cortex_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__cortex_kernels(void) { return PyModule_Create(&module); }
