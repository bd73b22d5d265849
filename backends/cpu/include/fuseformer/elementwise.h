// Elementwise kernels over broadcast operands, and strided copies.
//
// The generator coalesces dims before calling these, so the common cases reach
// them as rank 1 (same shapes, or a scalar operand) and take the flat loops.
// Strides are in elements; a stride of 0 repeats an operand along that dim.
#pragma once

#include "core.h"

namespace ff {

template <class To, class Ti, class F>
void map(int64_t n, const Ti* in, To* out, F f) {
    parallel_for(n, n > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t i = lo_; i < hi_; ++i) out[i] = f(in[i]);
    });
}

// Offsets of the operands at the start of row `row` (every dim but the last).
template <int N>
inline void row_offsets(int rank, const int64_t* dims, int64_t row, const int64_t* const* strides,
                        int64_t* off) {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = rank - 2; d >= 0; --d) {
        int64_t i = row % dims[d];
        row /= dims[d];
        for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
}

inline int64_t rows_of(int rank, const int64_t* dims) {
    int64_t rows = 1;
    for (int d = 0; d + 1 < rank; ++d) rows *= dims[d];
    return rows;
}

template <class To, class Ta, class Tb, class F>
void binary(int rank, const int64_t* dims, const Ta* a, const int64_t* sa, const Tb* b,
            const int64_t* sb, To* out, F f) {
    const int64_t inner = dims[rank - 1], rows = rows_of(rank, dims);
    const int64_t ia = sa[rank - 1], ib = sb[rank - 1];
    if (rows == 1) {
        parallel_for(inner, inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
            for (int64_t j = lo_; j < hi_; ++j) out[j] = f(a[j * ia], b[j * ib]);
        });
        return;
    }
    const int64_t* strides[2] = {sa, sb};
    parallel_for(rows, rows * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t off[2];
            row_offsets<2>(rank, dims, r, strides, off);
            const Ta* pa = a + off[0];
            const Tb* pb = b + off[1];
            To* o = out + r * inner;
            if (ia == 1 && ib == 1) {
                for (int64_t j = 0; j < inner; ++j) o[j] = f(pa[j], pb[j]);
            } else if (ia == 1 && ib == 0) {
                const Tb vb = *pb;
                for (int64_t j = 0; j < inner; ++j) o[j] = f(pa[j], vb);
            } else if (ia == 0 && ib == 1) {
                const Ta va = *pa;
                for (int64_t j = 0; j < inner; ++j) o[j] = f(va, pb[j]);
            } else {
                for (int64_t j = 0; j < inner; ++j) o[j] = f(pa[j * ia], pb[j * ib]);
            }
        }
    });
}

template <class To, class Ta, class Tb, class Tc, class F>
void ternary(int rank, const int64_t* dims, const Ta* a, const int64_t* sa, const Tb* b,
             const int64_t* sb, const Tc* c, const int64_t* sc, To* out, F f) {
    const int64_t inner = dims[rank - 1], rows = rows_of(rank, dims);
    const int64_t ia = sa[rank - 1], ib = sb[rank - 1], ic = sc[rank - 1];
    const int64_t* strides[3] = {sa, sb, sc};
    parallel_for(rows, rows * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t off[3];
            row_offsets<3>(rank, dims, r, strides, off);
            const Ta* pa = a + off[0];
            const Tb* pb = b + off[1];
            const Tc* pc = c + off[2];
            To* o = out + r * inner;
            for (int64_t j = 0; j < inner; ++j) o[j] = f(pa[j * ia], pb[j * ib], pc[j * ic]);
        }
    });
}

// out (contiguous, `dims`) = in read with `strides`: transposes, slices and expands.
template <class T>
void strided_copy(int rank, const int64_t* dims, const T* in, const int64_t* strides, T* out) {
    const int64_t inner = dims[rank - 1], rows = rows_of(rank, dims);
    const int64_t is = strides[rank - 1];
    const int64_t* s[1] = {strides};
    parallel_for(rows, rows * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t off[1];
            row_offsets<1>(rank, dims, r, s, off);
            const T* p = in + off[0];
            T* o = out + r * inner;
            if (is == 1) {
                std::memcpy(o, p, sizeof(T) * inner);
            } else {
                for (int64_t j = 0; j < inner; ++j) o[j] = p[j * is];
            }
        }
    });
}

template <class T>
void fill(int64_t n, T value, T* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = value;
}

template <class T>
void range(int64_t n, T start, T delta, T* out) {
    // the spec's start + i * delta, not a running sum (see ir/reference/shape_ops.py)
    for (int64_t i = 0; i < n; ++i) out[i] = T(start + T(i) * delta);
}

// Trilu over [batch, n, m]: keeps the elements on and above diagonal k (upper) or on and
// below it, zeroes the rest; element (i, j) is on diagonal j - i.
template <class T>
void trilu(bool upper, int64_t k, int64_t batch, int64_t n, int64_t m, const T* in, T* out) {
    parallel_for(batch * n, batch * n * m > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            const int64_t i = r % n;
            for (int64_t j = 0; j < m; ++j) {
                const bool keep = upper ? j - i >= k : j - i <= k;
                out[r * m + j] = keep ? in[r * m + j] : T(0);
            }
        }
    });
}

}  // namespace ff
