// The read-ahead of a mapped model file (read_ahead.h).
#include "gguf/read_ahead.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14's value, for C libraries older than the kernel
#endif

namespace ggufsm::gguf {

namespace {

// True when every page of [at, at + n) is in the page cache (a warm file is left to the load).
bool resident(const uint8_t* at, uint64_t n, std::vector<unsigned char>& pages) {
    const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
    pages.resize(size_t((n + page - 1) / page));
    if (mincore(const_cast<uint8_t*>(at), size_t(n), pages.data()) != 0) return false;
    return std::all_of(pages.begin(), pages.end(), [](unsigned char p) { return (p & 1) != 0; });
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
    std::vector<unsigned char> pages;
    for (uint64_t at = 0; at < size_ && !stop_.load(std::memory_order_relaxed); at += kWindow) {
        const uint64_t n = std::min(kWindow, size_ - at);
        if (resident(begin_ + at, n, pages)) continue;
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
