// Fused attention: softmax(Q K^T * scale + mask [causal]) V per (batch, head).
//
// Each task takes a block of up to kAttnRows query rows of one head and walks the keys
// in blocks of kAttnKeys: S = scale * Q K^T and O += P V are computed on the block by the
// loops below (a head is 16 to 128 wide: OpenBLAS's per-call cost outweighed its speed,
// 3x slower on a 65-token ViT), the tasks spread over the pool's threads; the softmax in
// between is the online one of FlashAttention (running row maximum and sum, earlier
// blocks rescaled when the maximum grows), so no score matrix longer than one key block
// is ever stored. Q, K, V and O are read and written through strides, so a head split or
// merge (Transpose [0, 2, 1, 3]) needs no copy.
#pragma once

#include <atomic>
#include <vector>

#include "core.h"
#include "packed_gemm.h"
#include "vmath.h"

namespace ff {

enum MaskKind : int { kNoMask = 0, kBoolMask, kAddMask };

constexpr int64_t kAttnRows = 64;   // query rows per task
constexpr int64_t kAttnKeys = 512;  // keys per block: a 64 x 512 score block is 128 KiB (L2)
// models at most this wide (heads x head width) split attention by query rows (parallel_rows)
constexpr int64_t kRowAffineWidth = 256;

struct AttnShape {
    int64_t b, h, kvh, sq, sk, d, dv;
};

// Both products of a block go through the register-blocked tile of packed_gemm.h: a head
// is 16 to 128 wide, where OpenBLAS's per-call cost outweighed its speed (2.5x slower on a
// 65-token ViT) and plain loops pay their loop overhead per 16-float row.
inline int64_t round_panel(int64_t n) { return (n + kPanel - 1) / kPanel * kPanel; }

// K's block packed as panels of 32 keys, [nk/32][d][32], times the softmax scale (so the
// scores come out scaled: one pass over them fewer).
inline void attn_pack_k(int64_t nk, int64_t d, const float* k, int64_t kstride, float scale,
                        float* __restrict kp) {
    const int64_t panels = (nk + kPanel - 1) / kPanel;
    if (nk % kPanel) std::fill(kp + (panels - 1) * d * kPanel, kp + panels * d * kPanel, 0.f);
    int64_t j = 0;
    if (d % kVec == 0) {
        // 16 keys x 16 dims at a time, transposed in registers; each dim's 16 keys are then
        // one vector store (half a panel row)
        const v16f sv = vsplat(scale);
        for (; j + kVec <= nk; j += kVec) {
            float* dst = kp + (j / kPanel) * d * kPanel + j % kPanel;
            for (int64_t t0 = 0; t0 < d; t0 += kVec) {
                v16f r[kVec];
                for (int i = 0; i < kVec; ++i) r[i] = vload(k + (j + i) * kstride + t0) * sv;
                transpose16(r);
                for (int t = 0; t < kVec; ++t) vstore(dst + (t0 + t) * kPanel, r[t]);
            }
        }
    }
    for (; j < nk; ++j) {  // a transpose: K's rows are read in order
        float* dst = kp + (j / kPanel) * d * kPanel + j % kPanel;
        const float* src = k + j * kstride;
        for (int64_t t = 0; t < d; ++t) dst[t * kPanel] = src[t] * scale;
    }
}

// s[r, j] = sum_t q[r, t] (scale k[j, t]) for r < nq, j < nk (s rows `ns` apart), from K's
// block packed by attn_pack_k in kp.
inline void attn_scores(int64_t nq, int64_t nk, int64_t d, const float* q, int64_t qstride,
                        const float* __restrict kp, float* __restrict s, int64_t ns) {
    const int64_t panels = (nk + kPanel - 1) / kPanel;
    for (int64_t i = 0; i < nq; i += kRows) {
        const int rows = int(std::min<int64_t>(kRows, nq - i));
        for (int64_t p = 0; p < panels; ++p) {
            const int64_t cols = std::min<int64_t>(kPanel, nk - p * kPanel);
            float* c = s + i * ns + p * kPanel;
            if (d == 0) {
                for (int r = 0; r < rows; ++r) std::fill(c + r * ns, c + r * ns + cols, 0.f);
                continue;
            }
            // the padded columns up to ns are written too (K's padding is zero): whole
            // vectors, which the softmax pass reads back from the store buffer
            const int64_t width = std::min<int64_t>(kPanel, ns - p * kPanel);
            if (cols <= 16) packed_tile_n<1>(rows, d, q + i * qstride, qstride, kp + p * d * kPanel, c, ns, width);
            else packed_tile_n<2>(rows, d, q + i * qstride, qstride, kp + p * d * kPanel, c, ns, width);
        }
    }
}

// The score row's width rounded up to whole vectors: the softmax pass then runs on whole
// 16-float vectors only, the last one's lanes past the row's end selected away in registers
// (a store of -inf into them, read back at once, would stall on store forwarding).
inline int64_t round_vec(int64_t n) { return (n + kVec - 1) / kVec * kVec; }

// max of x[0..n) (x readable to round_vec(n)); NaN is skipped as by a scalar max
inline float row_max(int64_t n, const float* __restrict x) {
    v16f acc = vsplat(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + kVec <= n; i += kVec) acc = vmax(vload(x + i), acc);
    if (i < n) acc = vmax(lanes_before(n, i) ? vload(x + i) : acc, acc);
    return hmax(acc);
}

// x[j] = exp(x[j] - m) for j < n, 0 up to round_vec(n); m >= max(x); returns the sum
inline float row_exp_sum(int64_t n, float* __restrict x, float m) {
    const v16f mv = vsplat(m);
    v16f acc{};
    int64_t i = 0;
    for (; i + kVec <= n; i += kVec) {
        const v16f e = vexp_nonpos(vload(x + i) - mv);
        vstore(x + i, e);
        acc += e;
    }
    if (i < n) {
        const v16f e = lanes_before(n, i) ? vexp_nonpos(vload(x + i) - mv) : v16f{};
        vstore(x + i, e);
        acc += e;
    }
    return hsum(acc);
}

// V's block as the P V product reads it: packed (attn_pack_v) as panels of 32 columns,
// [dv/32][nk][32], or in place when dv is whole vectors (a 16, 32, 64 or 128 wide head):
// panel p then starts at column 32 p of V's rows, `ldw` floats apart.
struct VBlock {
    const float* v;
    int64_t panel_step, ldw;
};

// Whether attention reads V in place (see VBlock): its rows then hold whole vectors only,
// so no load reaches past a row's end.
inline bool v_in_place(int64_t dv) { return dv % kVec == 0; }

// V's block packed as VBlock describes, for a head that is not whole vectors
inline void attn_pack_v(int64_t nk, int64_t dv, const float* v, int64_t vstride, float* __restrict vp) {
    const int64_t panels = (dv + kPanel - 1) / kPanel;
    for (int64_t p = 0; p < panels; ++p) {
        const int64_t cols = std::min<int64_t>(kPanel, dv - p * kPanel);
        for (int64_t j = 0; j < nk; ++j) {
            float* dst = vp + (p * nk + j) * kPanel;
            std::memcpy(dst, v + j * vstride + p * kPanel, size_t(cols) * sizeof(float));
            if (cols < kPanel) std::fill(dst + cols, dst + kPanel, 0.f);
        }
    }
}

// o[r, :] (+)= sum_j p[r, j] v[j, :] (accumulate: add to o, else overwrite), p rows `ns` and
// o rows `ostride` apart.
inline void attn_values(int64_t nq, int64_t nk, int64_t dv, const float* pm, int64_t ns, bool accumulate,
                        float* o, int64_t ostride, VBlock vb) {
    const int64_t panels = (dv + kPanel - 1) / kPanel;
    float tile[kRows * kPanel];
    for (int64_t i = 0; i < nq; i += kRows) {
        const int rows = int(std::min<int64_t>(kRows, nq - i));
        for (int64_t p = 0; p < panels; ++p) {
            const int64_t cols = std::min<int64_t>(kPanel, dv - p * kPanel);
            float* c = o + i * ostride + p * kPanel;
            if (nk == 0) {
                if (!accumulate)
                    for (int r = 0; r < rows; ++r) std::fill(c + r * ostride, c + r * ostride + cols, 0.f);
                continue;
            }
            const float* w = vb.v + p * vb.panel_step;
            float* dst = accumulate ? tile : c;
            const int64_t ldd = accumulate ? kPanel : ostride;
            if (vb.ldw == kPanel) packed_tile_rows(rows, nk, pm + i * ns, ns, w, dst, ldd, cols);
            else strided_tile_rows(rows, nk, pm + i * ns, ns, w, vb.ldw, dst, ldd, cols);
            if (!accumulate) continue;
            for (int r = 0; r < rows; ++r)
                for (int64_t tt = 0; tt < cols; ++tt) c[r * ostride + tt] += tile[r * kPanel + tt];
        }
    }
}

// What this thread's scratch holds packed: K's and V's block at these addresses, packed
// during attention call `call` (addresses repeat between calls and runs, data does not).
struct PackedKV {
    uint64_t call = 0;
    const float* k = nullptr;
    const float* v = nullptr;
    int64_t nk = -1;
};

inline PackedKV& packed_kv() {
    static thread_local PackedKV packed;
    return packed;
}

inline std::atomic<uint64_t> g_attention_calls{0};

// floats of scratch per task: row statistics, the score block, K's and V's packed blocks
inline int64_t attn_buffer(int64_t nq, int64_t d, int64_t dv, int64_t nk) {
    return nq * (3 + round_vec(nk)) + d * round_panel(nk) + round_panel(dv) * nk;
}

// One block of query rows [i0, i0 + nq) of head h in batch b. `buf` holds at least
// attn_buffer(nq, d, dv, min(sk, kAttnKeys)) floats.
template <class M>
void attention_rows(uint64_t call, const AttnShape& a, int64_t b, int64_t h, int64_t i0, int64_t nq, const float* q,
                    const int64_t* qs, const float* k, const int64_t* ks, const float* v,
                    const int64_t* vs, const M* mask, const int64_t* ms, int mask_kind, bool causal,
                    float scale, float* out, const int64_t* os, float* buf) {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    const int64_t kv = h / (a.h / a.kvh);
    const float* qb = q + b * qs[0] + h * qs[1] + i0 * qs[2];
    const float* kb = k + b * ks[0] + kv * ks[1];
    const float* vb = v + b * vs[0] + kv * vs[1];
    float* ob = out + b * os[0] + h * os[1] + i0 * os[2];
    const int64_t shift = a.sk - a.sq;  // causal: key j is visible to query i when j <= i + shift
    int64_t kend = a.sk;
    if (causal) kend = std::max<int64_t>(0, std::min<int64_t>(a.sk, i0 + nq + shift));
    // K's and V's packed blocks first: their place does not depend on nq, so a thread's next
    // task on the same head (the next query block) reuses them (see PackedKV)
    const int64_t nkmax = std::min(a.sk, kAttnKeys);
    float* kp = buf;                              // K's block packed, d x round_panel(nk)
    float* vp = kp + a.d * round_panel(nkmax);     // V's block packed, round_panel(dv) x nk
    float* m = vp + round_panel(a.dv) * nkmax;     // running row maximum
    float* l = m + nq;          // running row sum of exp(s - m)
    float* c = l + nq;          // per block: how much the earlier blocks shrink
    float* s = c + nq;          // the score block, nq x round_vec(nk)
    for (int64_t r = 0; r < nq; ++r) {
        m[r] = kNegInf;
        l[r] = 0.f;
    }
    for (int64_t j0 = 0; j0 < kend; j0 += kAttnKeys) {
        const int64_t nk = std::min(kAttnKeys, kend - j0);
        PackedKV& packed = packed_kv();
        const float* kblock = kb + j0 * ks[2];
        const float* vblock = vb + j0 * vs[2];
        const bool v_direct = v_in_place(a.dv);
        if (!(packed.call == call && packed.k == kblock && packed.v == vblock && packed.nk == nk)) {
            attn_pack_k(nk, a.d, kblock, ks[2], scale, kp);
            if (!v_direct) attn_pack_v(nk, a.dv, vblock, vs[2], vp);
            packed = PackedKV{call, kblock, vblock, nk};
        }
        const int64_t ns = round_vec(nk);
        attn_scores(nq, nk, a.d, qb, qs[2], kp, s, ns);
        for (int64_t r = 0; r < nq; ++r) {
            float* sr = s + r * ns;
            const int64_t i = i0 + r;
            if (mask_kind != kNoMask) {
                const M* mr = mask + b * ms[0] + h * ms[1] + i * ms[2] + j0 * ms[3];
                const int64_t m3 = ms[3];
                if (mask_kind == kBoolMask) {
                    for (int64_t j = 0; j < nk; ++j) sr[j] = mr[j * m3] ? sr[j] : kNegInf;
                } else {
                    for (int64_t j = 0; j < nk; ++j) sr[j] += float(mr[j * m3]);
                }
            }
            if (causal) {
                for (int64_t j = std::max<int64_t>(0, i + shift + 1 - j0); j < nk; ++j) sr[j] = kNegInf;
            }
            const float mnew = std::max(m[r], row_max(nk, sr));
            if (mnew == kNegInf) {
                // nothing visible yet: the row's probabilities are all zero so far
                std::fill(sr, sr + ns, 0.f);
                c[r] = 1.f;
                continue;
            }
            c[r] = m[r] == kNegInf ? 0.f : exp_fast(m[r] - mnew);  // 0 on the first visible block
            l[r] = l[r] * c[r] + row_exp_sum(nk, sr, mnew);
            m[r] = mnew;
        }
        if (j0 > 0) {
            for (int64_t r = 0; r < nq; ++r) {
                if (c[r] == 1.f) continue;
                float* orow = ob + r * os[2];
                for (int64_t t = 0; t < a.dv; ++t) orow[t] *= c[r];
            }
        }
        attn_values(nq, nk, a.dv, s, ns, j0 > 0, ob, os[2],
                    v_direct ? VBlock{vblock, kPanel, vs[2]} : VBlock{vp, nk * kPanel, kPanel});
    }
    // a row with every key masked gives zeros, as the reference does
    for (int64_t r = 0; r < nq; ++r) {
        const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
        float* orow = ob + r * os[2];
        if (kend == 0) {
            for (int64_t t = 0; t < a.dv; ++t) orow[t] = 0.f;
        } else {
            for (int64_t t = 0; t < a.dv; ++t) orow[t] *= inv;
        }
    }
}

// Scratch of attention_rows for blocks of up to `rows` query rows: one per thread, kept
// between calls (a fresh, zero-filled and page-faulted vector per task cost more than the
// attention of a short sequence).
inline float* attn_scratch(int64_t rows, int64_t d, int64_t dv, int64_t sk) {
    static thread_local std::vector<float> buf;
    const size_t need = size_t(attn_buffer(rows, d, dv, std::min(sk, kAttnKeys)));
    if (buf.size() < need) buf.resize(need);
    return buf.data();
}

// q [B, H, Sq, D], k [B, KVH, Sk, D], v [B, KVH, Sk, Dv], out [B, H, Sq, Dv], each with its
// own element strides over (batch, head, seq) in qs, ks, vs, os and a contiguous last dim.
// The mask element of (b, h, i, j) is mask[b*ms[0] + h*ms[1] + i*ms[2] + j*ms[3]] (stride 0
// where the mask broadcasts). Causal keeps key j <= i + (Sk - Sq), bottom-right aligned.
//
// attention_span computes, on the calling thread, every head of the query rows r in
// [lo, hi) of the flattened (batch, query) index r = b * Sq + i: the form a row region of
// the generated code calls, each thread on its own rows.
template <class M>
void attention_span(int64_t lo, int64_t hi, int64_t B, int64_t H, int64_t KVH, int64_t Sq, int64_t Sk,
                    int64_t D, int64_t Dv, const float* q, const int64_t* qs, const float* k,
                    const int64_t* ks, const float* v, const int64_t* vs, const M* mask,
                    const int64_t* ms, int mask_kind, bool causal, float scale, float* out,
                    const int64_t* os) {
    if (Sq <= 0 || lo >= hi) return;
    const AttnShape a{B, H, KVH, Sq, Sk, D, Dv};
    const uint64_t call = g_attention_calls.fetch_add(1, std::memory_order_relaxed) + 1;
    for (int64_t b = lo / Sq; b * Sq < hi; ++b) {
        const int64_t first = std::max(lo - b * Sq, int64_t(0)), last = std::min(hi - b * Sq, Sq);
        const int64_t nblocks = (last - first + kAttnRows - 1) / kAttnRows;
        const int64_t rows = (last - first + nblocks - 1) / nblocks;
        float* buf = attn_scratch(rows, D, Dv, Sk);
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i0 = first; i0 < last; i0 += rows)
                attention_rows(call, a, b, h, i0, std::min(rows, last - i0), q, qs, k, ks, v, vs, mask, ms,
                               mask_kind, causal, scale, out, os, buf);
    }
}

