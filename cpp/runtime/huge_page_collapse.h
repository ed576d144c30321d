// A mapping written on 4 KiB pages at load and moved onto 2 MiB pages after the first pass, on a thread of
// its own (MADV_COLLAPSE): the repacked layer matrices (forward/weights.cpp).
//
// Why not 2 MiB pages from the start: on a guest with free page reporting (virtio_balloon,
// page_reporting_order 9 here) the free 2 MiB blocks are the ones handed back to the host, so a fresh huge
// page is nearly always one the host must back again at its first touch, while 4 KiB pages come mostly
// from smaller free blocks it still backs. Measured on this VM (64 MiB, one thread, memset): 0.46-0.51 s
// on fresh 2 MiB pages against 0.09-0.12 s on 4 KiB ones; Gemma 3's repack (63.8 MiB) is on its first
// token's path. Why 2 MiB pages after all: a decode step streams these matrices, and on 4 KiB pages the
// hardware prefetchers start over at every page (15.7 GB/s against 21.3 on 2 MiB, one thread). The
// collapse copies the pages, so every byte and every result stays the same; a reader that touches a
// range while it is collapsed waits in the kernel for it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace ggufsm {

class HugePageCollapse {
public:
    enum class State { Waiting, Collapsing, Done, Cancelled };

    // start: 2 MiB aligned; bytes: the mapping's length (a partial last 2 MiB stays on 4 KiB pages).
    HugePageCollapse(uint8_t* start, size_t bytes);
    // Cancels a collapse under way (between 2 MiB pieces) and waits for its thread.
    ~HugePageCollapse();
    HugePageCollapse(const HugePageCollapse&) = delete;
    HugePageCollapse& operator=(const HugePageCollapse&) = delete;

    // Starts the thread, once (the first pass's end calls it for every pass: after the first, one load).
    void start();
    // For tests and benches: wait until the thread has ended (Done or Cancelled; no clock).
    State wait_done();
    State state() const;

private:
    void run();

    uint8_t* const start_;
    const size_t bytes_;
    std::atomic<bool> started_{false};
    std::atomic<bool> cancel_{false};
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    State state_ = State::Waiting;  // guarded by mutex_
    std::thread thread_;            // guarded by mutex_ until joined
};

// Whether new models write their repacked layer matrices on 4 KiB pages and collapse them after the first
// pass (default on), or fault them in as 2 MiB pages at load (off): for A/B benches and the tests across
// the collapse.
void set_layer_page_collapse(bool on);
bool layer_page_collapse_enabled();

}  // namespace ggufsm
