/* Matrix products (a fragment pasted into model.c). Row-major, fp32, no scratch. */

//@ ff_linear
/* y[m, :] = act(x[m, :] W + b) + r[m % r_rows, :] with W [K, N].
 *
 * A row is built in place in y: y = b, then y += x[m, k] W[k, :] for each k, which
 * walks W row by row (sequential flash reads). When the memory plan puts y exactly
 * over the residual, that would destroy the residual before it is added, so such a
 * row is computed one output at a time instead, each residual element read before
 * the same element is written. x must not overlap y. */
static void ff_linear(int M, int K, int N, const float* x, const float* W, const float* b,
                      const float* r, int r_rows, float (*act)(float), float* y)
{
    for (int m = 0; m < M; ++m) {
        const float* xr = x + (long)m * K;
        float* yr = y + (long)m * N;
        const float* rr = r ? r + (long)(m % r_rows) * N : 0;
        if (rr == yr) {
            for (int n = 0; n < N; ++n) {
                float acc = b ? b[n] : 0.0f;
                for (int k = 0; k < K; ++k) acc += xr[k] * W[(long)k * N + n];
                yr[n] = (act ? act(acc) : acc) + rr[n];
            }
            continue;
        }
        for (int n = 0; n < N; ++n) yr[n] = b ? b[n] : 0.0f;
        for (int k = 0; k < K; ++k) {
            const float xk = xr[k];
            const float* wk = W + (long)k * N;
            for (int n = 0; n < N; ++n) yr[n] += xk * wk[n];
        }
        if (act) {
            for (int n = 0; n < N; ++n) yr[n] = act(yr[n]);
        }
        if (rr) {
            for (int n = 0; n < N; ++n) yr[n] += rr[n];
        }
    }
}

//@ ff_gemm
/* y[m, n] = sum_k A[m sam + k sak] B[k sbk + n sbn], y [M, N] contiguous; y must not
 * overlap A or B. Strides let one kernel serve MatMul, Gemm's transposes and a
 * broadcast batch. */
static void ff_gemm(int M, int N, int K, const float* A, long sam, long sak,
                    const float* B, long sbk, long sbn, float* y)
{
    for (int m = 0; m < M; ++m) {
        float* yr = y + (long)m * N;
        for (int n = 0; n < N; ++n) yr[n] = 0.0f;
        for (int k = 0; k < K; ++k) {
            const float a = A[m * sam + k * sak];
            const float* bk = B + k * sbk;
            for (int n = 0; n < N; ++n) yr[n] += a * bk[n * sbn];
        }
    }
}
