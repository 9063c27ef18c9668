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
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))

VNNI_TARGET static inline void epi_vnni(__m512i acc, const int32_t *wsum, const float *ws,
                                        const float *b, float ai, float *dst) {
    acc = _mm512_sub_epi32(acc, _mm512_slli_epi32(_mm512_loadu_si512(wsum), 7));
    __m512 v = _mm512_cvtepi32_ps(acc);
    v = _mm512_mul_ps(v, _mm512_set1_ps(ai));
    v = _mm512_mul_ps(v, _mm512_loadu_ps(ws));
    v = _mm512_add_ps(v, _mm512_loadu_ps(b));
    _mm512_storeu_ps(dst, v);
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
        epi_vnni(c##r##0, wsum + col, ws + col, b + col, a[i + (r)], o);                       \
        epi_vnni(c##r##1, wsum + col + 16, ws + col + 16, b + col + 16, a[i + (r)], o + 16);   \
        epi_vnni(c##r##2, wsum + col + 32, ws + col + 32, b + col + 32, a[i + (r)], o + 32);   \
        epi_vnni(c##r##3, wsum + col + 48, ws + col + 48, b + col + 48, a[i + (r)], o + 48);   \
    }

__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline))
static void tile_6x4(const uint8_t *q, const float *a, Py_ssize_t k,
                                        const int8_t *w, const int32_t *wsum, const float *ws,
                                        const float *b, Py_ssize_t n, float *out, Py_ssize_t i,
                                        Py_ssize_t p0) {
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    __m512i c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z;
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
                                        Py_ssize_t p) {
    __m512i c = _mm512_setzero_si512();
    const int8_t *wp = w + p * 16 * k;
    for (Py_ssize_t kk = 0; kk < k / 4; kk++) {
        int32_t v;
        memcpy(&v, q + i * k + kk * 4, 4);
        c = _mm512_dpbusd_epi32(c, _mm512_set1_epi32(v), _mm512_loadu_si512(wp + kk * 64));
    }
    Py_ssize_t col = p * 16;
    epi_vnni(c, wsum + col, ws + col, b + col, a[i], out + i * n + col);
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void mm_vnni(const uint8_t *q, const float *a, Py_ssize_t m, Py_ssize_t k,
                    const int8_t *w, const int32_t *wsum, const float *ws, const float *b,
                    Py_ssize_t n, float *out) {
    const Py_ssize_t np_ = n / 16;
    const Py_ssize_t MB = 96; /* rows per block: 96 x K bytes of activations stay in L2 */
    for (Py_ssize_t i0 = 0; i0 < m; i0 += MB) {
        Py_ssize_t i1 = i0 + MB < m ? i0 + MB : m;
        Py_ssize_t p = 0;
        for (; p + 4 <= np_; p += 4) {
            Py_ssize_t i = i0;
            for (; i + 6 <= i1; i += 6) tile_6x4(q, a, k, w, wsum, ws, b, n, out, i, p);
            for (; i < i1; i++)
                for (int j = 0; j < 4; j++) tile_1x1(q, a, k, w, wsum, ws, b, n, out, i, p + j);
        }
        for (; p < np_; p++)
            for (Py_ssize_t i = i0; i < i1; i++) tile_1x1(q, a, k, w, wsum, ws, b, n, out, i, p);
    }
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
 *        out f32 (m,n), m, k, n, path) */
static PyObject *py_matmul(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer q, a, w, wsum, ws, b, out;
    Py_ssize_t m, k, n;
    int path;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*w*nnni", &q, &a, &w, &wsum, &ws, &b, &out, &m, &k,
                          &n, &path))
        return NULL;
    PyObject *ret = NULL;
    if (!path_supported(path)) {
        PyErr_SetString(PyExc_ValueError, "kernel path not supported on this CPU");
    } else if (k % 4 || n % 16) {
        PyErr_SetString(PyExc_ValueError, "k must be a multiple of 4 and n of 16");
    } else if (need(&q, m * k, "q") && need(&a, m * 4, "a") && need(&w, n * k, "w") &&
               need(&wsum, n * 4, "wsum") && need(&ws, n * 4, "ws") && need(&b, n * 4, "b") &&
               need(&out, m * n * 4, "out")) {
        Py_BEGIN_ALLOW_THREADS
        switch (path) {
        case PATH_VNNI: mm_vnni(q.buf, a.buf, m, k, w.buf, wsum.buf, ws.buf, b.buf, n, out.buf); break;
        case PATH_AVX2: mm_avx2(q.buf, a.buf, m, k, w.buf, wsum.buf, ws.buf, b.buf, n, out.buf); break;
        default: mm_scalar(q.buf, a.buf, m, k, w.buf, wsum.buf, ws.buf, b.buf, n, out.buf);
        }
        Py_END_ALLOW_THREADS
        ret = Py_None;
        Py_INCREF(ret);
    }
    PyBuffer_Release(&q); PyBuffer_Release(&a); PyBuffer_Release(&w); PyBuffer_Release(&wsum);
    PyBuffer_Release(&ws); PyBuffer_Release(&b); PyBuffer_Release(&out);
    return ret;
}

static PyMethodDef methods[] = {
    {"supported_paths", py_supported_paths, METH_NOARGS, "Kernel paths this CPU runs, best first."},
    {"quantize", py_quantize, METH_VARARGS, "Per-row absmax int8 quantization (u8 = q + 128)."},
    {"matmul", py_matmul, METH_VARARGS, "Ternary x int8 matmul with fused dequantize + bias."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cortex_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__cortex_kernels(void) { return PyModule_Create(&module); }
