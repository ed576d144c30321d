// The output matrix (Q8_0; with it a tied embedding: SmolLM2's 28 MB, Gemma 3's 170 MB) repacked into the
// Rows8 layout (kernels/repack.h) after the first pass, on a thread of its own, and swapped in at a pass
// boundary.
//
// Why after the first pass and not at load: the repack writes fresh memory, whose first touch can wait
// for the host (the balloon's page reporting): repacked at load, Gemma 3's output took its load from
// 0.12 to 1.15 s and SmolLM2's first token 1.04x warm / 1.15x cold (docs/benchmarks/96-quiet-session8.md,
// branch s8-q8out). Off the first token's path it costs only bandwidth. Why it may change layouts in the
// middle of a session: the file layout's product runs in the Rows8 kernels' float order
// (WeightView::rows8_order, KernelSet::matmul_rows_rows8_order), so every logit has the same bits before
// and after the swap.
//
// The swap: a pass brackets its reads of the output matrix between enter() and leave(); the view enter()
// returns stays the one every reader sees until the pass leaves (the swap waits for a moment with no
// pass in flight: the first enter() that finds the copy ready and no pass running makes it). After the
// swap the thread releases the file map's pages of the matrix (MADV_DONTNEED: they stay in the page
// cache), so no second copy stays resident. The copy lies on 2 MiB pages where the kernel grants them
// (the decode step streams it: Gemma 3's output measured 80% of the read probe in place on 4 KiB pages,
// 87% on a huge-page copy). The file layout's scales were checked at load (LlamaModel::
// check_q8_0_scales), so the repack checks none.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

#include "kernels/matmul.h"

namespace ggufsm {

class OutputRepack {
public:
    enum class State { Waiting, Repacking, Ready, Swapped, Cancelled, Failed };

    // file_view: the matrix in the file's layout (read with rows8_order); release_file_pages: madvise the
    // file map's whole pages inside it away after the swap (false for a copy that is not the file map).
    OutputRepack(const WeightView& file_view, bool release_file_pages);
    // Cancels a repack under way (between chunks) and waits for its thread; unmaps the copy.
    ~OutputRepack();
    OutputRepack(const OutputRepack&) = delete;
    OutputRepack& operator=(const OutputRepack&) = delete;

    // A pass starts reading the matrix: the view to read (the same for every reader until the pass
    // leaves). Swaps the copy in first when it is ready and no other pass is in flight.
    const WeightView& enter();
    // The pass is done with it. The first leave() starts the repack's thread (after the first token).
    void leave();
    // The view a pass between enter() and leave() reads.
    const WeightView& current() const { return *current_.load(std::memory_order_acquire); }

    // For tests and benches: start the thread now (once), wait until the repack ended (Ready, Swapped,
    // Cancelled or Failed; no clock), and its state.
    void start();
    State wait_done();
    State state() const;
    // Bytes of the copy (0 before the repack), and of it in 2 MiB pages.
    size_t copy_bytes() const;
    size_t huge_page_bytes() const;

private:
    void run();

    const WeightView file_view_;
    WeightView packed_view_;  // written by the thread before Ready, read only after
    const bool release_file_pages_;
    std::atomic<const WeightView*> current_;
    uint8_t* copy_ = nullptr;  // guarded by mutex_
    size_t copy_bytes_ = 0;    // guarded by mutex_

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    State state_ = State::Waiting;  // guarded by mutex_
    int in_flight_ = 0;             // passes between enter() and leave(); guarded by mutex_
    bool started_ = false;          // guarded by mutex_
    bool released_ = false;         // the file pages released after the swap; guarded by mutex_
    std::atomic<bool> cancel_{false};
    std::thread thread_;
};

// Whether new models repack their output matrix after the first pass (default on): off, it stays in the
// file's layout (read in the same float order). For A/B benches and the tests across the swap.
void set_output_repack(bool on);
bool output_repack_enabled();

}  // namespace ggufsm
