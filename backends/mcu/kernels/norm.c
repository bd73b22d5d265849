/* Normalizations over the last n elements of each row (a fragment pasted into model.c).
 * Each reads a row completely before writing the same row, so y may be exactly x. */

//@ ff_skip_sum
/* s = x + skip[row % skip_rows] (+ bias): the residual sum SkipLayerNorm and SkipRMSNorm
 * return and normalize. s may be exactly x or skip. */
static void ff_skip_sum(int n, const float* xr, const float* skip, int skip_rows, int row,
                        const float* bias, float* sr)
{
    const float* kr = skip + (long)(row % skip_rows) * n;
    for (int i = 0; i < n; ++i) sr[i] = xr[i] + kr[i] + (bias ? bias[i] : 0.0f);
}

//@ ff_layernorm needs ff_skip_sum
/* y = (s - mean) / sqrt(var + eps) * gamma (+ beta), s = x, or x + skip (+ bias) stored
 * in s_out (or, when nobody reads s, in y's row until y overwrites it). mean_out /
 * inv_out (may be null) take each row's mean and 1/sqrt(var + eps). */
static void ff_layernorm(int rows, int n, const float* x, const float* skip, int skip_rows,
                         const float* bias, const float* gamma, const float* beta, float eps,
                         float* s_out, float* y, float* mean_out, float* inv_out)
{
    for (int r = 0; r < rows; ++r) {
        const float* sr = x + (long)r * n;
        float* yr = y + (long)r * n;
        float mean = 0.0f, var = 0.0f, inv;
        if (skip) {
            float* s = s_out ? s_out + (long)r * n : yr;
            ff_skip_sum(n, sr, skip, skip_rows, r, bias, s);
            sr = s;
        }
        for (int i = 0; i < n; ++i) mean += sr[i];
        mean /= (float)n;
        for (int i = 0; i < n; ++i) var += (sr[i] - mean) * (sr[i] - mean);
        inv = 1.0f / sqrtf(var / (float)n + eps);
        if (mean_out) mean_out[r] = mean;
        if (inv_out) inv_out[r] = inv;
        for (int i = 0; i < n; ++i) {
            yr[i] = (sr[i] - mean) * inv * gamma[i] + (beta ? beta[i] : 0.0f);
        }
    }
}

//@ ff_rmsnorm needs ff_skip_sum
/* y = s / sqrt(mean(s^2) + eps) (* gamma) (+ beta), s = x, or x + skip stored in s_out
 * (or in y's row when nobody reads s). */
static void ff_rmsnorm(int rows, int n, const float* x, const float* skip, int skip_rows,
                       const float* gamma, const float* beta, float eps, float* s_out, float* y)
{
    for (int r = 0; r < rows; ++r) {
        const float* sr = x + (long)r * n;
        float* yr = y + (long)r * n;
        float sq = 0.0f, inv;
        if (skip) {
            float* s = s_out ? s_out + (long)r * n : yr;
            ff_skip_sum(n, sr, skip, skip_rows, r, 0, s);
            sr = s;
        }
        for (int i = 0; i < n; ++i) sq += sr[i] * sr[i];
        inv = 1.0f / sqrtf(sq / (float)n + eps);
        for (int i = 0; i < n; ++i) {
            yr[i] = sr[i] * inv * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
        }
    }
}

//@ ff_crmsnorm
/* RMSNorm of a zero-mean vector of dim elements kept in its first n = dim - 1: the
 * dropped one is -sum(x), so sum of squares = sum x^2 + (sum x)^2. */
static void ff_crmsnorm(int rows, int n, int dim, float eps, const float* x, float* y)
{
    for (int r = 0; r < rows; ++r) {
        const float* xr = x + (long)r * n;
        float* yr = y + (long)r * n;
        float sum = 0.0f, sq = 0.0f, inv;
        for (int i = 0; i < n; ++i) {
            sum += xr[i];
            sq += xr[i] * xr[i];
        }
        inv = 1.0f / sqrtf((sq + sum * sum) / (float)dim + eps);
        for (int i = 0; i < n; ++i) yr[i] = xr[i] * inv;
    }
}

//@ ff_softmax
/* Softmax (or log-softmax) along the middle axis of x viewed as [outer, n, inner]. */
static void ff_softmax(int outer, int n, int inner, const float* x, int log_softmax, float* y)
{
    for (int o = 0; o < outer; ++o) {
        for (int i = 0; i < inner; ++i) {
            const float* xr = x + (long)o * n * inner + i;
            float* yr = y + (long)o * n * inner + i;
            float peak = -INFINITY, total = 0.0f;
            for (int j = 0; j < n; ++j) {
                if (xr[(long)j * inner] > peak) peak = xr[(long)j * inner];
            }
            for (int j = 0; j < n; ++j) {
                const float shifted = xr[(long)j * inner] - peak;
                const float e = expf(shifted);
                total += e;
                yr[(long)j * inner] = log_softmax ? shifted : e;
            }
            for (int j = 0; j < n; ++j) {
                if (log_softmax) {
                    yr[(long)j * inner] -= logf(total);
                } else {
                    yr[(long)j * inner] /= total;
                }
            }
        }
    }
}

//@ ff_rotary
/* y = x cos + rotate(x) sin over the last axis (D) of x [R0, R1, R2, D]; cos and sin
 * are read through the strides cs[3] and ss[3] of the leading axes (0 where they
 * broadcast). Halves (interleaved = 0) rotate (x1, x2) -> (-x2, x1); pairs
 * (interleaved = 1) rotate (x[2i], x[2i+1]) the same way. Both elements of a pair are
 * read before either is written, so y may be exactly x. */
static void ff_rotary(int R0, int R1, int R2, int D, const float* x, const float* cosv,
                      const float* sinv, const long* cs, const long* ss, int interleaved, float* y)
{
    const int half = D / 2;
    for (int r0 = 0; r0 < R0; ++r0) {
        for (int r1 = 0; r1 < R1; ++r1) {
            for (int r2 = 0; r2 < R2; ++r2) {
                const long row = (((long)r0 * R1 + r1) * R2 + r2) * D;
                const float* c = cosv + r0 * cs[0] + r1 * cs[1] + r2 * cs[2];
                const float* s = sinv + r0 * ss[0] + r1 * ss[1] + r2 * ss[2];
                for (int i = 0; i < half; ++i) {
                    const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
                    const float x1 = x[row + a], x2 = x[row + b];
                    y[row + a] = x1 * c[a] - x2 * s[a];
                    y[row + b] = x2 * c[b] + x1 * s[b];
                }
            }
        }
    }
}
