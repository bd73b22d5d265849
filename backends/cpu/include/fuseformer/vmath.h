// Vectorizable float math: exp and erf written as straight-line arithmetic, so that
// GCC turns loops over them into AVX2 / AVX-512 code (the libm calls stay scalar).
//
// Accuracy (checked in tests/backends/test_cpu_perf_kernels.py): exp within a few ulp,
// erfc within 1.2e-7 relative (so GELU's negative tail too); both far inside the 1e-4
// the backend promises against onnxruntime. Special values follow IEEE: exp(-inf) = 0, exp(+inf) = inf, NaN in gives NaN out.
#pragma once

#include <cstdint>
#include <cstring>
#include <cmath>
#include <limits>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core.h"

namespace ff {

// e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2, where a degree-7
// Taylor polynomial of e^r is exact to float precision (remainder below 5e-9). The
// constants and the polynomial serve the scalar forms below and the 16-lane ones further
// down (T = float or v16f).
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;       // ln 2 split in two so that
constexpr float kLn2Lo = 1.42860682030941723e-6f;  // n * kLn2Hi is exact

// e^r for r = xc - n ln 2
template <class T>
inline T exp_reduced(T xc, T n) {
    const T r = (xc - n * kLn2Hi) - n * kLn2Lo;
    T p = T{} + 1.f / 5040.f;
    p = p * r + 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    return p;
}

// erfc(a) = t exp(P(t) - a^2) with t = 1 / (1 + a / 2), a >= 0: the Chebyshev-fitted form of
// Numerical Recipes ("erfcc"), whose relative error is below 1.2e-7 everywhere: the tail
// keeps its digits, which a form exact only in absolute terms (1 - erf) would lose to
// cancellation. This is P.
template <class T>
inline T erfc_poly(T t) {
    T p = T{} + 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return p;
}

inline float exp_fast(float x) {
    // below -87.3 the result is under FLT_MIN (flushed to 0 here); above ln(FLT_MAX) it overflows
    const bool under = x < -87.3f, over = x > 88.7228394f;
    const float xc = under ? -87.3f : (over ? 88.7228394f : x);
    const float n = __builtin_nearbyintf(xc * kLog2e);
    const float p = exp_reduced(xc, n);
    // 2^n built in the exponent bits as 2^h * 2^(n-h), h = n / 2: n reaches 128 near the
    // overflow edge, one past the largest exponent a single factor can hold
    const int32_t ni = int32_t(n == n ? n : 0.f), h = ni / 2;  // NaN: p carries it, not n
    const int32_t bits1 = (h + 127) << 23, bits2 = (ni - h + 127) << 23;
    float s1, s2;
    std::memcpy(&s1, &bits1, sizeof s1);
    std::memcpy(&s2, &bits2, sizeof s2);
    const float y = under ? 0.f : (over ? std::numeric_limits<float>::infinity() : p * s1 * s2);
    return x != x ? x : y;  // NaN passes through (selects, not branches: the loop vectorizes)
}

// exp_fast for x <= 0 (softmax's x - max): no overflow to guard, and 2^n fits one factor
// (n >= -126), so a third fewer instructions. Below -87.3 the result is exactly 0 (a tiny
// normal would become a denormal in the products that follow, and denormals are slow);
// NaN passes through (the comparisons below are false for it, the polynomial keeps it).
inline float exp_nonpos(float x) {
    const bool under = x < -87.3f;
    const float xc = under ? -87.3f : x;
    const float n = __builtin_nearbyintf(xc * kLog2e);
    const float p = exp_reduced(xc, n);
    const int32_t bits = (int32_t(n == n ? n : 0.f) + 127) << 23;  // NaN: p carries it, not n
    float s;
    std::memcpy(&s, &bits, sizeof s);
    return under ? 0.f : p * s;
}

// erfc(a) for a >= 0 (see erfc_poly)
inline float erfc_pos(float a) {
    const float t = 1.f / (1.f + 0.5f * a);
    return t * exp_nonpos(erfc_poly(t) - a * a);  // P(t) - a^2 <= 1e-7: no overflow to guard
}

inline float erf_fast(float x) {
    const float e = 1.f - erfc_pos(x < 0.f ? -x : x);
    return x < 0.f ? -e : e;
}

// GELU with the exact (erf) form, as ONNX Gelu without approximation:
// 0.5 x (1 + erf(x / sqrt 2)), written through erfc so the negative tail stays accurate.
inline float gelu_fast(float x) {
    const float c = erfc_pos((x < 0.f ? -x : x) * 0.70710678118654752f);
    return 0.5f * x * (x < 0.f ? c : 2.f - c);
}

// tanh(x): an odd Taylor polynomial near 0 (where 1 - e^{-2|x|} would cancel away the
// relative accuracy), else (1 - e) / (1 + e) with e = e^{-2|x|} <= 0.61, which has no
// cancellation; relative error a few ulp. Saturates to +-1, NaN passes through.
inline float tanh_fast(float x) {
    const float a = x < 0.f ? -x : x;
    const float x2 = x * x;
    // |x| < 0.25: the next term (1382/155925 x^11) is below 2e-9 relative
    float p = 62.f / 2835.f;
    p = p * x2 - 17.f / 315.f;
    p = p * x2 + 2.f / 15.f;
    p = p * x2 - 1.f / 3.f;
    const float small = x + x * x2 * p;
    const float e = exp_fast(-2.f * a);
    const float big = (1.f - e) / (1.f + e);
    const float r = a < 0.25f ? small : (x < 0.f ? -big : big);
    return x != x ? x : r;
}

// sigmoid(x) = 1 / (1 + e^{-x}): e^{-x} is exact to a few ulp for any x, and the division
// keeps the relative accuracy of both tails (e^{-x} overflowing to inf gives 0).
inline float sigmoid_fast(float x) { return 1.f / (1.f + exp_fast(-x)); }

inline float silu_fast(float x) { return x / (1.f + exp_fast(-x)); }

// GELU, tanh form: 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3):
// one exp and one division, no cancellation in either tail.
inline float gelu_tanh_fast(float x) {
    const float u = 0.79788456080286535588f * (x + 0.044715f * x * x * x);
    return x / (1.f + exp_fast(-2.f * u));
}

// Overloads the generated element loops call: the vectorizable form for float, libm's
// for double (whose accuracy the polynomials above do not reach).
inline float vexp(float x) { return exp_fast(x); }
inline double vexp(double x) { return std::exp(x); }
inline float vtanh(float x) { return tanh_fast(x); }
inline double vtanh(double x) { return std::tanh(x); }
inline float vsigmoid(float x) { return sigmoid_fast(x); }
inline double vsigmoid(double x) { return sigmoid(x); }

// ---- 16-float vectors (GCC vector extensions: AVX-512 registers with -march=native) ----
// For loops whose reductions GCC would leave scalar: a horizontal sum or maximum written
// as a plain loop over lanes compiles to fifteen dependent scalar operations, which on a
// 65-key softmax row cost as much as the row's exponentials.
typedef float v16f __attribute__((vector_size(64), aligned(4)));    // aligned(4): unaligned loads
typedef int32_t v16i __attribute__((vector_size(64), aligned(4)));
constexpr int64_t kVec = 16;

inline v16f vload(const float* p) { return *reinterpret_cast<const v16f*>(p); }
inline void vstore(float* p, v16f v) { *reinterpret_cast<v16f*>(p) = v; }
inline v16f vsplat(float x) { return v16f{} + x; }
inline v16f vmax(v16f a, v16f b) { return a > b ? a : b; }  // NaN in a gives b, as a scalar max

// lanes of the vector at x + i that lie before n
inline v16i lanes_before(int64_t n, int64_t i) {
    return v16i{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} < int32_t(n - i);
}

// x[0..n) and zeros, n < kVec; reads nothing at or past x + n (a row may end a page)
inline v16f vload_first(const float* x, int64_t n) {
#if defined(__AVX512F__)
    return reinterpret_cast<v16f>(_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), x));
