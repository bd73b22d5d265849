/* Convolution and pooling over NCHW (a fragment pasted into model.c). */

//@ ff_out_range
/* The outputs o in [lo, hi) whose input position o * stride + offset lies in [0, size):
 * the padding is never read, so the inner loops need no bounds test. */
static void ff_out_range(int offset, int stride, int size, int outputs, int* lo, int* hi)
{
    int a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int b = size - 1 - offset < 0 ? 0 : (size - 1 - offset) / stride + 1;
    if (b > outputs) b = outputs;
    *lo = a;
    *hi = b > a ? b : a;
}

//@ ff_conv2d needs ff_out_range
/* Grouped 2-D convolution, depthwise included: x [N, C, H, W], w [M, C/G, KH, KW],
 * y [N, M, OH, OW]. Each output plane starts at its bias; then every (input channel,
 * tap) adds w * (the shifted, strided input plane) to it, so the weight is read once
 * per plane and the inner loop streams one input row into one output row. y must not
 * overlap x. */
static void ff_conv2d(int N, int C, int H, int W, const float* x, int M, int G, int KH, int KW,
                      const float* w, const float* bias, int sh, int sw, int dh, int dw,
                      int ph, int pw, int OH, int OW, float* y)
{
    const int cg = C / G, mg = M / G;
    for (int n = 0; n < N; ++n) {
        for (int m = 0; m < M; ++m) {
            const int g = m / mg;
            float* ym = y + ((long)n * M + m) * OH * OW;
            const float b = bias ? bias[m] : 0.0f;
            for (long p = 0; p < (long)OH * OW; ++p) ym[p] = b;
            for (int c = 0; c < cg; ++c) {
                const float* xc = x + ((long)n * C + (long)g * cg + c) * H * W;
                const float* wc = w + ((long)m * cg + c) * KH * KW;
                for (int ky = 0; ky < KH; ++ky) {
                    int oy0, oy1;
                    const int offy = ky * dh - ph;
                    ff_out_range(offy, sh, H, OH, &oy0, &oy1);
                    for (int kx = 0; kx < KW; ++kx) {
                        int ox0, ox1;
                        const int offx = kx * dw - pw;
                        const float wv = wc[ky * KW + kx];
                        ff_out_range(offx, sw, W, OW, &ox0, &ox1);
                        for (int oy = oy0; oy < oy1; ++oy) {
                            const float* xr = xc + (long)(oy * sh + offy) * W + offx;
                            float* yr = ym + (long)oy * OW;
                            for (int ox = ox0; ox < ox1; ++ox) yr[ox] += wv * xr[ox * sw];
                        }
                    }
                }
            }
        }
    }
}

//@ ff_pool2d
/* Max or average pooling of x [P, H, W] (P = N * C planes) into y [P, OH, OW]. Average
 * divides by the cells read from x, or with count_pad by the cells inside the explicit
 * padding too (never the extra cells ceil_mode reads past it). */
static void ff_pool2d(int P, int H, int W, const float* x, int KH, int KW, int sh, int sw,
                      int dh, int dw, int ph, int pw, int pe_h, int pe_w, int is_max, int count_pad,
                      int OH, int OW, float* y)
{
    for (int p = 0; p < P; ++p) {
        const float* xp = x + (long)p * H * W;
        float* yp = y + (long)p * OH * OW;
        for (int oy = 0; oy < OH; ++oy) {
            for (int ox = 0; ox < OW; ++ox) {
                float acc = is_max ? -INFINITY : 0.0f;
                int count = 0;
                for (int ky = 0; ky < KH; ++ky) {
                    const int iy = oy * sh - ph + ky * dh;
                    for (int kx = 0; kx < KW; ++kx) {
                        const int ix = ox * sw - pw + kx * dw;
                        const int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                        if (inside) {
                            const float v = xp[(long)iy * W + ix];
                            if (is_max) {
                                if (v != v || v > acc) acc = v;  /* NaN wins, as numpy's max */
                            } else {
                                acc += v;
                            }
                        }
                        if (inside || (count_pad && iy >= -ph && iy < H + pe_h && ix >= -pw && ix < W + pe_w)) {
                            ++count;
                        }
                    }
                }
                yp[oy * OW + ox] = is_max ? acc : acc / (float)count;
            }
        }
    }
}
