// Measurements for the kernel benchmark (ggufsm bench kernels): the machine's
// streaming read bandwidth and the mat-vec time over weights that do not fit
// in cache. Timed in C++ so no Python call overhead lands in the figures.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/matmul.h"
#include "runtime/thread_pool.h"

namespace ggufsm {

// A buffer of `bytes` bytes (choose it much larger than the last-level
// cache), allocated and touched once, whose streaming sum measures the read
// bandwidth as often as asked: the kernel benchmark samples it between the
// timings of each cell, so that a cell and its bandwidth share their moment
// on a machine whose memory bandwidth drifts (a VM beside other tenants).
class ReadBandwidthProbe {
public:
    ReadBandwidthProbe(size_t bytes, ThreadPool& pool);
    // Best-of-`repeats` GB/s (1e9 bytes/s) of the sum, split over the pool's threads.
    double best_gbs(int repeats, ThreadPool& pool) const;

private:
    std::unique_ptr<uint64_t[]> buffer_;
    size_t words_;
};

// A probe of `bytes` bytes, used once.
double read_bandwidth_gbs(size_t bytes, int repeats, ThreadPool& pool);

// Best-of-`repeats` seconds per mat-vec y = W x, cycling through the weight
// copies in `weights` (same type and shape, together larger than the cache,
// so every call streams its weights from memory as a decode step does).
// x: [n][cols] f32 (n = 1 one session's step, 2 .. 8 a batched step of n sessions);
// activations are quantized once, outside the timing, as a
// forward pass quantizes once for several weights.
double matvec_seconds(const std::vector<WeightView>& weights, const float* x, int64_t n, int repeats, ThreadPool& pool);

// Best-of-`repeats` seconds per matmul y [n][rows] = x [n][cols] . W^T: a
// prefill's product, the weights cache-resident after the first call (the
// arithmetic, not the memory, is what is timed). x is quantized once,
// outside the timing, as matvec_seconds does.
double matmul_seconds(const WeightView& w, const float* x, int64_t n, int repeats, ThreadPool& pool);

// Best-of-`repeats` seconds per parallel_for of an empty job over `n` items,
// averaged over `calls` back-to-back calls: the pool's handoff cost (wake,
// claim, finish) as a burst of a decode step's matmuls pays it.
double parallel_for_overhead_seconds(int64_t n, int calls, int repeats, ThreadPool& pool);

}  // namespace ggufsm
