#ifndef CORTEX_ATTENTION_H
#define CORTEX_ATTENTION_H
#include "common.h"

#include "floatops.h"

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

VNNI_TARGET static inline __m512 att_scores16(const AttWork *w, __m512i acc, Py_ssize_t b,
                                              __m512 vaq) {
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
        __m512 s0 = att_scores16(w, a0, b, vaq), s1 = att_scores16(w, a1, b + 1, vaq);
        __m512 s2 = att_scores16(w, a2, b + 2, vaq), s3 = att_scores16(w, a3, b + 3, vaq);
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
        __m512 s0 = att_scores16(w, a0, b, vaq);
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

#endif
