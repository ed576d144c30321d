// A model file's mapping read in ahead of the load, on a thread of its own.
//
// A load reads the whole file once (the header, then the repack of the layer
// matrices and the scan of the rest), and on a cold page cache it waits on
// the disk. Left to page faults, the disk idles while the load computes (the
// header's parse and validation, the tokenizer, the repack of what already
// arrived) and is asked for one read-around window at a time when a fault
// finds a page missing. The read-ahead keeps the disk busy from the moment the
// file is mapped: it walks the mapping in file order, a window at a time, and
// populates each window that is not already in the page cache
// (MADV_POPULATE_READ: the kernel reads it in and maps it, so the load's later
// touches of those pages do not fault).
//
// Why this and not the kernel's other advice: POSIX_FADV_WILLNEED,
// MADV_WILLNEED and readahead(2) are each capped at the device's readahead
// window (8 MiB here), and issued for the whole file at once they were slower
// than no advice at all; MADV_SEQUENTIAL slowed page-fault reads too.
// Measured on SmolLM2's 98 MB after POSIX_FADV_DONTNEED, two threads touching
// it in halves, medians of 6-8 interleaved rounds (a C probe, load average
// 3-16): no advice 0.096-0.119 s, fadvise windows from a thread 0.146-0.173 s,
// this 0.073-0.096 s, MAP_POPULATE of the whole file 0.077-0.082 s; two or
// three readers, or an fadvise of the next windows beside it, were no faster.
//
// Advice only: a kernel without MADV_POPULATE_READ (before 5.14), or a file
// that shrank under the mapping (the populate returns EFAULT where an access
// would raise SIGBUS: fault_guard.h names that case at the load's next check),
// ends the read-ahead, and the load's own page faults read what is left.
//
// Pages it maps count in the process's RSS as the load's own touches do; a
// caller that drops pages of the mapping (the repack drops the matrices it
// copied) stops the read-ahead first, so that no page is mapped again behind
// it.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

namespace ggufsm::gguf {

class ReadAhead {
public:
    // Bytes populated per step: the device's readahead window, so one step is one read-around of the kernel.
    static constexpr uint64_t kWindow = uint64_t(8) << 20;

    // Starts reading [begin, begin + size) of a mapping on a thread, unless the whole of it fits in
    // one window (the first page fault's read-around brings that in anyway).
    ReadAhead(const uint8_t* begin, uint64_t size);
    ~ReadAhead();  // stops it
    ReadAhead(const ReadAhead&) = delete;
    ReadAhead& operator=(const ReadAhead&) = delete;

    // Returns once the thread has ended: at once after its current window when `stop_first`, else
    // after the last window. Idempotent; safe from several threads.
    void finish(bool stop_first);
    // Windows populated (not found resident) so far: for tests and reports.
    uint64_t windows_read() const { return windows_read_.load(); }

private:
    void run();

    const uint8_t* begin_;
    uint64_t size_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> windows_read_{0};
    std::mutex join_mutex_;
    std::thread thread_;
};

}  // namespace ggufsm::gguf