#else
    float t[kVec] = {};
    std::memcpy(t, x, size_t(n) * sizeof(float));
    return vload(t);
#endif
}

// writes the first n < kVec lanes of v to x[0..n)
inline void vstore_first(float* x, v16f v, int64_t n) {
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(x, __mmask16((1u << n) - 1u), reinterpret_cast<__m512>(v));
#else
    float t[kVec];
    vstore(t, v);
    std::memcpy(x, t, size_t(n) * sizeof(float));
#endif
}

// Row statistics in double (a 4096-wide row sums as exactly as numpy's pairwise sum): two
// 8-double accumulators per quantity, so the loop is vector adds, not one dependent chain.
typedef double v8d __attribute__((vector_size(64), aligned(8)));

inline double hsum(v8d v) {
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
    return v[0];
}

inline v8d lo_f64(v16f v) { return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), v8d); }
inline v8d hi_f64(v16f v) { return __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), v8d); }

struct RowSums {
    double sum, sumsq;
};

// sum of c and of c^2 over x[0..n), c = x - shift in float, summed in double
inline RowSums row_sums(int64_t n, const float* x, float shift) {
    v8d s0{}, s1{}, q0{}, q1{};
    const v16f sh = vsplat(shift);
    int64_t i = 0;
    auto add = [&](v16f c) {
        const v8d a = lo_f64(c), b = hi_f64(c);
        s0 += a;
        s1 += b;
        q0 += a * a;
        q1 += b * b;
    };
    for (; i + kVec <= n; i += kVec) add(vload(x + i) - sh);
    if (i < n) {
        add(lanes_before(n, i) ? vload_first(x + i, n - i) - sh : v16f{});
    }
    return RowSums{hsum(s0 + s1), hsum(q0 + q1)};
}

