// Fused attention: softmax(Q K^T * scale + mask [causal]) V per (batch, head), one pass
// over the keys with an online softmax, so no [Sq, Sk] score matrix is ever stored.
#pragma once

#include <vector>

#include "core.h"

namespace ff {

enum MaskKind : int { kNoMask = 0, kBoolMask, kAddMask };

// q [B, H, Sq, D], k [B, KVH, Sk, D], v [B, KVH, Sk, Dv], out [B, H, Sq, Dv], all contiguous.
// The mask element of (b, h, i, j) is mask[b*ms[0] + h*ms[1] + i*ms[2] + j*ms[3]] (stride 0
// where the mask broadcasts). Causal keeps key j <= i + (Sk - Sq), bottom-right aligned.
// A row with every key masked gives zeros, as the reference does.
template <class M>
void attention(int64_t B, int64_t H, int64_t KVH, int64_t Sq, int64_t Sk, int64_t D, int64_t Dv,
               const float* q, const float* k, const float* v, const M* mask, const int64_t* ms,
               int mask_kind, bool causal, float scale, float* out) {
    const int64_t group = H / KVH;
#pragma omp parallel num_threads(threads()) if (B * H * Sq * Sk * D > kParallelGrain)
    {
        std::vector<float> acc(size_t(Dv > 0 ? Dv : 1));
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            for (int64_t h = 0; h < H; ++h) {
                const float* kb = k + (b * KVH + h / group) * Sk * D;
                const float* vb = v + (b * KVH + h / group) * Sk * Dv;
                for (int64_t i = 0; i < Sq; ++i) {
                    const float* qr = q + ((b * H + h) * Sq + i) * D;
                    float* o = out + ((b * H + h) * Sq + i) * Dv;
                    int64_t end = Sk;
                    if (causal) end = std::max<int64_t>(0, std::min<int64_t>(Sk, i + (Sk - Sq) + 1));
                    float m = -std::numeric_limits<float>::infinity(), l = 0.f;
                    std::fill(acc.begin(), acc.end(), 0.f);
                    const M* mr = mask ? mask + b * ms[0] + h * ms[1] + i * ms[2] : nullptr;
                    for (int64_t j = 0; j < end; ++j) {
                        float s;
                        if (mask_kind == kBoolMask && !mr[j * ms[3]]) continue;
                        const float* kr = kb + j * D;
                        float dot = 0.f;
                        for (int64_t t = 0; t < D; ++t) dot += qr[t] * kr[t];
                        s = dot * scale;
                        if (mask_kind == kAddMask) s += float(mr[j * ms[3]]);
                        if (s == -std::numeric_limits<float>::infinity()) continue;
                        if (s > m) {
                            // rescale what was accumulated under the old maximum
                            const float c = std::exp(m - s);
                            l *= c;
                            for (int64_t t = 0; t < Dv; ++t) acc[t] *= c;
                            m = s;
                        }
                        const float p = std::exp(s - m);
                        l += p;
                        const float* vr = vb + j * Dv;
                        for (int64_t t = 0; t < Dv; ++t) acc[t] += p * vr[t];
                    }
                    const float inv = l > 0.f ? 1.f / l : 0.f;
                    for (int64_t t = 0; t < Dv; ++t) o[t] = acc[t] * inv;
                }
            }
        }
    }
}

}  // namespace ff
