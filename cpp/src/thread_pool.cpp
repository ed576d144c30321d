#include "ggufsm/thread_pool.h"

#include <algorithm>

#include "ggufsm/errors.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GGUFSM_PAUSE() _mm_pause()
#else
#define GGUFSM_PAUSE() std::this_thread::yield()
#endif

namespace ggufsm {

namespace {
// About 50 us of pause instructions before a worker sleeps: long enough to
// bridge the gaps between the matmuls of one forward pass, short enough not to
// burn a core that another process wants once the pass is over.
constexpr int kSpinIterations = 4000;

void run_chunk(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int chunks, int index) {
    const int64_t begin = n * index / chunks, end = n * (index + 1) / chunks;
    if (begin < end) fn(begin, end, index);
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    if (n_threads < 0) throw Error(code::InvalidInput, "thread count must be >= 0 (0 = all cores), got " + std::to_string(n_threads));
    if (n_threads == 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    n_threads_ = n_threads;
    workers_.reserve(n_threads - 1);
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(sleep_mutex_);
        stopping_.store(true);
        generation_.fetch_add(1);
    }
    work_ready_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int thread_index) {
    uint64_t seen = 0;
    for (;;) {
        uint64_t now = generation_.load(std::memory_order_acquire);
        for (int spin = 0; now == seen && spin < kSpinIterations; ++spin) {
            GGUFSM_PAUSE();
            now = generation_.load(std::memory_order_acquire);
        }
        if (now == seen) {
            std::unique_lock<std::mutex> lock(sleep_mutex_);
            work_ready_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            now = generation_.load(std::memory_order_acquire);
        }
        seen = now;
        if (stopping_.load()) return;
        if (thread_index < job_chunks_) {
            try {
                run_chunk(*job_, job_n_, job_chunks_, thread_index);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex_);
                if (!first_error_) first_error_ = std::current_exception();
            }
        }
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
    if (n <= 0) return;
    const int chunks = static_cast<int>(std::min<int64_t>(n, n_threads_));
    if (chunks == 1) {
        fn(0, n, 0);
        return;
    }
    std::lock_guard<std::mutex> call_lock(call_mutex_);
    job_ = &fn;
    job_n_ = n;
    job_chunks_ = chunks;
    first_error_ = nullptr;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
        // Under the sleep mutex so a worker between its check and its wait
        // cannot miss the notification.
        std::lock_guard<std::mutex> lock(sleep_mutex_);
        generation_.fetch_add(1, std::memory_order_acq_rel);
    }
    work_ready_.notify_all();
    try {
        run_chunk(fn, n, chunks, 0);
    } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!first_error_) first_error_ = std::current_exception();
    }
    while (pending_.load(std::memory_order_acquire) != 0) GGUFSM_PAUSE();
    job_ = nullptr;
    if (first_error_) std::rethrow_exception(first_error_);
}

}  // namespace ggufsm