template <class M>
void attention(int64_t B, int64_t H, int64_t KVH, int64_t Sq, int64_t Sk, int64_t D, int64_t Dv,
               const float* q, const int64_t* qs, const float* k, const int64_t* ks, const float* v,
               const int64_t* vs, const M* mask, const int64_t* ms, int mask_kind, bool causal,
               float scale, float* out, const int64_t* os) {
    const int64_t work = B * H * Sq * Sk * (D + Dv + 8);
    if (B == 1 && H * Dv <= kRowAffineWidth && !causal) {
        // a narrow model's Linears split their rows between the threads (packed_linear): the
        // query rows split the same way, so each thread's output rows stay in its cache
        // (not when causal: the last rows see the most keys, and the split would be uneven)
        parallel_rows(Sq, kRowAlign, work > 4 * kParallelGrain, [&](int64_t lo_, int64_t hi_) {
            attention_span(lo_, hi_, B, H, KVH, Sq, Sk, D, Dv, q, qs, k, ks, v, vs, mask, ms, mask_kind,
                           causal, scale, out, os);
        });
        return;
    }
    const AttnShape a{B, H, KVH, Sq, Sk, D, Dv};
    const uint64_t call = g_attention_calls.fetch_add(1, std::memory_order_relaxed) + 1;
    // query blocks of about equal size in whole register tiles: 197 rows make blocks of
    // 60, 60, 60 and 17 (one partial tile), not 50 each (four 2-row tiles); 65 not 64 and 1
    const int64_t parts = std::max<int64_t>(1, (Sq + kAttnRows - 1) / kAttnRows);
    const int64_t even = (Sq + parts - 1) / parts;
    const int64_t rows = std::max<int64_t>(1, (even + kRows - 1) / kRows * kRows);
    const int64_t nblocks = std::max<int64_t>(1, (Sq + rows - 1) / rows);
    parallel_for(B * H * nblocks, work > 4 * kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        float* buf = attn_scratch(rows, D, Dv, Sk);
        for (int64_t t = lo_; t < hi_; ++t) {
            const int64_t b = t / (H * nblocks), h = (t / nblocks) % H, i0 = (t % nblocks) * rows;
            const int64_t nq = std::min(rows, Sq - i0);
            if (nq > 0)
                attention_rows(call, a, b, h, i0, nq, q, qs, k, ks, v, vs, mask, ms, mask_kind, causal,
                               scale, out, os, buf);
        }
    });
}

}  // namespace ff
