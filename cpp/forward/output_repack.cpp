#include "forward/output_repack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "kernels/repack.h"
#include "runtime/huge_pages.h"
#include "runtime/thread_pool.h"

namespace ggufsm {

namespace {

std::atomic<bool> output_repack_on{true};

// Rows repacked between two looks at the cancel flag: a free waits at most one such chunk (Gemma 3: 1024
// of its 262144 rows, 680 KB).
constexpr int64_t kChunkRows = 1024;

}  // namespace

void set_output_repack(bool on) { output_repack_on.store(on); }
bool output_repack_enabled() { return output_repack_on.load(); }

OutputRepack::OutputRepack(const WeightView& file_view, bool release_file_pages)
    : file_view_(file_view), packed_view_(file_view), release_file_pages_(release_file_pages), current_(&file_view_) {}

OutputRepack::~OutputRepack() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        cancel_.store(true);
        changed_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    if (copy_) munmap(copy_, copy_bytes_);
}

const WeightView& OutputRepack::enter() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ == State::Ready && in_flight_ == 0) {
        current_.store(&packed_view_, std::memory_order_release);
        state_ = State::Swapped;
        changed_.notify_all();
    }
    ++in_flight_;
    return *current_.load(std::memory_order_relaxed);
}

void OutputRepack::leave() {
    std::lock_guard<std::mutex> lock(mutex_);
    --in_flight_;
    if (!started_) {
        started_ = true;
        thread_ = std::thread(&OutputRepack::run, this);
    }
    if (in_flight_ == 0) changed_.notify_all();
}

void OutputRepack::start() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (started_) return;
    started_ = true;
    thread_ = std::thread(&OutputRepack::run, this);
}

OutputRepack::State OutputRepack::wait_done() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return state_ == State::Swapped || state_ == State::Cancelled || state_ == State::Failed; });
    // Swapped: wait for the file pages' release too (the thread's last step).
    changed_.wait(lock, [&] { return released_ || state_ != State::Swapped; });
    return state_;
}

OutputRepack::State OutputRepack::state() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_;
}

size_t OutputRepack::copy_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return copy_bytes_;
}

size_t OutputRepack::huge_page_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return copy_ && (state_ == State::Ready || state_ == State::Swapped) ? anon_huge_page_bytes(copy_) : 0;
}

void OutputRepack::run() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        state_ = State::Repacking;
    }
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t bytes = rows8_bytes(file_view_), mapped = (bytes + page - 1) / page * page;
    uint8_t* copy = map_huge_page_aligned(mapped);
    bool cancelled = false;
    if (copy) {
        madvise(copy, mapped, MADV_DONTDUMP);  // a copy of the file's bytes has no place in a core dump
        // One thread: the pool is the steps' (the 2-core host's other core is theirs too); this costs
        // the steps only bandwidth, and only until the swap.
        ThreadPool one(1);
        const uint8_t* from = static_cast<const uint8_t*>(file_view_.data);
        const size_t group_bytes = rows8_group_bytes(file_view_);
        for (int64_t r = 0; r < file_view_.rows && !cancelled; r += kChunkRows) {
            WeightView part = file_view_;
            part.rows = std::min(kChunkRows, file_view_.rows - r);
            part.data = from + size_t(r) * file_view_.row_bytes;
            repack_rows8(part, copy + size_t(r / kRows8) * group_bytes, one);
            cancelled = cancel_.load();
        }
        mprotect(copy, mapped, PROT_READ);
    }
    std::unique_lock<std::mutex> lock(mutex_);
    copy_ = copy;
    copy_bytes_ = copy ? mapped : 0;
    if (!copy || cancelled) {
        state_ = copy ? State::Cancelled : State::Failed;
        changed_.notify_all();
        return;
    }
    packed_view_ = rows8_view(file_view_, copy);
    state_ = State::Ready;
    changed_.notify_all();
    // The swap: here when no pass is in flight, else by the first enter() that finds none.
    changed_.wait(lock, [&] { return state_ != State::Ready || in_flight_ == 0 || cancel_.load(); });
    if (state_ == State::Ready && in_flight_ == 0) {
        current_.store(&packed_view_, std::memory_order_release);
        state_ = State::Swapped;
        changed_.notify_all();
    }
    if (state_ != State::Swapped) {
        state_ = State::Cancelled;
        changed_.notify_all();
        return;
    }
    lock.unlock();
    // No pass reads the file's layout any more (every pass entered after the swap): its whole pages of the
    // matrix leave this process's RSS (advice only: they stay in the page cache).
    if (release_file_pages_) {
        const uintptr_t lo = (reinterpret_cast<uintptr_t>(file_view_.data) + page - 1) / page * page;
        const uintptr_t hi = (reinterpret_cast<uintptr_t>(file_view_.data) + bytes) / page * page;
        if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    }
    lock.lock();
    released_ = true;
    changed_.notify_all();
}

}  // namespace ggufsm
