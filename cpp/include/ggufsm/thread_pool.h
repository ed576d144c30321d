// A pool of persistent worker threads. parallel_for hands out contiguous
// chunks of [0, n) and blocks until all are done; no thread is created per
// call (the hot path of a decode step calls it hundreds of times).
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

    // fn(begin, end, thread_index) over [0, n) in size() contiguous chunks
    // (fewer when n is small); the caller runs chunk 0. Blocks until every
    // chunk has returned; the first exception thrown by a chunk is rethrown
    // here. Calls from several threads at once are serialized.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

private:
    void worker_loop(int thread_index);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex call_mutex_;  // one parallel_for at a time
    // A new job bumps generation_; workers spin on it for a short while (a
    // decode step issues jobs microseconds apart) and then sleep on the
    // condition variable.
    std::mutex sleep_mutex_;
    std::condition_variable work_ready_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stopping_{false};
    const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
    int64_t job_n_ = 0;
    int job_chunks_ = 0;
    std::mutex error_mutex_;
    std::exception_ptr first_error_;
};

}  // namespace ggufsm
