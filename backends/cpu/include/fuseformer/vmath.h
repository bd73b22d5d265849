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

#include "core.h"

namespace ff {

// e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2, where a degree-7
// Taylor polynomial of e^r is exact to float precision (remainder below 5e-9).
inline float exp_fast(float x) {
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2Hi = 0.693145751953125f;       // ln 2 split in two so that
    constexpr float kLn2Lo = 1.42860682030941723e-6f;  // n * kLn2Hi is exact
    // below -87.3 the result is under FLT_MIN (flushed to 0 here); above ln(FLT_MAX) it overflows
    const bool under = x < -87.3f, over = x > 88.7228394f;
    const float xc = under ? -87.3f : (over ? 88.7228394f : x);
    const float n = __builtin_nearbyintf(xc * kLog2e);
    const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
    float p = 1.f / 5040.f;
    p = p * r + 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    // 2^n built in the exponent bits as 2^h * 2^(n-h), h = n / 2: n reaches 128 near the
    // overflow edge, one past the largest exponent a single factor can hold
    const int32_t ni = int32_t(n), h = ni / 2;
    const int32_t bits1 = (h + 127) << 23, bits2 = (ni - h + 127) << 23;
    float s1, s2;
    std::memcpy(&s1, &bits1, sizeof s1);
    std::memcpy(&s2, &bits2, sizeof s2);
    const float y = under ? 0.f : (over ? std::numeric_limits<float>::infinity() : p * s1 * s2);
    return x != x ? x : y;  // NaN passes through (selects, not branches: the loop vectorizes)
}

// erfc(a) for a >= 0 by the Chebyshev-fitted form of Numerical Recipes ("erfcc"), whose
// relative error is below 1.2e-7 everywhere: the tail keeps its digits, which a form
// exact only in absolute terms (1 - erf) would lose to cancellation.
inline float erfc_pos(float a) {
    const float t = 1.f / (1.f + 0.5f * a);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * exp_fast(p - a * a);
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

// Sum and maximum of x[0..n) over 16 interleaved lanes: the lanes are independent, so the
// loop vectorizes without reassociating anything (the order is fixed, the result deterministic).
constexpr int kLanes = 16;

inline float sum_lanes(int64_t n, const float* __restrict x) {
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l];
    for (; i < n; ++i) acc[0] += x[i];
    float s = 0.f;
    for (int l = 0; l < kLanes; ++l) s += acc[l];
    return s;
}

inline float max_lanes(int64_t n, const float* __restrict x) {
    float acc[kLanes];
    for (int l = 0; l < kLanes; ++l) acc[l] = -std::numeric_limits<float>::infinity();
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
    for (; i < n; ++i) acc[0] = x[i] > acc[0] ? x[i] : acc[0];
    float m = acc[0];
    for (int l = 1; l < kLanes; ++l) m = acc[l] > m ? acc[l] : m;
    return m;
}

}  // namespace ff
