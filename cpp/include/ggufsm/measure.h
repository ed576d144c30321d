// Measurements for the kernel benchmark (ggufsm bench kernels): the machine's
// streaming read bandwidth and the mat-vec time over weights that do not fit
// in cache. Timed in C++ so no Python call overhead lands in the figures.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ggufsm/matmul.h"
#include "ggufsm/thread_pool.h"

namespace ggufsm {

// Best-of-`repeats` GB/s (1e9 bytes/s) of a streaming sum over a buffer of
// `bytes` bytes (choose it much larger than the last-level cache), split over
// the pool's threads.
double read_bandwidth_gbs(size_t bytes, int repeats, ThreadPool& pool);

// Best-of-`repeats` seconds per mat-vec y = W x, cycling through the weight
// copies in `weights` (same type and shape, together larger than the cache,
// so every call streams its weights from memory as a decode step does).
// x: [cols] f32; activations are quantized once, outside the timing, as a
// forward pass quantizes once for several weights.
double matvec_seconds(const std::vector<WeightView>& weights, const float* x, int repeats, ThreadPool& pool);

// Best-of-`repeats` seconds per parallel_for of an empty job over `n` items,
// averaged over `calls` back-to-back calls: the pool's handoff cost (wake,
// claim, finish) as a burst of a decode step's matmuls pays it.
double parallel_for_overhead_seconds(int64_t n, int calls, int repeats, ThreadPool& pool);

}  // namespace ggufsm
