// A pool of persistent worker threads. parallel_for splits [0, n) into
// contiguous chunks that the calling thread and the workers claim one at a
// time, and blocks until all are done; no thread is created per call (the hot
// path of a decode step calls it hundreds of times). Claiming rather than a
// fixed split keeps a call fast when a worker is descheduled on a busy
// machine: whoever is running takes the remaining chunks.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ggufsm {

class ThreadPool {
public:
    // n_threads = 0: one per hardware thread.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Threads that run chunks, the calling thread included.
    int size() const { return n_threads_; }

    // fn(begin, end, thread_index) over [0, n) in contiguous chunks (a few
    // per thread, never more than n); each thread may run several chunks, one
    // after another, and thread_index (0 = the caller, < size()) says which
    // thread runs it, so per-thread scratch can be indexed by it. Blocks until
    // every chunk has returned; the first exception thrown by a chunk is
    // rethrown here. Calls from several threads at once are serialized.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

private:
    void worker_loop(int thread_index);
    // Claims and runs chunks of the job published as `generation` until none is left.
    void run_chunks(uint32_t generation, int thread_index);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex call_mutex_;  // one parallel_for at a time
    // Workers spin on generation_ for a short while after a job (a decode step
    // issues jobs microseconds apart) and then sleep on the condition variable.
    std::mutex sleep_mutex_;
    std::condition_variable work_ready_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<bool> stopping_{false};
    // The job's claim word: generation (high 32 bits) | next chunk (low 32). A
    // worker claims a chunk by compare-exchange, so one still holding an old
    // generation can never take a chunk of the next job.
    std::atomic<uint64_t> claim_{0};
    std::atomic<int64_t> chunks_done_{0};
    const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
    int64_t job_n_ = 0;
    std::atomic<int64_t> job_chunks_{0};  // read by workers racing the next publish
    std::mutex error_mutex_;
    std::exception_ptr first_error_;
};

}  // namespace ggufsm
