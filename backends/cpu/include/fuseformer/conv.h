// 2-D convolution (im2col + GEMM, with direct paths for 1x1 and depthwise) and pooling.
// 1-D ops reach these as 2-D with a height of 1.
#pragma once

#include <vector>

#include "core.h"
#include "packed_gemm.h"

namespace ff {

struct ConvGeom {
    int64_t n, c, h, w;      // input
    int64_t m, groups;       // output channels, groups
    int64_t kh, kw, sh, sw, dh, dw, pt, pl;
    int64_t oh, ow;          // output size
};

// Depthwise (one input channel per group) convolution, one output plane per task. Each
// output row accumulates tap by tap over the output columns that tap reaches inside the
// input (so no bounds test in the inner loop, which GCC vectorizes); every output still
// sums its taps in (kh, kw) order from zero and adds the bias last, as the reference.
inline void depthwise2d(const ConvGeom& g, const float* x, const float* wt, const float* bias, float* y) {
    const int64_t taps = g.kh * g.kw, mg = g.m / g.groups, p = g.oh * g.ow;
    // the output columns [lo, hi) of each kw whose input column is inside [0, w)
    int64_t lo[64], hi[64];
    const bool small = g.kw <= 64;
    for (int64_t kw = 0; small && kw < g.kw; ++kw) {
        const int64_t off = kw * g.dw - g.pl;  // input column = ow * sw + off
        int64_t a = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
        int64_t b = g.w - off <= 0 ? 0 : (g.w - off + g.sw - 1) / g.sw;
        lo[kw] = std::min(a, g.ow);
        hi[kw] = std::max(lo[kw], std::min(b, g.ow));
    }
    // Stride 1 with every window inside the input (the padding applied by a Pad before):
    // output (oh, ow) reads x[(oh + kh*dh) * w + ow + kw*dw], so over the "wide" index
    // u = oh * w + ow each tap is one contiguous multiply-add of the whole plane, with the
    // columns ow >= g.ow computed and dropped. Small planes (7x7, 14x14) then vectorize too.
    const bool flat = g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
                      g.oh - 1 + (g.kh - 1) * g.dh < g.h && g.ow - 1 + (g.kw - 1) * g.dw < g.w;
    if (flat) {
        const int64_t span = (g.oh - 1) * g.w + g.ow;
        parallel_for(g.n * g.m, g.n * g.m * span * taps > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
            static thread_local std::vector<float> wide;  // per thread, kept between calls
            if (wide.size() < size_t(span)) wide.resize(size_t(span));
            for (int64_t plane = lo_; plane < hi_; ++plane) {
                const int64_t n = plane / g.m, oc = plane % g.m, ic = oc / mg;
                const float* xc = x + (n * g.c + ic) * g.h * g.w;
                const float* wc = wt + oc * taps;
                float* __restrict acc = wide.data();
                for (int64_t u = 0; u < span; ++u) acc[u] = 0.f;
                for (int64_t kh = 0; kh < g.kh; ++kh) {
                    for (int64_t kw = 0; kw < g.kw; ++kw) {
                        const float wv = wc[kh * g.kw + kw];
                        const float* __restrict xs = xc + kh * g.dh * g.w + kw * g.dw;
                        for (int64_t u = 0; u < span; ++u) acc[u] += xs[u] * wv;
                    }
                }
                const float b0 = bias ? bias[oc] : 0.f;
                float* yc = y + plane * p;
                for (int64_t oh = 0; oh < g.oh; ++oh)
                    for (int64_t ow = 0; ow < g.ow; ++ow) yc[oh * g.ow + ow] = acc[oh * g.w + ow] + b0;
            }
        });
        return;
    }
    parallel_for(g.n * g.m, g.n * g.m * p * taps > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t plane = lo_; plane < hi_; ++plane) {
            const int64_t n = plane / g.m, oc = plane % g.m, ic = oc / mg;
            const float* xc = x + (n * g.c + ic) * g.h * g.w;
            const float* wc = wt + oc * taps;
            float* __restrict yc = y + plane * p;
            const float b0 = bias ? bias[oc] : 0.f;
            for (int64_t oh = 0; oh < g.oh; ++oh) {
                float* __restrict yr = yc + oh * g.ow;
                for (int64_t ow = 0; ow < g.ow; ++ow) yr[ow] = 0.f;
                for (int64_t kh = 0; kh < g.kh; ++kh) {
                    const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
                    if (ih < 0 || ih >= g.h) continue;
                    const float* xr = xc + ih * g.w;
                    for (int64_t kw = 0; kw < g.kw; ++kw) {
                        const float wv = wc[kh * g.kw + kw];
                        const int64_t off = kw * g.dw - g.pl;
                        if (!small) {
                            for (int64_t ow = 0; ow < g.ow; ++ow) {
                                const int64_t iw = ow * g.sw + off;
                                if (iw >= 0 && iw < g.w) yr[ow] += xr[iw] * wv;
                            }
                        } else if (g.sw == 1) {
                            const float* xs = xr + off;
                            for (int64_t ow = lo[kw]; ow < hi[kw]; ++ow) yr[ow] += xs[ow] * wv;
                        } else {
                            for (int64_t ow = lo[kw]; ow < hi[kw]; ++ow) yr[ow] += xr[ow * g.sw + off] * wv;
                        }
                    }
                }
                for (int64_t ow = 0; ow < g.ow; ++ow) yr[ow] += b0;
            }
        }
    });
}