// r[i][j] <- r[j][i]: four rounds of two-source shuffles, each swapping the off-diagonal
// K x K blocks of every 2K x 2K block (64 shuffles for 256 floats, against 256 scalar
// stores to scattered addresses).
template <int K, int... L>
inline void transpose_round(v16f& a, v16f& b, std::integer_sequence<int, L...>) {
    const v16f lo = __builtin_shufflevector(a, b, ((L & K) == 0 ? L : 16 + L - K)...);
    const v16f hi = __builtin_shufflevector(a, b, ((L & K) == 0 ? L + K : 16 + L)...);
    a = lo;
    b = hi;
}

inline void transpose16(v16f* r) {
    constexpr auto lanes = std::make_integer_sequence<int, 16>{};
    for (int i = 0; i < 16; ++i)
        if ((i & 8) == 0) transpose_round<8>(r[i], r[i + 8], lanes);
    for (int i = 0; i < 16; ++i)
        if ((i & 4) == 0) transpose_round<4>(r[i], r[i + 4], lanes);
    for (int i = 0; i < 16; ++i)
        if ((i & 2) == 0) transpose_round<2>(r[i], r[i + 2], lanes);
    for (int i = 0; i < 16; ++i)
        if ((i & 1) == 0) transpose_round<1>(r[i], r[i + 1], lanes);
}

// halving tree: four shuffles, not fifteen dependent scalar steps
inline float hsum(v16f v) {
    v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return v[0];
}

inline float hmax(v16f v) {
    v = vmax(v, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    v = vmax(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    v = vmax(v, __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
    v = vmax(v, __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
    return v[0];
}

// exp_nonpos on 16 lanes. n = round(x log2 e) by adding and removing 1.5 * 2^23 (round to
// nearest even, as nearbyint; exact while |x log2 e| < 2^22, and x >= -87.3 here).
inline v16f vexp_nonpos(v16f x) {
    constexpr float kRound = 12582912.f;  // 1.5 * 2^23
    const v16i under = x < -87.3f;
    const v16f xc = under ? vsplat(-87.3f) : x;
    const v16f n = (xc * kLog2e + kRound) - kRound;
    const v16f p = exp_reduced(xc, n);
    const v16i bits = (__builtin_convertvector(n == n ? n : v16f{}, v16i) + 127) << 23;  // NaN: p carries it
    return under ? vsplat(0.f) : p * reinterpret_cast<v16f>(bits);
}

// erfc_pos and gelu_fast on 16 lanes: the same formulas, written on vectors so that no lane
// pays for the scalar forms' selects and range checks (half the instructions of the
// auto-vectorized loop).
inline v16f verfc_pos(v16f a) {
    const v16f t = 1.f / (1.f + 0.5f * a);
    return t * vexp_nonpos(erfc_poly(t) - a * a);
}

inline v16f vgelu(v16f x) {
    const v16i negative = x < 0.f;
    const v16f a = reinterpret_cast<v16f>(reinterpret_cast<v16i>(x) & 0x7fffffff);
    const v16f c = verfc_pos(a * 0.70710678118654752f);
    return 0.5f * x * (negative ? c : 2.f - c);
}

}  // namespace ff
