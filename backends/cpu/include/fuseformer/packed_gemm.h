// Linear with weights packed at compile time: Y[m, n] = epilogue(X[m, k] @ W[k, n]).
//
// OpenBLAS packs its B operand on every call; for transformer GEMMs (m = tokens, often
// 128 or fewer) re-packing the weights costs as much as a quarter of the multiply. Here
// the compiler writes W once, as panels of 32 columns ([ceil(n/32)][k][32], the last
// one zero-padded: backends/cpu/packing.py), and a register-blocked micro-kernel walks a
// panel with 12 rows of X at a time: 24 accumulators of 16 floats stay in registers for
// the whole k loop, each step two loads of W and 24 fused multiply-adds. The GCC vector
// type compiles to AVX-512 with -march=native on CPUs that have it, which is the only
// case the compiler packs for (elsewhere Linear keeps OpenBLAS). Bias, activation and
// residual are applied to each 12 x 32 tile right after its last multiply-add, while the
// tile is still in L1. Summation order over k is sequential, as a plain dot product.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core.h"
#include "norm.h"

namespace ff {

constexpr int64_t kPanel = 32;
constexpr int kRows = 12;
constexpr int64_t kPrefetch = 32;  // k steps ahead that packed_tile prefetches the panel

// MR rows x (16 * NV) columns of a panel: NV = 2 for a full panel, 1 for a tail of at most
// 16 columns (a 65-token attention's last key, a 16-wide head), which then costs half.
// The panel's k rows are kPanel floats apart when packed; a B operand read in place
// (attention's V, whose rows are already whole vectors) has them `ldw` apart (kStrided: a
// separate instantiation, as a run-time stride in the packed one cost the large models'
// GEMMs 8%: its loads lose their constant offsets in the unrolled loop).
template <int MR, int NV, bool kStrided = false>
inline void packed_tile(int64_t k, const float* __restrict a, int64_t lda,
                        const float* __restrict w, float* __restrict c, int64_t ldc, int64_t cols,
                        int64_t ldw = kPanel) {
    if constexpr (!kStrided) ldw = kPanel;
    static_assert(NV == 1 || NV == 2, "a panel is 32 floats: one or two 16-float vectors");
    v16f lo[MR], hi[MR];
    for (int r = 0; r < MR; ++r) {
        lo[r] = v16f{};
        hi[r] = v16f{};
    }
    auto step = [&](int64_t p) {
        const v16f w0 = *reinterpret_cast<const v16f*>(w + p * ldw);
        if constexpr (NV == 2) {
            const v16f w1 = *reinterpret_cast<const v16f*>(w + p * ldw + 16);
#pragma GCC unroll 16
            for (int r = 0; r < MR; ++r) {
                const float s = a[r * lda + p];
                lo[r] += w0 * s;
                hi[r] += w1 * s;
            }
        } else {
#pragma GCC unroll 16
            for (int r = 0; r < MR; ++r) lo[r] += w0 * a[r * lda + p];
        }
    };
    // The panel 32 steps (4 KiB) ahead is prefetched: the hardware streamer stops at page
    // boundaries, and a large model's weights come from DRAM (measured on 128 x 768 x 3072
    // with cold weights: 225 -> 276 GFLOP/s on two cores). The last 32 steps, with nothing
    // ahead in the panel, run without (a clamped address cost a tenth of the gain).
    int64_t p = 0;
    for (; p + kPrefetch < k; ++p) {
        __builtin_prefetch(w + (p + kPrefetch) * ldw, 0, 3);
        if constexpr (NV == 2) __builtin_prefetch(w + (p + kPrefetch) * ldw + 16, 0, 3);
        step(p);
    }
    for (; p < k; ++p) step(p);
    for (int r = 0; r < MR; ++r) {
        if (cols == 16 * NV) {  // whole vectors: a later vector load of them forwards from the store
            std::memcpy(c + r * ldc, &lo[r], sizeof(v16f));
            if constexpr (NV == 2) std::memcpy(c + r * ldc + 16, &hi[r], sizeof(v16f));
        } else {
            float t[kPanel];
            std::memcpy(t, &lo[r], sizeof(v16f));
            if constexpr (NV == 2) std::memcpy(t + 16, &hi[r], sizeof(v16f));
            std::memcpy(c + r * ldc, t, size_t(cols) * sizeof(float));
        }
    }
}

template <int NV, bool kStrided = false>
inline void packed_tile_n(int rows, int64_t k, const float* a, int64_t lda, const float* w, float* c,
                          int64_t ldc, int64_t cols, int64_t ldw = kPanel) {
    switch (rows) {
        case 12: packed_tile<12, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 11: packed_tile<11, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 10: packed_tile<10, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 9: packed_tile<9, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 8: packed_tile<8, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 7: packed_tile<7, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 6: packed_tile<6, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 5: packed_tile<5, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 4: packed_tile<4, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 3: packed_tile<3, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        case 2: packed_tile<2, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
        default: packed_tile<1, NV, kStrided>(k, a, lda, w, c, ldc, cols, ldw); break;
    }
}

inline void packed_tile_rows(int rows, int64_t k, const float* a, int64_t lda, const float* w,
                             float* c, int64_t ldc, int64_t cols) {
    if (cols <= 16) packed_tile_n<1>(rows, k, a, lda, w, c, ldc, cols);
    else packed_tile_n<2>(rows, k, a, lda, w, c, ldc, cols);
}

// packed_tile_rows on a B operand whose k rows are `ldw` floats apart
inline void strided_tile_rows(int rows, int64_t k, const float* a, int64_t lda, const float* w,
                              int64_t ldw, float* c, int64_t ldc, int64_t cols) {
    if (cols <= 16) packed_tile_n<1, true>(rows, k, a, lda, w, c, ldc, cols, ldw);
    else packed_tile_n<2, true>(rows, k, a, lda, w, c, ldc, cols, ldw);
}

template <int A>
inline void tile_epilogue(int rows, int64_t cols, float* c, int64_t ldc, const float* bias,
                          const float* res, int64_t ldr) {
    for (int r = 0; r < rows; ++r)
        epilogue_row<A>(cols, c + r * ldc, bias, res ? res + r * ldr : nullptr);
}

// The 12 x 32 tile of Y = act(X @ W + bias) + residual at rows [i, i + rows), panel p.
inline void linear_tile(int64_t i, int rows, int64_t p, int64_t n, int64_t k, const float* x,
                        const float* wp, float* y, const float* bias, int act, const float* residual) {
    const int64_t j = p * kPanel, cols = std::min<int64_t>(kPanel, n - j);
    float* c = y + i * n + j;
    const float* w = wp + p * k * kPanel;
    if (k == 0) {
        for (int r = 0; r < rows; ++r) std::memset(c + r * n, 0, size_t(cols) * sizeof(float));
    } else {
        packed_tile_rows(rows, k, x + i * k, k, w, c, n, cols);
    }
    const float* b = bias ? bias + j : nullptr;
    const float* res = residual ? residual + i * n + j : nullptr;
    if (!b && !res && act == kNone) return;
    switch (act) {
        case kNone: tile_epilogue<kNone>(rows, cols, c, n, b, res, n); break;
        case kRelu: tile_epilogue<kRelu>(rows, cols, c, n, b, res, n); break;
        case kGelu: tile_epilogue<kGelu>(rows, cols, c, n, b, res, n); break;
        case kGeluTanh: tile_epilogue<kGeluTanh>(rows, cols, c, n, b, res, n); break;
        case kSilu: tile_epilogue<kSilu>(rows, cols, c, n, b, res, n); break;
        case kSigmoid: tile_epilogue<kSigmoid>(rows, cols, c, n, b, res, n); break;
        case kTanh: tile_epilogue<kTanh>(rows, cols, c, n, b, res, n); break;
        default:
            for (int r = 0; r < rows; ++r)
                for (int64_t q = 0; q < cols; ++q) {
                    const float v = activate(act, b ? c[r * n + q] + b[q] : c[r * n + q]);
                    c[r * n + q] = res ? v + res[r * n + q] : v;
                }
    }
}

// Rows [lo, hi) of Y = act(X @ W + bias) + residual on the calling thread (the form a row
// region of the generated code calls); lo is a multiple of kRows, or hi is the last row.
inline void packed_linear_rows(int64_t lo, int64_t hi, int64_t n, int64_t k, const float* x,
                               const float* wp, float* y, const float* bias, int act,
                               const float* residual) {
    const int64_t panels = (n + kPanel - 1) / kPanel;
    for (int64_t p = 0; p < panels; ++p)  // a panel stays in L1 over the thread's rows
        for (int64_t i = lo; i < hi; i += kRows)
            linear_tile(i, int(std::min<int64_t>(kRows, hi - i)), p, n, k, x, wp, y, bias, act, residual);
}

// Weights up to this size are split by rows between the threads (each reads all of W, which
// stays in its L2, and keeps the rows of X and Y it already holds: parallel_rows); larger
// ones by panels, so each thread streams only its share of W.
constexpr int64_t kRowSplitWeights = 256 << 10;

// Y = act(X @ W + bias) + residual; W packed as above; residual (or nullptr) is [m, n].
inline void packed_linear(int64_t m, int64_t n, int64_t k, const float* x, const float* wp,
                          float* y, const float* bias, int act, const float* residual) {
    if (m == 0 || n == 0) return;
    const int64_t panels = (n + kPanel - 1) / kPanel, blocks = (m + kRows - 1) / kRows;
    const bool worth_it = m * n * k >= kGemmGrain;
    if (panels * k * kPanel * int64_t(sizeof(float)) <= kRowSplitWeights) {
        static_assert(kRowAlign % kRows == 0, "a thread's rows are whole register tiles");
        parallel_rows(m, kRowAlign, worth_it, [&](int64_t lo_, int64_t hi_) {
            packed_linear_rows(lo_, hi_, n, k, x, wp, y, bias, act, residual);
        });
        return;
    }
    // panel-major units: a static split gives each thread a run of whole panels, so each
    // reads only its share of the weights, and a panel's rows reuse it from L2
    parallel_for(panels * blocks, worth_it, [&](int64_t lo_, int64_t hi_) {
        for (int64_t u = lo_; u < hi_; ++u) {
            const int64_t i = (u % blocks) * kRows;
            linear_tile(i, int(std::min<int64_t>(kRows, m - i)), u / blocks, n, k, x, wp, y, bias, act,
                        residual);
        }
    });
}

}  // namespace ff
