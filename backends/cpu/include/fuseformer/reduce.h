// Reductions over one block of axes, seen as [outer, n, inner] (the generator coalesces
// the reduced axes into the middle dim), and Softmax / LogSoftmax along one axis.
#pragma once

#include "core.h"

namespace ff {

enum Reduce : int { kSum = 0, kMean, kMax, kMin, kProd, kL1, kL2, kSumSquare, kLogSumExp, kLogSum };

// Float sums accumulate in double: long reductions (global pooling) stay exact to fp32.
template <class T> using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;

template <class T>
T reduce_one(int kind, int64_t n, const T* x, int64_t stride) {
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

}  // namespace ff
