// Reductions over one block of axes, seen as [outer, n, inner] (the generator coalesces
// the reduced axes into the middle dim); Softmax / LogSoftmax, CumSum, ArgMax / ArgMin and
// TopK along one axis; Einsum.
#pragma once

#include <vector>

#include "core.h"

namespace ff {

enum Reduce : int { kSum = 0, kMean, kMax, kMin, kProd, kL1, kL2, kSumSquare, kLogSumExp, kLogSum };

// Float sums accumulate in double: long reductions (global pooling) stay exact to fp32.
template <class T> using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;

template <class T>
T reduce_numbers(int kind, int64_t n, const T* x, int64_t stride) {
    using A = Acc<T>;
    switch (kind) {
        case kMax: case kMin: {
            T best = kind == kMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
            if constexpr (std::is_floating_point_v<T>)
                best = kind == kMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
            for (int64_t j = 0; j < n; ++j)
                best = kind == kMax ? maximum(best, x[j * stride]) : minimum(best, x[j * stride]);
            return best;
        }
        case kProd: {
            A p = A(1);
            for (int64_t j = 0; j < n; ++j) p *= A(x[j * stride]);
            return T(p);
        }
        case kLogSumExp: {
            double m = -std::numeric_limits<double>::infinity();
            for (int64_t j = 0; j < n; ++j) m = std::max(m, double(x[j * stride]));
            if (!std::isfinite(m)) m = 0.0;  // an infinite shift would give inf - inf
            double s = 0.0;
            for (int64_t j = 0; j < n; ++j) s += std::exp(double(x[j * stride]) - m);
            return T(std::log(s) + m);
        }
        default: break;
    }
    A s = A(0);
    for (int64_t j = 0; j < n; ++j) {
        const A v = A(x[j * stride]);
        s += (kind == kL1) ? (v < A(0) ? -v : v) : (kind == kL2 || kind == kSumSquare) ? v * v : v;
    }
    switch (kind) {
        case kMean:
            if constexpr (std::is_floating_point_v<T>) return T(s / A(n));
            else return T(s / A(n));  // C integer division truncates toward zero, as the reference
        case kL2: return T(std::sqrt(double(s)));
        case kLogSum: return T(std::log(double(s)));
        default: return T(s);
    }
}

template <class T>
T reduce_one(int kind, int64_t n, const T* x, int64_t stride) {
    if constexpr (std::is_same_v<T, bool>) {
        // bools reduce by Max (any) and Min (all) only: the rule refuses the rest
        bool any = false, all = true;
        for (int64_t j = 0; j < n; ++j) {
            any = any || x[j * stride];
            all = all && x[j * stride];
        }
        return kind == kMax ? any : all;
    } else {
        return reduce_numbers<T>(kind, n, x, stride);
    }
}

template <class T>
void reduce(int kind, int64_t outer, int64_t n, int64_t inner, const T* in, T* out) {
    parallel_for(outer * inner, outer * n * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            const int64_t o = r / inner, i = r % inner;
            out[r] = reduce_one<T>(kind, n, in + o * n * inner + i, inner);
        }
    });
}

template <class T>
void softmax(bool log, int64_t outer, int64_t n, int64_t inner, const T* in, T* out) {
    parallel_for(outer * inner, outer * n * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            const int64_t o = r / inner, i = r % inner;
            const T* x = in + o * n * inner + i;
            T* y = out + o * n * inner + i;
            T m = -std::numeric_limits<T>::infinity();
            for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j * inner]);
            double s = 0.0;
            for (int64_t j = 0; j < n; ++j) {
                const T e = std::exp(x[j * inner] - m);
                if (!log) y[j * inner] = e;
                s += e;
            }
            if (log) {
                const T ls = T(std::log(s));
                for (int64_t j = 0; j < n; ++j) y[j * inner] = (x[j * inner] - m) - ls;
            } else {
                const T inv = T(1.0 / s);
                for (int64_t j = 0; j < n; ++j) y[j * inner] *= inv;
            }
        }
    });
}

// CumSum along the middle axis of [outer, n, inner], summed in T as numpy's cumsum with the
// input's dtype; `exclusive` leaves element i out of its own sum, `reverse` runs from the end.
template <class T>
void cumsum(bool exclusive, bool reverse, int64_t outer, int64_t n, int64_t inner, const T* in, T* out) {
    parallel_for(outer * inner, outer * n * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            const int64_t o = r / inner, i = r % inner;
            const T* x = in + o * n * inner + i;
            T* y = out + o * n * inner + i;
            T s = T(0);
            for (int64_t t = 0; t < n; ++t) {
                const int64_t j = (reverse ? n - 1 - t : t) * inner;
                if (exclusive) {
                    y[j] = s;
                    s = T(s + x[j]);
                } else {
                    s = T(s + x[j]);
                    y[j] = s;
                }
            }
        }
    });
}

