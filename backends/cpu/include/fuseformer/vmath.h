// Vectorizable float math: exp and erf written as straight-line arithmetic, so that
// GCC turns loops over them into AVX2 / AVX-512 code (the libm calls stay scalar).
//
// Accuracy (checked in tests/backends/test_cpu_perf_kernels.py): exp within a few ulp,
// erfc within 1.2e-7 relative (so GELU's negative tail too); both far inside the 1e-4
// the backend promises against onnxruntime. Special values follow IEEE: exp(-inf) = 0, exp(+inf) = inf, NaN in gives NaN out.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace ff {

// e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2, where a degree-7
// Taylor polynomial of e^r is exact to float precision (remainder below 5e-9).
inline float exp_fast(float x) {
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2Hi = 0.693145751953125f;       // ln 2 split in two so that
    constexpr float kLn2Lo = 1.42860682030941723e-6f;  // n * kLn2Hi is exact
    // below -87.3 the result is under FLT_MIN (flushed to 0 here), above 88.7 it overflows
    const bool under = x < -87.3f, over = x > 88.7f;
    const float xc = under ? -87.3f : (over ? 88.7f : x);
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
    // 2^n built in the exponent bits; n + 127 stays within [1, 254] after the clamp
    const int32_t bits = (int32_t(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    const float y = under ? 0.f : (over ? std::numeric_limits<float>::infinity() : p * scale);
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
