#include "ggufsm/thread_pool.h"

#include <algorithm>
#include <string>

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
// Chunks per thread: enough for a running thread to absorb a descheduled
// one's share, few enough that claiming costs nothing.
constexpr int64_t kChunksPerThread = 4;
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    if (n_threads < 0) {
        throw Error(code::InvalidInput, "thread count must be >= 0 (0 = all cores), got " + std::to_string(n_threads));
    }
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

void ThreadPool::run_chunks(uint32_t generation, int thread_index) {
    uint64_t word = claim_.load(std::memory_order_acquire);
    for (;;) {
        if (static_cast<uint32_t>(word >> 32) != generation) return;  // a later job: not ours
        const int64_t chunk = static_cast<int64_t>(word & 0xFFFFFFFFu);
        // job_chunks_ is stable while a chunk of this generation is unclaimed:
        // the caller publishes the next job only after all chunks are done.
        const int64_t chunks = job_chunks_.load(std::memory_order_relaxed);
        if (chunk >= chunks) return;
        if (!claim_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
        const int64_t begin = job_n_ * chunk / chunks, end = job_n_ * (chunk + 1) / chunks;
        try {
            if (begin < end) (*job_)(begin, end, thread_index);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex_);
            if (!first_error_) first_error_ = std::current_exception();
        }
        chunks_done_.fetch_add(1, std::memory_order_acq_rel);
        word = claim_.load(std::memory_order_acquire);
    }
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
        run_chunks(static_cast<uint32_t>(now), thread_index);
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
        fn(0, n, 0);
        return;
    }
    std::lock_guard<std::mutex> call_lock(call_mutex_);
    // Close the previous job's claim word before touching the job fields: a
    // worker still holding that word could otherwise read the new chunk count,
    // claim a chunk of the old generation and run it against the new job (a
    // chunk run twice and chunks_done_ past `chunks`: a hang).
    claim_.store((claim_.load(std::memory_order_relaxed) & ~uint64_t(0xFFFFFFFFu)) | 0xFFFFFFFFu, std::memory_order_seq_cst);
    job_ = &fn;
    job_n_ = n;
    const int64_t chunks = std::min<int64_t>(n, kChunksPerThread * n_threads_);
    job_chunks_.store(chunks, std::memory_order_relaxed);
    first_error_ = nullptr;
    chunks_done_.store(0, std::memory_order_relaxed);
    uint32_t generation;
    {
        // Under the sleep mutex so a worker between its check and its wait
        // cannot miss the notification.
        std::lock_guard<std::mutex> lock(sleep_mutex_);
        generation = static_cast<uint32_t>(generation_.load(std::memory_order_relaxed) + 1);
        claim_.store(static_cast<uint64_t>(generation) << 32, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_acq_rel);
    }
    work_ready_.notify_all();
    run_chunks(generation, 0);
    while (chunks_done_.load(std::memory_order_acquire) != chunks) GGUFSM_PAUSE();
    job_ = nullptr;
    if (first_error_) std::rethrow_exception(first_error_);
}

}  // namespace ggufsm
