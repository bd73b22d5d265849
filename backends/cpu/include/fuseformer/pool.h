// The kernels' thread pool: parallel_for(n, worth_it, body) runs body(lo, hi) over [0, n).
//
// Why not `#pragma omp parallel for schedule(static)`: a static split makes the caller wait
// at the closing barrier for every thread of the team, including one the OS has not run yet.
// On a machine with anything else busy (a second process, or onnxruntime's spinning pool in
// the same process) each kernel then stalls for a scheduler time slice, and a model of a
// few hundred kernels runs ten to a hundred times slower. Here the caller and the workers
// claim chunks of the range from one atomic counter; the caller works too, and waits only
// for chunks a worker has actually claimed. A worker that is late finds nothing left.
//
// Workers spin briefly between jobs (kernels follow each other within microseconds), then
// sleep on a condition variable. One job runs at a time; a call made while another job is
// running (a nested loop, or a second session of the same library) runs on its caller alone.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <omp.h>

namespace ff {

// 0 means "as many as OpenMP would use" (OMP_NUM_THREADS, else the CPUs this process may
// run on); ff_set_threads() changes it for every kernel.
inline int g_threads = 0;

inline int threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

class Pool {
public:
    static Pool& get() {
        static Pool pool;
        return pool;
    }

    ~Pool() { resize(0); }

    // Runs body(lo, hi) over chunks of [0, n) on `nt` threads (the caller being one of them).
    // `affine`: chunk t goes to thread t (the caller is 0, worker i is i + 1) unless another
    // thread finds it unclaimed after finishing its own (so a late worker delays nothing);
    // otherwise chunks go in order to whichever thread asks first.
    template <class F>
    void run(int64_t n, int64_t chunk, int nt, F& body, bool affine = false) {
        bool& inside = in_job();
        const int64_t chunks = n > 0 && chunk > 0 ? (n + chunk - 1) / chunk : 0;
        if (nt <= 1 || chunks <= 1 || chunks > kMaxChunks || inside || !busy_.try_lock()) {
            body(int64_t(0), n);
            return;
        }
        // sized by the thread count, not by this job: jobs of fewer threads (parallel_rows
        // on a short sequence) between full ones would otherwise tear workers down and
        // start them again each time; a spare worker finds nothing left to claim
        const int want = std::max(nt, threads()) - 1;
        if (int(workers_.size()) != want) resize(want);
        call_.store(&trampoline<F>, std::memory_order_relaxed);
        ctx_.store(&body, std::memory_order_relaxed);
        n_.store(n, std::memory_order_relaxed);
        chunk_.store(chunk, std::memory_order_relaxed);
        done_.store(0, std::memory_order_relaxed);
        const uint64_t g = (gen_.load(std::memory_order_relaxed) + 1) & kGenMask;
        const bool by_thread = affine && chunks <= kClaimBits;
        state_.store(g << kGenShift | uint64_t(by_thread) << kAffineShift | uint64_t(chunks) << kChunksShift,
                     std::memory_order_release);
        gen_.store(g, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            std::lock_guard<std::mutex> lock(m_);
            cv_.notify_all();
        }
        inside = true;
        work(g, 0);
        inside = false;
        // only chunks a worker has claimed are outstanding: they are short
        while (done_.load(std::memory_order_acquire) < chunks) cpu_relax();
        busy_.unlock();
    }

private:
    static bool& in_job() {
        static thread_local bool inside = false;  // this thread runs a chunk of the caller's job
        return inside;
    }

    // state_ = generation | affine | chunk count | claims, one word: whether a job is
    // finished and which chunk to claim next must be read from the word the claim's CAS
    // checks, never from the job's other fields, which the next job may already be
    // rewriting while a late thread still looks at a finished job (it then claimed a chunk
    // of a job whose caller had returned). The claims are the next chunk's number, or for
    // an affine job one bit per chunk.
    static constexpr int kClaimBits = 20, kChunksShift = 20, kAffineShift = 39, kGenShift = 40;
    static constexpr int64_t kMaxChunks = (int64_t(1) << 19) - 1;
    static constexpr uint64_t kClaimMask = (uint64_t(1) << kClaimBits) - 1;
    static constexpr uint64_t kGenMask = (uint64_t(1) << (64 - kGenShift)) - 1;
    static constexpr int kSpins = 4000;  // pause instructions before a worker sleeps (~0.1-0.5 ms)

    template <class F>
    static void trampoline(void* ctx, int64_t lo, int64_t hi) {
        (*static_cast<F*>(ctx))(lo, hi);
    }

