/* Fused attention (a fragment pasted into model.c). */

//@ ff_attention
/* out = softmax(q k^T * scale + mask [causal]) v over q [B, H, SQ, D], k [B, KVH, SK, D],
 * v [B, KVH, SK, DV], out [B, H, SQ, DV], all contiguous; query head h reads kv head
 * h / (H / KVH). The mask is bool (bmask: 0 hides a key) or additive (amask), read
 * through the strides ms[4] (0 where it broadcasts); causal hides key j > i + SK - SQ.
 *
 * Two passes over the keys of a query row, no score buffer: the first finds the row's
 * maximum score, the second sums exp(s - max) and accumulates p * v straight into the
 * output row. A row that sees no key at all comes out zero. out must not overlap the
 * inputs. */
static void ff_attention(int B, int H, int KVH, int SQ, int SK, int D, int DV,
                         const float* q, const float* k, const float* v,
                         const uint8_t* bmask, const float* amask, const long* ms,
                         int causal, float scale, float* out)
{
    const int group = H / KVH;
    for (int b = 0; b < B; ++b) {
        for (int h = 0; h < H; ++h) {
            const float* kh = k + ((long)b * KVH + h / group) * SK * D;
            const float* vh = v + ((long)b * KVH + h / group) * SK * DV;
            for (int i = 0; i < SQ; ++i) {
                const float* qi = q + (((long)b * H + h) * SQ + i) * D;
                float* oi = out + (((long)b * H + h) * SQ + i) * DV;
                const long mrow = ms ? b * ms[0] + h * ms[1] + i * ms[2] : 0;
                int kend = SK;
                if (causal) {
                    kend = i + SK - SQ + 1;
                    if (kend > SK) kend = SK;
                    if (kend < 0) kend = 0;
                }
                float peak = -INFINITY, total = 0.0f;
                for (int pass = 0; pass < 2; ++pass) {
                    for (int j = 0; j < kend; ++j) {
                        const float* kj = kh + (long)j * D;
                        float s = 0.0f;
                        if (bmask && !bmask[mrow + j * ms[3]]) continue;
                        for (int d = 0; d < D; ++d) s += qi[d] * kj[d];
                        s *= scale;
                        if (amask) s += amask[mrow + j * ms[3]];
                        if (pass == 0) {
                            if (s > peak) peak = s;
                        } else {
                            const float p = expf(s - peak);
                            const float* vj = vh + (long)j * DV;
                            total += p;
                            for (int d = 0; d < DV; ++d) oi[d] += p * vj[d];
                        }
                    }
                    if (pass == 0) {
                        for (int d = 0; d < DV; ++d) oi[d] = 0.0f;
                        if (peak == -INFINITY) break;  /* nothing visible: the row stays zero */
                    }
                }
                if (total > 0.0f) {
                    const float inv = 1.0f / total;
                    for (int d = 0; d < DV; ++d) oi[d] *= inv;
                }
            }
        }
    }
}
