// Row-wise normalizations, Linear's epilogue and rotary embeddings.
//
// Rows are the flattened leading dims, cols the normalized trailing ones. Statistics
// accumulate in double so a 4096-wide row sums as exactly as numpy's pairwise sum.
#pragma once

#include "core.h"
#include "vmath.h"

namespace ff {

// y[0..n) = x * a (* scale) (+ bias), in 16-float vectors; scale and bias may be null
inline void scale_row(int64_t n, const float* x, float a, float sub, const float* scale,
                      const float* bias, float* y) {
    const v16f av = vsplat(a), sv = vsplat(sub);
    auto one = [&](v16f v, int64_t j, int64_t w) {
        v = (v - sv) * av;
        if (scale) v *= (w == kVec ? vload(scale + j) : vload_first(scale + j, w));
        if (bias) v += (w == kVec ? vload(bias + j) : vload_first(bias + j, w));
        return v;
    };
    int64_t j = 0;
    for (; j + kVec <= n; j += kVec) vstore(y + j, one(vload(x + j), j, kVec));
    if (j < n) vstore_first(y + j, one(vload_first(x + j, n - j), j, n - j), n - j);
}

// The norms come in two forms: name_rows(lo, hi, ...) normalizes rows [lo, hi) on the
// calling thread (a row region of the generated code runs it on the thread's own rows),
// name(rows, ...) splits all rows between the threads.

// LayerNormalization (stash float): y = (x - mean) / sqrt(var + eps) * scale + bias.
// mean_out / inv_out (the optional Mean and InvStdDev outputs) may be null.
inline void layer_norm_rows(int64_t lo, int64_t hi, int64_t cols, const float* x, const float* scale,
                            const float* bias, float eps, float* y, float* mean_out, float* inv_out) {
    for (int64_t r = lo; r < hi; ++r) {
        const float* xr = x + r * cols;
        const float mean = float(row_sums(cols, xr, 0.f).sum / double(cols));
        const double var = row_sums(cols, xr, mean).sumsq / double(cols);
        const float inv = 1.0f / std::sqrt(float(var) + eps);
        scale_row(cols, xr, inv, mean, scale, bias, y + r * cols);
        if (mean_out) mean_out[r] = mean;
        if (inv_out) inv_out[r] = inv;
    }
}

inline void layer_norm(int64_t rows, int64_t cols, const float* x, const float* scale,
                       const float* bias, float eps, float* y, float* mean_out, float* inv_out) {
    parallel_rows(rows, kRowAlign, rows * cols > kRowGrain, [&](int64_t lo_, int64_t hi_) {
        layer_norm_rows(lo_, hi_, cols, x, scale, bias, eps, y, mean_out, inv_out);
    });
}

// RMSNorm: y = x / sqrt(mean(x^2) + eps) (* scale) (+ bias); scale and bias may be null.
inline void rms_norm_rows(int64_t lo, int64_t hi, int64_t cols, const float* x, const float* scale,
                          const float* bias, float eps, float* y) {
    for (int64_t r = lo; r < hi; ++r) {
        const float* xr = x + r * cols;
        const float denom = std::sqrt(float(row_sums(cols, xr, 0.f).sumsq / double(cols)) + eps);
        scale_row(cols, xr, 1.f / denom, 0.f, scale, bias, y + r * cols);
    }
}

inline void rms_norm(int64_t rows, int64_t cols, const float* x, const float* scale,
                     const float* bias, float eps, float* y) {
    parallel_rows(rows, kRowAlign, rows * cols > kRowGrain, [&](int64_t lo_, int64_t hi_) {
        rms_norm_rows(lo_, hi_, cols, x, scale, bias, eps, y);
    });
}

// CRMSNorm: the dropped coordinate is -sum(x), so sum x_full^2 = sum x^2 + (sum x)^2.
inline void crms_norm_rows(int64_t lo, int64_t hi, int64_t cols, int64_t dim, const float* x, float eps,
                           float* y) {
    for (int64_t r = lo; r < hi; ++r) {
        const float* xr = x + r * cols;
        const RowSums st = row_sums(cols, xr, 0.f);
        const float denom = std::sqrt(float((st.sumsq + st.sum * st.sum) / double(dim)) + eps);
        scale_row(cols, xr, 1.f / denom, 0.f, nullptr, nullptr, y + r * cols);
    }
}

inline void crms_norm(int64_t rows, int64_t cols, int64_t dim, const float* x, float eps, float* y) {
    parallel_rows(rows, kRowAlign, rows * cols > kRowGrain, [&](int64_t lo_, int64_t hi_) {
        crms_norm_rows(lo_, hi_, cols, dim, x, eps, y);
    });
}

// One row of Linear's epilogue, the activation a template argument: a switch inside the
// loop would keep GCC from vectorizing it. GELU (exact form) uses the erf of vmath.h on
// whole vectors, about ten times faster than libm's erff per element.
template <int A>
inline void epilogue_row(int64_t n, float* __restrict y, const float* __restrict bias,
                         const float* __restrict residual) {
    // three passes over a row that stays in L1, each a plain loop GCC vectorizes
    // (the same arithmetic in the same order as one fused pass)
    if (bias)
        for (int64_t j = 0; j < n; ++j) y[j] += bias[j];
    if constexpr (A == kGelu) {
        int64_t j = 0;
        for (; j + kVec <= n; j += kVec) vstore(y + j, vgelu(vload(y + j)));
        if (j < n) vstore_first(y + j, vgelu(vload_first(y + j, n - j)), n - j);
    } else if constexpr (A == kRelu) {
        for (int64_t j = 0; j < n; ++j) y[j] = y[j] < 0.f ? 0.f : y[j];
    } else if constexpr (A == kGeluTanh) {
        for (int64_t j = 0; j < n; ++j) y[j] = gelu_tanh_fast(y[j]);
    } else if constexpr (A == kSilu) {
        for (int64_t j = 0; j < n; ++j) y[j] = silu_fast(y[j]);
    } else if constexpr (A == kSigmoid) {
        for (int64_t j = 0; j < n; ++j) y[j] = sigmoid_fast(y[j]);
    } else if constexpr (A == kTanh) {
        for (int64_t j = 0; j < n; ++j) y[j] = tanh_fast(y[j]);
    }
    if (residual)
        for (int64_t j = 0; j < n; ++j) y[j] += residual[j];
}

// Linear's epilogue on y [m, n] right after the GEMM: y = act(y + bias) + residual.
inline void linear_epilogue(int64_t m, int64_t n, float* y, const float* bias, int act,
                            const float* residual) {
    if (!bias && act == kNone && !residual) return;
    // transcendental activations cost ~20 plain adds per element: a lower threshold
    const int64_t work = m * n * (act == kNone || act == kRelu ? 1 : 16);
    parallel_for(m, work > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t i = lo_; i < hi_; ++i) {
            float* yr = y + i * n;
            const float* rr = residual ? residual + i * n : nullptr;
            switch (act) {
                case kNone: epilogue_row<kNone>(n, yr, bias, rr); break;
                case kRelu: epilogue_row<kRelu>(n, yr, bias, rr); break;
                case kGelu: epilogue_row<kGelu>(n, yr, bias, rr); break;
                case kGeluTanh: epilogue_row<kGeluTanh>(n, yr, bias, rr); break;
                case kSilu: epilogue_row<kSilu>(n, yr, bias, rr); break;
                case kSigmoid: epilogue_row<kSigmoid>(n, yr, bias, rr); break;
                case kTanh: epilogue_row<kTanh>(n, yr, bias, rr); break;
                default:
                    for (int64_t j = 0; j < n; ++j) {
                        const float v = activate(act, bias ? yr[j] + bias[j] : yr[j]);
                        yr[j] = rr ? v + rr[j] : v;
                    }
            }
        }
    });
}

