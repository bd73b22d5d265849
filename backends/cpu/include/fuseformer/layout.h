// Data movement: Gather, GatherElements, the scatters, OneHot, Concat/Split pieces, Pad.
// Bit-exact with the reference.
#pragma once

#include "core.h"
#include "elementwise.h"  // row_offsets, rows_of

namespace ff {

// out[o, i, n] = data[o, idx[i], n] over [outer, axis_dim, inner]; false on an index
// outside [-axis_dim, axis_dim), which the reference refuses too.
template <class T, class I>
bool gather(int64_t outer, int64_t axis_dim, int64_t inner, const T* data, int64_t n_idx,
            const I* idx, T* out) {
    for (int64_t i = 0; i < n_idx; ++i) {
        if (int64_t(idx[i]) < -axis_dim || int64_t(idx[i]) >= axis_dim) return false;
    }
    parallel_for(outer * n_idx, outer * n_idx * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            const int64_t o = r / n_idx, i = r % n_idx;
            int64_t k = int64_t(idx[i]);
            if (k < 0) k += axis_dim;
            std::memcpy(out + r * inner, data + (o * axis_dim + k) * inner, sizeof(T) * inner);
        }
    });
    return true;
}

// GatherND over data [nb, dims[0], ..., dims[k-1], inner] and index tuples idx [nb, m, k]:
// out[b, j] = the `inner` block that tuple j of batch b addresses. False on an index outside
// its dim, as the reference.
template <class T, class I>
bool gather_nd(int64_t nb, int64_t m, int k, const int64_t* dims, int64_t inner, const T* data,
               const I* idx, T* out) {
    int64_t block = 1;
    for (int t = 0; t < k; ++t) block *= dims[t];
    for (int64_t r = 0; r < nb * m; ++r)
        for (int t = 0; t < k; ++t)
            if (int64_t(idx[r * k + t]) < -dims[t] || int64_t(idx[r * k + t]) >= dims[t]) return false;
    parallel_for(nb * m, nb * m * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t off = 0;
            for (int t = 0; t < k; ++t) {
                int64_t v = int64_t(idx[r * k + t]);
                off = off * dims[t] + (v < 0 ? v + dims[t] : v);
            }
            std::memcpy(out + r * inner, data + ((r / m) * block + off) * inner, sizeof(T) * inner);
        }
    });
    return true;
}

// GatherElements over indices of shape `dims` (rank `rank`): out[i] = data[i with its axis
// coordinate replaced by idx[i]]. `strides` are data's element strides with the axis's set to
// 0 (indices may be smaller than data off the axis); `axis_stride` is the axis's own. False on
// an index outside [-axis_dim, axis_dim), as the reference.
template <class T, class I>
bool gather_elements(int rank, const int64_t* dims, const T* data, const int64_t* strides,
                     int64_t axis_dim, int64_t axis_stride, const I* idx, T* out) {
    const int64_t inner = dims[rank - 1], rows = rows_of(rank, dims), is = strides[rank - 1];
    for (int64_t i = 0; i < rows * inner; ++i)
        if (int64_t(idx[i]) < -axis_dim || int64_t(idx[i]) >= axis_dim) return false;
    const int64_t* s[1] = {strides};
    parallel_for(rows, rows * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t off[1];
            row_offsets<1>(rank, dims, r, s, off);
            for (int64_t j = 0; j < inner; ++j) {
                int64_t k = int64_t(idx[r * inner + j]);
                if (k < 0) k += axis_dim;
                out[r * inner + j] = data[off[0] + j * is + k * axis_stride];
            }
        }
    });
    return true;
}

enum ScatterReduce : int { kScatterNone = 0, kScatterAdd, kScatterMul, kScatterMax, kScatterMin };

template <class T>
inline T scatter_combine(int reduction, T old, T update) {
    switch (reduction) {
        case kScatterAdd: return T(old + update);
        case kScatterMul: return T(old * update);
        case kScatterMax: return maximum(old, update);
        case kScatterMin: return minimum(old, update);
        default: return update;
    }
}

// ScatterElements: out (already a copy of data) gets updates[i] at the position GatherElements
// would read for idx[i] (same arguments). One thread, in index order: with duplicate indices
// the last update wins, or each one is combined in turn, as numpy's ufunc.at.
template <class T, class I>
bool scatter_elements(int rank, const int64_t* dims, const int64_t* strides, int64_t axis_dim,
                      int64_t axis_stride, const I* idx, const T* updates, int reduction, T* out) {
    const int64_t inner = dims[rank - 1], rows = rows_of(rank, dims), is = strides[rank - 1];
    for (int64_t i = 0; i < rows * inner; ++i)
        if (int64_t(idx[i]) < -axis_dim || int64_t(idx[i]) >= axis_dim) return false;
    const int64_t* s[1] = {strides};
    for (int64_t r = 0; r < rows; ++r) {
        int64_t off[1];
        row_offsets<1>(rank, dims, r, s, off);
        for (int64_t j = 0; j < inner; ++j) {
            int64_t k = int64_t(idx[r * inner + j]);
            if (k < 0) k += axis_dim;
            T& o = out[off[0] + j * is + k * axis_stride];
            o = scatter_combine(reduction, o, updates[r * inner + j]);
        }
    }
    return true;
}

