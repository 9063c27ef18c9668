/* Cortex CPU kernels, one Python extension: per-token int8 quantization (quantize.h), the
 * ternary x int8 matmul with its fused epilogues (matmul.h), residual add + LayerNorm (layernorm.h),
 * 8-bit self-attention (attention.h) and the float32-op functions they share (floatops.h).
 *
 * Weights are ternary {-1,0,1} int8 in a panel layout [N/16][K/4][16][4] (16 output columns,
 * 4 consecutive k per column: the operand shape of VNNI's vpdpbusd). Activations are stored as
 * u8 = q + 128 so u8 x s8 instructions apply; the bias 128 * sum_k w[n,k] is subtracted exactly.
 * All integer work is exact and every float step is a separate IEEE operation in a fixed order
 * (built with -ffp-contract=off), so every path equals the numpy definitions (embed/kernels.py,
 * embed/floatops.py, embed/attention.py) bit for bit. Paths are chosen at run time; none runs
 * unsupported instructions. This file holds the dispatch and the Python bindings.
 */
#include "common.h"
#include "quantize.h"
#include "floatops.h"
#include "layernorm.h"
#include "matmul.h"
#include "attention.h"

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
    {"matmul", py_matmul, METH_VARARGS, "Ternary x int8 matmul with fused dequantize + bias (+ GELU)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cortex_kernels", NULL, -1, methods};

/* Bumped whenever a function's arguments or meaning change: embed/kernels.py refuses a build
 * whose ABI differs (an in-place build left over from an older checkout). */
#define CORTEX_ABI 2

PyMODINIT_FUNC PyInit__cortex_kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", CORTEX_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