    // Claim and run chunks of job g until none are left (or a newer job has replaced it);
    // `self` is the thread's number (the caller 0, worker i i + 1).
    void work(uint64_t g, int self) {
        for (;;) {
            uint64_t s = state_.load(std::memory_order_acquire);
            if ((s >> kGenShift) != g) return;
            const bool affine = (s >> kAffineShift) & 1;
            const int64_t chunks = int64_t((s >> kChunksShift) & kMaxChunks);
            const uint64_t claims = s & kClaimMask;
            int64_t c;
            uint64_t next;
            if (affine) {
                const uint64_t all = (uint64_t(1) << chunks) - 1;
                if ((claims & all) == all) return;
                c = self < chunks && !((claims >> self) & 1) ? self : __builtin_ctzll(~claims & all);
                next = s | (uint64_t(1) << c);
            } else {
                c = int64_t(claims);
                if (c >= chunks) return;
                next = s + 1;
            }
            if (!state_.compare_exchange_weak(s, next, std::memory_order_acq_rel)) continue;
            // chunk c of job g is ours, and job g lasts until we report it done: its fields
            // are job g's from here on
            const int64_t n = n_.load(std::memory_order_relaxed);
            const int64_t chunk = chunk_.load(std::memory_order_relaxed);
            const int64_t lo = c * chunk;
            call_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), lo, std::min(n, lo + chunk));
            done_.fetch_add(1, std::memory_order_acq_rel);
        }
    }

    void worker(int self) {
        uint64_t seen = gen_.load(std::memory_order_acquire);
        for (;;) {
            uint64_t g;
            int spins = 0;
            while ((g = gen_.load(std::memory_order_acquire)) == seen) {
                if (stop_.load(std::memory_order_relaxed)) return;
                if (++spins < kSpins) {
                    cpu_relax();
                    continue;
                }
                std::unique_lock<std::mutex> lock(m_);
                sleepers_.fetch_add(1, std::memory_order_seq_cst);
                cv_.wait(lock, [&] {
                    return stop_.load(std::memory_order_relaxed) ||
                           gen_.load(std::memory_order_seq_cst) != seen;
                });
                sleepers_.fetch_sub(1, std::memory_order_seq_cst);
                spins = 0;
            }
            seen = g;
            work(g, self);
        }
    }

    void resize(int count) {
        if (!workers_.empty()) {
            {
                std::lock_guard<std::mutex> lock(m_);
                stop_.store(true);
            }
            cv_.notify_all();
            for (auto& t : workers_) t.join();
            workers_.clear();
            stop_.store(false);
        }
        for (int i = 0; i < count; ++i) workers_.emplace_back([this, i] { worker(i + 1); });
    }

    std::mutex busy_;
    std::vector<std::thread> workers_;
    std::atomic<uint64_t> state_{0};  // see kGenShift
    std::atomic<uint64_t> gen_{0};
    std::atomic<int64_t> done_{0};
    std::atomic<void (*)(void*, int64_t, int64_t)> call_{nullptr};
    std::atomic<void*> ctx_{nullptr};
    std::atomic<int64_t> n_{0}, chunk_{1};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    std::mutex m_;
    std::condition_variable cv_;
};

// body(lo, hi) over [0, n), in parallel when worth_it, in about four chunks per thread (so
// a thread that starts late leaves its share to the others).
template <class F>
inline void parallel_for(int64_t n, bool worth_it, F&& body) {
    const int nt = worth_it ? std::min<int64_t>(threads(), n) : 1;
    if (nt <= 1 || n <= 1) {
        if (n > 0) body(int64_t(0), n);
        return;
    }
    const int64_t chunk = std::max<int64_t>(1, (n + 4 * nt - 1) / (4 * nt));
    Pool::get().run(n, chunk, nt, body);
}

// body(lo, hi) over row ranges of [0, m): one contiguous range per thread, its bounds on
// multiples of `align` rows. Kernels that split the same rows this way leave each thread
// the rows it wrote itself, still in its own cache: on a small model (65 tokens, 64 wide)
// splitting each kernel afresh moved its operands between the cores' caches every time and
// made two threads 1.2x slower than one. Range t runs on thread t (an affine job) unless
// that thread is late and another finds the range unclaimed; who runs which range only
// decides where the data lives, never the result. (Claimed in order instead, the worker
// took the caller's range in one job of nine, and the rows moved.)
template <class F>
inline void parallel_rows(int64_t m, int64_t align, bool worth_it, F&& body) {
    const int64_t blocks = (m + align - 1) / align;
    const int nt = worth_it ? int(std::min<int64_t>(threads(), blocks)) : 1;
    if (nt <= 1) {
        if (m > 0) body(int64_t(0), m);
        return;
    }
    const int64_t per = (blocks + nt - 1) / nt;
    auto ranges = [&](int64_t lo_, int64_t hi_) { body(lo_ * align, std::min(m, hi_ * align)); };
    Pool::get().run(blocks, per, nt, ranges, true);
}

// The rows a thread of parallel_rows(m, kRowAlign, ...) owns end on multiples of this:
// the register tile's row count, so the GEMM's tiles never straddle two threads.
constexpr int64_t kRowAlign = 12;

// Elements of row-wise work (a norm, an elementwise pass) worth splitting by parallel_rows:
// lower than a fresh split's threshold, since the rows stay where they are.
constexpr int64_t kRowGrain = 2048;

}  // namespace ff
