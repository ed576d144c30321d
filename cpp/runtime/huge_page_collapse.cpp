#include "runtime/huge_page_collapse.h"

#include <sys/mman.h>

#include <cerrno>

#include "runtime/huge_pages.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1; older headers lack the name, older kernels refuse it (EINVAL)
#endif

namespace ggufsm {

namespace {
std::atomic<bool> collapse_on{true};
}  // namespace

void set_layer_page_collapse(bool on) { collapse_on.store(on); }
bool layer_page_collapse_enabled() { return collapse_on.load(); }

HugePageCollapse::HugePageCollapse(uint8_t* start, size_t bytes) : start_(start), bytes_(bytes) {}

HugePageCollapse::~HugePageCollapse() {
    cancel_.store(true);
    std::thread thread;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        thread = std::move(thread_);
    }
    if (thread.joinable()) thread.join();
}

void HugePageCollapse::start() {
    if (started_.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (started_.exchange(true)) return;
    thread_ = std::thread(&HugePageCollapse::run, this);
}

HugePageCollapse::State HugePageCollapse::wait_done() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return state_ == State::Done || state_ == State::Cancelled; });
    return state_;
}

HugePageCollapse::State HugePageCollapse::state() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_;
}

void HugePageCollapse::run() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        state_ = State::Collapsing;
    }
    // The mapping was advised MADV_NOHUGEPAGE (so a kernel with THP "always" keeps 4 KiB pages at load),
    // which MADV_COLLAPSE honours: lifted first. A kernel that refuses the collapse leaves khugepaged the
    // advice to act on.
    madvise(start_, bytes_, MADV_HUGEPAGE);
    bool cancelled = false;
    for (size_t at = 0; at + kHugePageBytes <= bytes_; at += kHugePageBytes) {
        if ((cancelled = cancel_.load())) break;
        if (madvise(start_ + at, kHugePageBytes, MADV_COLLAPSE) != 0 && errno == EINVAL) break;  // not this kernel's
    }
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = cancelled ? State::Cancelled : State::Done;
    changed_.notify_all();
}

}  // namespace ggufsm