// ScatterND: out (already a copy of data [dims[0], ..., dims[k-1], inner]) gets the `inner`
// block updates[j] at index tuple j of idx [m, k], in order (see scatter_elements).
template <class T, class I>
bool scatter_nd(int64_t m, int k, const int64_t* dims, int64_t inner, const I* idx,
                const T* updates, int reduction, T* out) {
    for (int64_t r = 0; r < m; ++r)
        for (int t = 0; t < k; ++t)
            if (int64_t(idx[r * k + t]) < -dims[t] || int64_t(idx[r * k + t]) >= dims[t]) return false;
    for (int64_t r = 0; r < m; ++r) {
        int64_t off = 0;
        for (int t = 0; t < k; ++t) {
            const int64_t v = int64_t(idx[r * k + t]);
            off = off * dims[t] + (v < 0 ? v + dims[t] : v);
        }
        T* o = out + off * inner;
        const T* u = updates + r * inner;
        for (int64_t j = 0; j < inner; ++j) o[j] = scatter_combine(reduction, o[j], u[j]);
    }
    return true;
}

// OneHot as [outer, depth, inner] with indices [outer, inner]: values[1] where the index
// (truncated toward zero, negative counted from the end) is d, values[0] elsewhere; an index
// outside [-depth, depth) gives an all-off row, as the reference.
template <class T, class I>
void one_hot(int64_t outer, int64_t depth, int64_t inner, const I* idx, const T* values, T* out) {
    const T off = values[0], on = values[1];
    parallel_for(outer, outer * depth * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t o = lo_; o < hi_; ++o) {
            for (int64_t i = 0; i < inner; ++i) {
                int64_t k = int64_t(idx[o * inner + i]);
                if (k < 0) k += depth;
                for (int64_t d = 0; d < depth; ++d) out[(o * depth + d) * inner + i] = d == k ? on : off;
            }
        }
    });
}

// Concat: copy one input [outer, chunk] into columns [offset, offset + chunk) of out [outer, row].
template <class T>
void copy_columns(int64_t outer, int64_t chunk, const T* in, int64_t row, int64_t offset, T* out) {
    parallel_for(outer, outer * chunk > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t o = lo_; o < hi_; ++o)
            std::memcpy(out + o * row + offset, in + o * chunk, sizeof(T) * chunk);
    });
}

// Split: copy columns [offset, offset + chunk) of in [outer, row] to out [outer, chunk].
template <class T>
void take_columns(int64_t outer, int64_t chunk, const T* in, int64_t row, int64_t offset, T* out) {
    parallel_for(outer, outer * chunk > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t o = lo_; o < hi_; ++o)
            std::memcpy(out + o * chunk, in + o * row + offset, sizeof(T) * chunk);
    });
}

enum PadMode : int { kPadConstant = 0, kPadReflect, kPadEdge, kPadWrap };

inline int64_t pad_source(int64_t i, int64_t n, int mode) {
    if (i >= 0 && i < n) return i;
    switch (mode) {
        case kPadEdge: return i < 0 ? 0 : n - 1;
        case kPadWrap: return ((i % n) + n) % n;
        case kPadReflect: {
            if (n == 1) return 0;
            const int64_t period = 2 * (n - 1);
            int64_t k = ((i % period) + period) % period;
            return k < n ? k : period - k;
        }
        default: return -1;
    }
}

// out (contiguous, out_dims) = in (in_dims read with in_strides) padded by `begin` in front.
template <class T>
void pad(int rank, const int64_t* out_dims, const T* in, const int64_t* in_dims,
         const int64_t* in_strides, const int64_t* begin, int mode, T value, T* out) {
    const int64_t inner = out_dims[rank - 1], rows = rows_of(rank, out_dims);
    parallel_for(rows, rows * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t rem = r, off = 0;
            bool outside = false;
            for (int d = rank - 2; d >= 0; --d) {
                const int64_t i = rem % out_dims[d];
                rem /= out_dims[d];
                const int64_t src = pad_source(i - begin[d], in_dims[d], mode);
                if (src < 0) outside = true;
                else off += src * in_strides[d];
            }
            T* o = out + r * inner;
            const int64_t n = in_dims[rank - 1], b0 = begin[rank - 1];
            if (outside && mode == kPadConstant) {
                for (int64_t j = 0; j < inner; ++j) o[j] = value;
            } else if (mode == kPadConstant && in_strides[rank - 1] == 1 && b0 >= 0 && b0 + n <= inner) {
                // the common case (zero padding around a contiguous row): fill, copy, fill
                for (int64_t j = 0; j < b0; ++j) o[j] = value;
                std::memcpy(o + b0, in + off, sizeof(T) * n);
                for (int64_t j = b0 + n; j < inner; ++j) o[j] = value;
            } else {
                for (int64_t j = 0; j < inner; ++j) {
                    const int64_t src = pad_source(j - b0, n, mode);
                    o[j] = (outside || src < 0) ? value : in[off + src * in_strides[rank - 1]];
                }
            }
        }
    });
}

}  // namespace ff