// An order on values with NaN above everything, as numpy sorts: a strict weak order even
// with NaN, which std::partial_sort needs.
template <class T> inline bool sorts_before(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(b)) return !std::isnan(a);
        if (std::isnan(a)) return false;
    }
    return a < b;
}

// ArgMax / ArgMin along the middle axis of [outer, n, inner]: the first extreme (the last
// with `last`); a NaN is the extreme of both, as numpy's argmax and argmin.
template <class T>
void arg_reduce(bool largest, bool last, int64_t outer, int64_t n, int64_t inner, const T* in,
                int64_t* out) {
    parallel_for(outer * inner, outer * n * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            const int64_t o = r / inner, i = r % inner;
            const T* x = in + o * n * inner + i;
            int64_t best = 0;
            for (int64_t j = 1; j < n; ++j) {
                const T a = x[j * inner], b = x[best * inner];
                if constexpr (std::is_floating_point_v<T>) {
                    if (std::isnan(a)) {
                        if (last || !std::isnan(b)) best = j;
                        continue;
                    }
                    if (std::isnan(b)) continue;
                }
                if (largest ? b < a : a < b) best = j;
                else if (last && a == b) best = j;
            }
            out[r] = best;
        }
    });
}

// TopK along the middle axis of [outer, n, inner]: the k largest (or smallest) values and
// their indices, sorted, ties in ascending index order (the order onnxruntime gives). False
// when k > n, which the reference refuses too.
template <class T>
bool topk(bool largest, int64_t k, int64_t outer, int64_t n, int64_t inner, const T* in, T* values,
          int64_t* indices) {
    if (k > n) return false;
    parallel_for(outer * inner, outer * n * inner > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        std::vector<int64_t> order(static_cast<size_t>(n));
        for (int64_t r = lo_; r < hi_; ++r) {
            const int64_t o = r / inner, i = r % inner;
            const T* x = in + o * n * inner + i;
            for (int64_t j = 0; j < n; ++j) order[size_t(j)] = j;
            std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
                const T va = x[a * inner], vb = x[b * inner];
                if (largest ? sorts_before(vb, va) : sorts_before(va, vb)) return true;
                if (largest ? sorts_before(va, vb) : sorts_before(vb, va)) return false;
                return a < b;
            });
            for (int64_t t = 0; t < k; ++t) {
                const int64_t at = (o * k + t) * inner + i;
                values[at] = x[order[size_t(t)] * inner];
                indices[at] = order[size_t(t)];
            }
        }
    });
    return true;
}

// Einsum as one loop nest: out[o] = sum over the reduced index space of the product of the
// operands, each read through its strides (n_out + n_red per operand: 0 for a letter it lacks,
// the sum of both for a letter it repeats, which walks a diagonal). Float sums in double.
constexpr int kEinsumMaxOperands = 8;

template <class T>
void einsum(int n_ops, const T* const* ops, const int64_t* strides, int n_out, const int64_t* out_dims,
            int n_red, const int64_t* red_dims, T* out) {
    using A = Acc<T>;
    const int n_all = n_out + n_red;
    int64_t total = 1, reduced = 1;
    for (int d = 0; d < n_out; ++d) total *= out_dims[d];
    for (int d = 0; d < n_red; ++d) reduced *= red_dims[d];
    parallel_for(total, total * reduced > kParallelGrain, [&](int64_t lo_, int64_t hi_) {
        for (int64_t r = lo_; r < hi_; ++r) {
            int64_t base[kEinsumMaxOperands] = {};
            int64_t rem = r;
            for (int d = n_out - 1; d >= 0; --d) {
                const int64_t i = rem % out_dims[d];
                rem /= out_dims[d];
                for (int k = 0; k < n_ops; ++k) base[k] += i * strides[k * n_all + d];
            }
            A s = A(0);
            if (n_ops == 2 && n_red <= 1) {
                // the matmul-like forms (one summed letter, two operands): a strided dot product
                const int64_t s0 = n_red ? strides[n_out] : 0, s1 = n_red ? strides[n_all + n_out] : 0;
                const T* x0 = ops[0] + base[0];
                const T* x1 = ops[1] + base[1];
                for (int64_t q = 0; q < reduced; ++q) s += A(x0[q * s0]) * A(x1[q * s1]);
                out[r] = T(s);
                continue;
            }
            for (int64_t q = 0; q < reduced; ++q) {
                A p = A(1);
                int64_t left = q;
                int64_t off[kEinsumMaxOperands];
                for (int k = 0; k < n_ops; ++k) off[k] = base[k];
                for (int d = n_red - 1; d >= 0; --d) {
                    const int64_t i = left % red_dims[d];
                    left /= red_dims[d];
                    for (int k = 0; k < n_ops; ++k) off[k] += i * strides[k * n_all + n_out + d];
                }
                for (int k = 0; k < n_ops; ++k) p *= A(ops[k][off[k]]);
                s += p;
            }
            out[r] = T(s);
        }
    });
}

}  // namespace ff
