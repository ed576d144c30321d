// The SIGBUS guard over model mappings (fault_guard.h).
#include "gguf/fault_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace ggufsm::gguf {

// The handler reads these without a lock (a signal handler may not take one):
// slots live in blocks that are never freed, claimed with a flag, and a range
// is visible to the handler only while `begin` is non-zero.
struct GuardedRange {
    std::atomic<bool> claimed{false};
    std::atomic<uintptr_t> begin{0}, end{0};
    std::atomic<bool> faulted{false};
};

namespace {

constexpr int kRangesPerBlock = 64;
struct Block {
    GuardedRange ranges[kRangesPerBlock];
    std::atomic<Block*> next{nullptr};
};

Block first_block;
std::mutex install_mutex;  // registration and handler installation (never taken by the handler)
struct sigaction previous {};

void handle_sigbus(int signal_number, siginfo_t* info, void* context);

bool ours_installed() {
    struct sigaction current {};
    sigaction(SIGBUS, nullptr, &current);
    return (current.sa_flags & SA_SIGINFO) && current.sa_sigaction == &handle_sigbus;
}

// (Re)installs the handler, keeping whatever was there as the one to chain to:
// Python's faulthandler, enabled after a model was mapped, would otherwise
// take SIGBUS from us.
void install_locked() {
    if (ours_installed()) return;
    struct sigaction ours {};
    ours.sa_sigaction = &handle_sigbus;
    ours.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&ours.sa_mask);
    sigaction(SIGBUS, &ours, &previous);
}

bool absorb(uintptr_t address) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    for (Block* block = &first_block; block != nullptr; block = block->next.load(std::memory_order_acquire)) {
        for (GuardedRange& range : block->ranges) {
            const uintptr_t begin = range.begin.load(std::memory_order_acquire);
            const uintptr_t end = range.end.load(std::memory_order_acquire);
            if (begin == 0 || address < begin || address >= end) continue;
            const uintptr_t from = address & ~(page - 1);
            // mmap is a plain system call here; the zero pages stay part of the
            // mapping's range, so its munmap releases them too.
            void* zeros = mmap(reinterpret_cast<void*>(from), end - from, PROT_READ,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (zeros == MAP_FAILED) return false;
            range.faulted.store(true, std::memory_order_release);
            return true;
        }
    }
    return false;
}

void handle_sigbus(int signal_number, siginfo_t* info, void* context) {
    if (info != nullptr && info->si_code > 0 && absorb(reinterpret_cast<uintptr_t>(info->si_addr))) return;
    // Not a fault in a model mapping: what would have happened without us.
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction != nullptr) previous.sa_sigaction(signal_number, info, context);
        return;
    }
    if (previous.sa_handler == SIG_IGN) return;
    if (previous.sa_handler == SIG_DFL || previous.sa_handler == nullptr) {
        // Restore the default action; the faulting instruction runs again and the fault kills as before.
        struct sigaction fallback {};
        fallback.sa_handler = SIG_DFL;
        sigemptyset(&fallback.sa_mask);
        sigaction(SIGBUS, &fallback, nullptr);
        if (info == nullptr || info->si_code <= 0) raise(signal_number);  // sent, not a fault: send it again
        return;
    }
    previous.sa_handler(signal_number);
}

}  // namespace

GuardedRange* register_mapping(const void* begin, uint64_t size) {
    std::lock_guard<std::mutex> lock(install_mutex);
    install_locked();
    for (Block* block = &first_block;; block = block->next.load(std::memory_order_acquire)) {
        for (GuardedRange& range : block->ranges) {
            bool expected = false;
            if (!range.claimed.compare_exchange_strong(expected, true)) continue;
            range.faulted.store(false);
            range.end.store(reinterpret_cast<uintptr_t>(begin) + size, std::memory_order_release);
            range.begin.store(reinterpret_cast<uintptr_t>(begin), std::memory_order_release);
            return &range;
        }
        if (block->next.load(std::memory_order_acquire) == nullptr) block->next.store(new Block, std::memory_order_release);
    }
}

void unregister_mapping(GuardedRange* range) {
    if (range == nullptr) return;
    std::lock_guard<std::mutex> lock(install_mutex);
    range->begin.store(0, std::memory_order_release);
    range->end.store(0, std::memory_order_release);
    range->claimed.store(false);
}

bool mapping_faulted(const GuardedRange* range) {
    return range != nullptr && range->faulted.load(std::memory_order_acquire);
}

}  // namespace ggufsm::gguf
