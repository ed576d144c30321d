// The read-ahead of a mapped model file (read_ahead.h).
#include "gguf/read_ahead.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
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

}  // namespace

ReadAhead::ReadAhead(const uint8_t* begin, uint64_t size) : begin_(begin), size_(size) {
    if (begin_ == nullptr || size_ <= kWindow) return;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
        // No thread to spare: the load's page faults read the file, as without a read-ahead.
    }
}

ReadAhead::~ReadAhead() { finish(true); }

void ReadAhead::run() {
    for (uint64_t at = 0; at < size_ && !stop_.load(std::memory_order_relaxed); at += kWindow) {
        const uint64_t n = std::min(kWindow, size_ - at);
        if (resident(begin_ + at, n)) continue;
        // EINVAL (a kernel without it), EFAULT (the file shrank), ENOMEM: the load's faults do the rest.
        if (madvise(const_cast<uint8_t*>(begin_ + at), size_t(n), MADV_POPULATE_READ) != 0) return;
        windows_read_.fetch_add(1);
    }
}

void ReadAhead::finish(bool stop_first) {
    if (stop_first) stop_.store(true);
    std::lock_guard<std::mutex> lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
}

}  // namespace ggufsm::gguf
