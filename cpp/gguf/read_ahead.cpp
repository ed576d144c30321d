// The read-ahead of a mapped model file (read_ahead.h).
#include "gguf/read_ahead.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <system_error>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14's value, for C libraries older than the kernel
#endif

namespace ggufsm::gguf {

namespace {

// True when the window's pages are in the page cache, judged by one page per MiB: a file comes into
// the cache in runs of the device's readahead window, and a mincore of all its 2048 pages cost a warm
// load about 1.6 ms of CPU an open (perf over 40 opens of SmolLM2: 8% of the samples), beside the
// tokenizer and the repack.
bool resident(const uint8_t* at, uint64_t n) {
    constexpr uint64_t kProbeStride = uint64_t(1) << 20;
    const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
    for (uint64_t probe = 0; probe < n; probe += kProbeStride) {
        unsigned char in_cache = 0;
        if (mincore(const_cast<uint8_t*>(at + probe), size_t(page), &in_cache) != 0 || (in_cache & 1) == 0) return false;
    }
    return true;
}

// MemAvailable from /proc/meminfo in bytes, or 0 when it cannot be read.
uint64_t mem_available() {
    std::ifstream meminfo("/proc/meminfo");
    std::string line;
    while (std::getline(meminfo, line)) {
        unsigned long long kib = 0;
        if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kib) == 1) return uint64_t(kib) << 10;
    }
    return 0;
}

std::atomic<uint64_t> distance_setting{0};  // set_read_ahead_distance's; 0: automatic

}  // namespace

uint64_t read_ahead_distance() {
    if (const uint64_t set = distance_setting.load()) return set;
    const uint64_t available = mem_available();
    // /proc unreadable: a quarter of the cap, still tens of windows.
    const uint64_t share = available ? available / 4 : ReadAhead::kMaxDistance / 4;
    return std::max(ReadAhead::kWindow, std::min(ReadAhead::kMaxDistance, share));
}

uint64_t set_read_ahead_distance(uint64_t bytes) { return distance_setting.exchange(bytes); }

ReadAhead::ReadAhead(const uint8_t* begin, uint64_t size, uint64_t window, uint64_t distance)
    : begin_(begin), size_(size), window_(std::max<uint64_t>(window, 1)), distance_(distance) {
    ended_ = true;
    if (begin_ == nullptr || size_ <= window_) return;
    // Read once per mapping (/proc/meminfo: tens of microseconds); a window is its floor, or the reader could never
    // take a step.
    distance_ = std::max(window_, distance_ ? distance_ : read_ahead_distance());
    page_ = uint64_t(sysconf(_SC_PAGESIZE));
    try {
        ended_ = false;
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
        // No thread to spare: the load's page faults read the file, as without a read-ahead.
        ended_ = true;
    }
}

ReadAhead::~ReadAhead() { finish(true); }

bool ReadAhead::may_read(std::unique_lock<std::mutex>& lock, uint64_t at, uint64_t n) {
    auto within = [&] {
        const uint64_t read_to = read_to_.load();
        return at + n <= read_to || at + n - read_to <= distance_;  // no read_to + distance: a set distance may be huge
    };
    while (!stop_ && !within()) {
        if (to_bound_) return false;
        waiting_ = true;
        changed_.notify_all();
        changed_.wait(lock);
    }
    waiting_ = false;
    return !stop_;
}

void ReadAhead::run() {
    for (uint64_t at = 0; at < size_; at += window_) {
        const uint64_t n = std::min(window_, size_ - at);
        {
            std::unique_lock<std::mutex> lock(mutex_);
            if (!may_read(lock, at, n)) break;
        }
        if (!resident(begin_ + at, n)) {
            // madvise takes a page-aligned start: the page holding the window's first byte is mapped (a mapping's
            // start is aligned; a caller's buffer may not be), and the length is rounded up to the page holding its
            // last byte, so nothing outside the pages of [begin, begin + size) is touched.
            const uintptr_t first = reinterpret_cast<uintptr_t>(begin_ + at);
            const uintptr_t start = first / page_ * page_;
            // EINVAL (a kernel without it), EFAULT (the file shrank), ENOMEM: the load's faults do the rest.
            if (madvise(reinterpret_cast<void*>(start), size_t(first - start + n), MADV_POPULATE_READ) != 0) break;
            windows_read_.fetch_add(1);
        }
        handled_to_.store(at + n);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ended_ = true;
    waiting_ = false;
    changed_.notify_all();
}

void ReadAhead::read_through(uint64_t end) {
    if (end <= read_to_.load(std::memory_order_relaxed)) return;  // the repack's chunks call this from every thread
    std::lock_guard<std::mutex> lock(mutex_);
    if (end <= read_to_.load()) return;
    read_to_.store(end);
    waiting_ = false;  // no longer at the bound of this read_to_: wait_idle waits for the reader to reach the new one
    changed_.notify_all();
}

void ReadAhead::finish(bool stop_first) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        (stop_first ? stop_ : to_bound_) = true;
        changed_.notify_all();
    }
    std::lock_guard<std::mutex> lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
}

bool ReadAhead::running() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return !ended_;
}

void ReadAhead::wait_idle() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return ended_ || waiting_; });
}

}  // namespace ggufsm::gguf
