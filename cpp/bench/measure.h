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

// How the probe reads its buffer (each pass reads every byte once, split over the pool's threads).
enum class ProbeRead {
    Sum,       // a plain streaming sum: the hardware prefetchers alone (the probe of sessions 1-5)
    Prefetch,  // the same sum with a software prefetch of each line 4 KiB ahead, as the m=1 kernels issue it
};
constexpr int kProbeReads = 2;

// A buffer of `bytes` bytes (choose it much larger than the last-level
// cache), allocated and touched once, whose streaming sum measures the read
// bandwidth as often as asked: the benchmarks sample it before and after each
// timed run, so that a run and its bandwidth share their moment on a machine
// whose memory bandwidth drifts (a VM beside other tenants).
//
// The limit a kernel is held to is the fastest rate a reader reaches here, so
// a sample is one pass of every ProbeRead and keeps the fastest; the buffer is
// 2 MiB-aligned and advised MADV_HUGEPAGE (huge_pages = true), as the weights'
// copy is, or advised MADV_NOHUGEPAGE for the comparison of placements.
class ReadBandwidthProbe {
public:
    ReadBandwidthProbe(size_t bytes, ThreadPool& pool, bool huge_pages = true);
    ~ReadBandwidthProbe();
    ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
    ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;

    // GB/s (1e9 bytes/s) of one pass read the `read` way.
    double pass_gbs(ProbeRead read, ThreadPool& pool) const;
    // One sample of the limit: one pass of every ProbeRead, the fastest.
    double sample_gbs(ThreadPool& pool) const;
    // Best of `repeats` samples.
    double best_gbs(int repeats, ThreadPool& pool) const;
    // Bytes of the buffer the kernel backs with 2 MiB pages now (AnonHugePages).
    size_t huge_page_bytes() const;
    bool huge_pages() const { return huge_pages_; }

    // Short streams, as a decode step's products read them: in each of `rounds` rounds, `threads` threads
    // of their own (not a pool's: each waits for the others at a spin barrier) each read `bytes` of cold
    // data right after the barrier, the `read` way. lead_bytes > 0: before the barrier each thread first
    // asks for the first lead_bytes of its stream (the `lead` way) and spins lead_ns, as a member that
    // reads ahead its next share while a small op runs. Each stream starts at least 1 MiB past the last
    // one's end (past what the hardware prefetchers run ahead) and the rounds walk the whole buffer, so
    // every stream starts cold. Returns per round the wall seconds from the first thread's start to the
    // last one's end, then per round and thread that thread's seconds.
    struct ShortStreams {
        std::vector<double> wall_s;    // [round]
        std::vector<double> thread_s;  // [round * threads + thread]
    };
    // How the lead asks for its lines: a software prefetch into L1 (as the team's read-ahead, thread_pool.h)
    // or into L2, or plain loads (certain to bring them, the core waiting for none).
    enum class Lead { PrefetchL1, PrefetchL2, Load };
    ShortStreams short_streams(int threads, size_t bytes, ProbeRead read, int rounds, size_t lead_bytes = 0,
                               int64_t lead_ns = 0, Lead lead = Lead::PrefetchL1) const;

private:
    uint64_t* buffer_ = nullptr;
    size_t words_;
    size_t mapped_bytes_ = 0;
    bool huge_pages_;
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

// One thread's streaming sum of [data, data + bytes), each line fetched 4 KiB ahead with the prefetch hint
// `non_temporal` picks (NTA, else T0, as the m=1 kernels): whether a weight-sized stream read with the
// non-temporal hint leaves the last-level cache's other lines in place (tools/cold_after_stream.py: the
// handles' Python between two batched passes runs cold because the weight stream evicts it).
uint64_t stream_sum(const uint8_t* data, size_t bytes, bool non_temporal);  // a partial last 64-byte line is not read

}  // namespace ggufsm