// Row r (input channel, kh, kw) of one group's im2col matrix: the input value under that
// tap for every output position, 0 in the padding. Position q goes to dst[(q / 32) * step
// + q % 32]: step = 32 * rows of the matrix for the panel layout below, else a plain row.
inline void im2col_row(const ConvGeom& g, const float* xg, int64_t r, float* dst, int64_t panel_step) {
    const int64_t taps = g.kh * g.kw;
    const int64_t c = r / taps, kh = (r % taps) / g.kw, kw = r % g.kw;
    const float* xc = xg + c * g.h * g.w;
    // the output columns [lo, hi) whose input column ow * sw + off lies inside [0, w)
    const int64_t off = kw * g.dw - g.pl;
    const int64_t lo = std::min(g.ow, off >= 0 ? int64_t(0) : (-off + g.sw - 1) / g.sw);
    const int64_t hi = std::max(lo, std::min(g.ow, g.w - off <= 0 ? int64_t(0) : (g.w - off + g.sw - 1) / g.sw));
    auto at = [&](uint64_t q) -> float& {
        return panel_step == 1 ? dst[q] : dst[(q / kPanel) * uint64_t(panel_step) + q % kPanel];
    };
    for (int64_t oh = 0; oh < g.oh; ++oh) {
        const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
        const uint64_t q0 = uint64_t(oh * g.ow);
        if (ih < 0 || ih >= g.h) {
            for (int64_t ow = 0; ow < g.ow; ++ow) at(q0 + ow) = 0.f;
            continue;
        }
        const float* row = xc + ih * g.w;
        for (int64_t ow = 0; ow < lo; ++ow) at(q0 + ow) = 0.f;
        for (int64_t ow = lo; ow < hi; ++ow) at(q0 + ow) = row[ow * g.sw + off];
        for (int64_t ow = hi; ow < g.ow; ++ow) at(q0 + ow) = 0.f;
    }
}

#if defined(__AVX512F__)
// im2col + GEMM on the packed register tile: the im2col matrix of a group is written as
// panels of 32 output positions ([ceil(p/32)][kc][32], zero-padded) and Y = W @ cols runs
// packed_gemm.h's tile with W's rows as the tile rows. A patch embedding's small GEMM
// (63 x 48 x 64) spent more in OpenBLAS's per-call packing than in its multiply-adds.
inline void conv2d_packed(const ConvGeom& g, const float* x, const float* wt, const float* bias, float* y,
                          float* cols) {
    const int64_t cg = g.c / g.groups, mg = g.m / g.groups, p = g.oh * g.ow;
    const int64_t kc = cg * g.kh * g.kw, panels = (p + kPanel - 1) / kPanel, step = kc * kPanel;
    const int64_t blocks = (mg + kRows - 1) / kRows;
    for (int64_t n = 0; n < g.n; ++n) {
        for (int64_t gr = 0; gr < g.groups; ++gr) {
            const float* xg = x + (n * g.c + gr * cg) * g.h * g.w;
            parallel_for(kc, kc * p > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
                for (int64_t r = lo_; r < hi_; ++r) {
                    if (p % kPanel)  // the last panel's padding columns
                        std::fill(cols + (panels - 1) * step + r * kPanel + p % kPanel,
                                  cols + (panels - 1) * step + (r + 1) * kPanel, 0.f);
                    im2col_row(g, xg, r, cols + r * kPanel, step);
                }
            });
            const float* wg = wt + gr * mg * kc;
            float* yg = y + (n * g.m + gr * mg) * p;
            // a split pays off from about a million multiply-adds (measured: 63 x 64 x 48 ran
            // in 7 us on one thread, 10 us on two)
            parallel_for(panels * blocks, mg * p * kc >= 16 * kGemmGrain, [&](int64_t lo_, int64_t hi_) {
                for (int64_t u = lo_; u < hi_; ++u) {
                    const int64_t pn = u / blocks, i = (u % blocks) * kRows;
                    const int rows = int(std::min<int64_t>(kRows, mg - i));
                    const int64_t j = pn * kPanel, width = std::min<int64_t>(kPanel, p - j);
                    float* c = yg + i * p + j;
                    if (kc == 0) {
                        for (int r = 0; r < rows; ++r) std::fill(c + r * p, c + r * p + width, 0.f);
                    } else {
                        packed_tile_rows(rows, kc, wg + i * kc, kc, cols + pn * step, c, p, width);
                    }
                    if (bias)
                        for (int r = 0; r < rows; ++r) {
                            const float b0 = bias[gr * mg + i + r];
                            for (int64_t q = 0; q < width; ++q) c[r * p + q] += b0;
                        }
                }
            });
        }
    }
}
#endif