// RotaryEmbedding: y = x * cos + rotate(x) * sin over the last dim d of x [rows, d];
// cos and sin are read with broadcast strides (rank `rank`, dims of x).
inline void rotary(int rank, const int64_t* dims, const float* x, const float* cos_,
                   const int64_t* cs, const float* sin_, const int64_t* ss, bool interleaved,
                   float* y) {
    const int64_t d = dims[rank - 1];
    int64_t rows = 1;
    for (int k = 0; k + 1 < rank; ++k) rows *= dims[k];
    const int64_t ci = cs[rank - 1], si = ss[rank - 1], half = d / 2;
    parallel_for(rows, rows * d > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t rem = r, co = 0, so = 0;
            for (int k = rank - 2; k >= 0; --k) {
                const int64_t i = rem % dims[k];
                rem /= dims[k];
                co += i * cs[k];
                so += i * ss[k];
            }
            const float* xr = x + r * d;
            float* yr = y + r * d;
            for (int64_t j = 0; j < d; ++j) {
                float rot;
                if (interleaved) rot = (j % 2 == 0) ? -xr[j + 1] : xr[j - 1];
                else rot = j < half ? -xr[j + half] : xr[j - half];
                yr[j] = xr[j] * cos_[co + j * ci] + rot * sin_[so + j * si];
            }
        }
    });
}

}  // namespace ff
