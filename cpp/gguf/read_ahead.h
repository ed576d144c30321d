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
// A bounded distance ahead of the load, not the whole file: populated pages
// stay in the page cache and mapped in this process, and a file larger than the
// memory left (or a large one on a small machine) read whole from the moment
// it is mapped evicts the pages the load is about to use. The load says how
// far it has read (read_through: the parse's header, the repack's chunks, the
// scans' tensors), and the reader never populates a window that ends past that
// point plus the distance (min(kMaxDistance, a quarter of MemAvailable), at
// least one window): at 1-1.3 GB/s from this disk, 512 MiB is 0.4 s of reading
// ahead of a load that consumes it more slowly (the repack, the scans), so
// the disk never waits on the bound for the files we run (SmolLM2 98 MB and
// Gemma 3 253 MB fit in it whole: their loads read as before). Where the load
// stands it waits, on a condition, not a poll. The load stops it once done.
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
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace ggufsm::gguf {

class ReadAhead {
public:
    // Bytes populated per step: the device's readahead window, so one step is one read-around of the kernel.
    static constexpr uint64_t kWindow = uint64_t(8) << 20;
    // The most it reads ahead of the load (the automatic distance's cap; see above).
    static constexpr uint64_t kMaxDistance = uint64_t(512) << 20;

    // Starts reading [begin, begin + size) of a mapping on a thread, `window` bytes a step, at most `distance`
    // bytes past what the load has read (0: read_ahead_distance()), unless the whole of it fits in one window (the
    // first page fault's read-around brings that in anyway).
    ReadAhead(const uint8_t* begin, uint64_t size, uint64_t window = kWindow, uint64_t distance = 0);
    ~ReadAhead();  // stops it
    ReadAhead(const ReadAhead&) = delete;
    ReadAhead& operator=(const ReadAhead&) = delete;

    // The load has read the mapping up to `end` (bytes from begin; a lower value than before changes nothing):
    // the reader may populate up to end + distance. Cheap when it moves nothing; safe from any thread.
    void read_through(uint64_t end);
    // Returns once the thread has ended: at once after its current window when `stop_first`, else once it has
    // read all the load's progress allows now (up to the bound, or the end of the file). Idempotent; safe from
    // several threads.
    void finish(bool stop_first);
    // Returns once the reader waits at the bound the last read_through set, or has ended: for tests (an event,
    // not a sleep).
    void wait_idle();

    // Windows populated (not found resident) so far: for tests and reports.
    uint64_t windows_read() const { return windows_read_.load(); }
    // The end of the windows the reader has handled (populated, or found resident) so far.
    uint64_t handled_to() const { return handled_to_.load(); }
    // How far the load has read (the highest read_through), and the distance the reader keeps past it.
    uint64_t read_to() const { return read_to_.load(); }
    uint64_t distance() const { return distance_; }
    // False once the reader has ended (or when it never started).
    bool running() const;

private:
    void run();
    // Waits, under `lock`, until the window [at, at + n) is within the bound or the reader must end; true to read it.
    bool may_read(std::unique_lock<std::mutex>& lock, uint64_t at, uint64_t n);

    const uint8_t* begin_;
    uint64_t size_;
    uint64_t window_;
    uint64_t distance_;
    uint64_t page_ = 4096;
    std::atomic<uint64_t> read_to_{0};
    std::atomic<uint64_t> windows_read_{0};
    std::atomic<uint64_t> handled_to_{0};
    mutable std::mutex mutex_;
    std::condition_variable changed_;  // read_to_, stop_, to_bound_, waiting_ or ended_ changed
    bool stop_ = false;      // end after the current window
    bool to_bound_ = false;  // end at the bound rather than wait there (finish without stop)
    bool waiting_ = false;   // the reader waits at the bound of the current read_to_
    bool ended_ = false;     // the reader has ended (or never started)
    std::mutex join_mutex_;
    std::thread thread_;
};

// The automatic distance: min(kMaxDistance, a quarter of MemAvailable), at least one kWindow, unless set below.
uint64_t read_ahead_distance();
// Sets the distance files opened from now on read ahead of their loads (0: automatic again); returns the last setting.
uint64_t set_read_ahead_distance(uint64_t bytes);

}  // namespace ggufsm::gguf