// x [n, c, h, w], weight [m, c / groups, kh, kw], bias [m] or null, y [n, m, oh, ow].
// `cols` is scratch for one group's im2col matrix: (c / groups) * kh * kw * round_up(oh * ow, 32)
// floats (its columns padded to whole panels for conv2d_packed).
inline void conv2d(const ConvGeom& g, const float* x, const float* wt, const float* bias, float* y,
                   float* cols) {
    const int64_t cg = g.c / g.groups, mg = g.m / g.groups, p = g.oh * g.ow;
    const int64_t taps = g.kh * g.kw, kc = cg * taps;
    const bool pointwise = taps == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
                           g.oh == g.h && g.ow == g.w;
    if (cg == 1 && !pointwise) {
        // depthwise: a GEMM per channel would be [mg, taps] x [taps, p]; direct loops are faster
        depthwise2d(g, x, wt, bias, y);
        return;
    }
#if defined(__AVX512F__)
    if (!pointwise) {
        conv2d_packed(g, x, wt, bias, y, cols);
        return;
    }
#endif
    for (int64_t n = 0; n < g.n; ++n) {
        for (int64_t gr = 0; gr < g.groups; ++gr) {
            const float* xg = x + (n * g.c + gr * cg) * g.h * g.w;
            const float* b = xg;
            if (!pointwise) {
                parallel_for(kc, kc * p > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
                    for (int64_t r = lo_; r < hi_; ++r) im2col_row(g, xg, r, cols + r * p, 1);
                });
                b = cols;
            }
            float* yg = y + (n * g.m + gr * mg) * p;
            gemm(false, false, mg, p, kc, 1.f, wt + gr * mg * kc, kc, b, p, 0.f, yg, p);
            if (bias) {
                parallel_for(mg, mg * p > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
                    for (int64_t oc = lo_; oc < hi_; ++oc) {
                        const float b0 = bias[gr * mg + oc];
                        for (int64_t i = 0; i < p; ++i) yg[oc * p + i] += b0;
                    }
                });
            }
        }
    }
}

struct PoolGeom {
    int64_t planes, h, w;    // planes = n * c
    int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int64_t oh, ow;
};

// Max pooling reads -inf from the padding; average pooling divides by the cells read
// from the input, or with count_include_pad by those inside the padded extent.
inline void pool2d(bool is_max, bool count_include_pad, const PoolGeom& g, const float* x, float* y) {
    parallel_for(g.planes, g.planes * g.oh * g.ow * g.kh * g.kw > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t pl = lo_; pl < hi_; ++pl) {
            const float* xp = x + pl * g.h * g.w;
            float* yp = y + pl * g.oh * g.ow;
            for (int64_t oh = 0; oh < g.oh; ++oh) {
                for (int64_t ow = 0; ow < g.ow; ++ow) {
                    float best = -std::numeric_limits<float>::infinity();
                    double sum = 0.0;
                    int64_t count = 0;
                    for (int64_t kh = 0; kh < g.kh; ++kh) {
                        const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
                        for (int64_t kw = 0; kw < g.kw; ++kw) {
                            const int64_t iw = ow * g.sw - g.pl + kw * g.dw;
                            const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
                            if (inside) {
                                const float v = xp[ih * g.w + iw];
                                best = maximum(best, v);
                                sum += v;
                            }
                            const bool counted = count_include_pad
                                ? (ih >= -g.pt && ih < g.h + g.pb && iw >= -g.pl && iw < g.w + g.pr)
                                : inside;
                            count += counted;
                        }
                    }
                    yp[oh * g.ow + ow] = is_max ? best : float(sum / double(count));
                }
            }
        }
    });
}

}  // namespace ff
