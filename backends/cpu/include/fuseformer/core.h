// fuseformer CPU kernels: shared helpers (threads, integer and scalar math, BLAS).
//
// Every kernel here is the C++ twin of a numpy definition in ir/reference/; when
// the two disagree the reference is right. Kernels take plain pointers and int64
// extents so the generated code needs no objects, only calls.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "pool.h"

extern "C" {
#include <cblas.h>
}

namespace ff {


// A monotonic clock in milliseconds, for the timing of profiled builds.
inline double now_ms() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

// Parallel loops below this many elements of work cost more in thread wake-ups than they save.
constexpr int64_t kParallelGrain = 1 << 15;

inline int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    // C truncates toward zero; floor differs only for an inexact negative quotient
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

// ---- scalar math matching ir/reference ---------------------------------------
template <class T> inline T sigmoid(T x) {
    // exp of a non-positive argument never overflows, whatever the sign of x
    T e = std::exp(-std::abs(x));
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <class T> inline T softplus(T x) {
    // log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), as numpy's logaddexp(0, x)
    return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

template <class T> inline T gelu(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
}

template <class T> inline T gelu_tanh(T x) {
    const T k = T(0.79788456080286535588);  // sqrt(2 / pi)
    return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}

template <class T> inline T maximum(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(a)) return a;  // numpy's maximum propagates NaN
        if (std::isnan(b)) return b;
    }
    return a > b ? a : b;
}

template <class T> inline T minimum(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(a)) return a;
        if (std::isnan(b)) return b;
    }
    return a < b ? a : b;
}

template <class T> inline T pymod(T a, T b) {
    // Python's %: the result takes the sign of the divisor
    if constexpr (std::is_floating_point_v<T>) {
        T r = std::fmod(a, b);
        return (r != T(0) && ((r < T(0)) != (b < T(0)))) ? r + b : r;
    } else {
        T r = a % b;
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
    }
}

template <class T> inline T cmod(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) return std::fmod(a, b);
    else return a % b;
}

template <class T, class E> inline T power(T a, E b) {
    // integer powers go through double and back, as onnxruntime computes them
    if constexpr (std::is_floating_point_v<T>) return std::pow(a, T(b));
    else return T(std::pow(double(a), double(b)));
}

template <class T> inline T sign(T x) { return T((x > T(0)) - (x < T(0))); }

// ---- activations of Linear's epilogue (LinearAttrs.activation) --------------------
enum Act : int { kNone = 0, kRelu, kGelu, kGeluTanh, kSilu, kSigmoid, kTanh };

inline float activate(int act, float y) {
    switch (act) {
        case kRelu: return y < 0.f ? 0.f : y;
        case kGelu: return gelu(y);
        case kGeluTanh: return gelu_tanh(y);
        case kSilu: return y * sigmoid(y);
        case kSigmoid: return sigmoid(y);
        case kTanh: return std::tanh(y);
        default: return y;
    }
}

// ---- BLAS ------------------------------------------------------------------------
// GEMMs below this many multiply-adds run on one thread: waking the others costs more.
constexpr int64_t kGemmGrain = 1 << 16;

inline void sgemm1(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc) {
    scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                      trans_b ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), alpha, a,
                      int(lda), b, int(ldb), beta, c, int(ldc));
}

// Row-major C = alpha * op(A) @ op(B) + beta * C through OpenBLAS (symbols prefixed scipy_).
// OpenBLAS runs single-threaded (see ff_set_threads) and the GEMM is split over OpenMP
// threads here: two thread pools spinning on two cores slow each other down tenfold.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                 float* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
        return;
    }
    const int nt = threads();
    if (nt <= 1 || m * n * k < kGemmGrain) {
        sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    // Split the columns of C (16-float aligned) unless they are few: each piece then packs
    // only its share of B (the weights), while a row split would make every piece pack all of
    // B; measured 1.7x faster for the [16, 384] @ [384, 1536] of a short sequence. Two pieces
    // per thread, claimed dynamically (pool.h), so a thread the OS runs late costs little.
    const bool by_rows = n < 64 * nt || m >= 8 * n;
    const int64_t total = by_rows ? m : n;
    const int64_t align = by_rows ? 1 : 16;
    const int64_t pieces = std::min<int64_t>(2 * nt, (total + align - 1) / align);
    const int64_t chunk = ((total + pieces - 1) / pieces + align - 1) / align * align;
    parallel_for((total + chunk - 1) / chunk, true, [&](int64_t lo_, int64_t hi_) {
        for (int64_t t = lo_; t < hi_; ++t) {
            const int64_t lo = t * chunk, hi = std::min(total, lo + chunk);
            if (by_rows) {
                const float* at = trans_a ? a + lo : a + lo * lda;
                sgemm1(trans_a, trans_b, hi - lo, n, k, alpha, at, lda, b, ldb, beta, c + lo * ldc, ldc);
            } else {
                const float* bt = trans_b ? b + lo * ldb : b + lo;
                sgemm1(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, bt, ldb, beta, c + lo, ldc);
            }
        }
    });
}

// C[i] = A[i] @ B[i] ([m, k] @ [k, n]) for every index i of the batch dims `dims`; the
// operands' batch strides are in elements, 0 where an operand broadcasts.
inline void batched_gemm(int rank, const int64_t* dims, const int64_t* sa, const int64_t* sb,
                         int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
    int64_t total = 1;
    for (int d = 0; d < rank; ++d) total *= dims[d];
    for (int64_t i = 0; i < total; ++i) {
        int64_t rem = i, oa = 0, ob = 0;
        for (int d = rank - 1; d >= 0; --d) {
            const int64_t j = rem % dims[d];
            rem /= dims[d];
            oa += j * sa[d];
            ob += j * sb[d];
        }
        gemm(false, false, m, n, k, 1.f, a + oa, k, b + ob, n, 0.f, c + i * m * n, n);
    }
}

}  // namespace ff
