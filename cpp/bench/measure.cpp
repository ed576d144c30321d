#include "bench/measure.h"

#include <sys/mman.h>
#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "errors.h"
#include "runtime/huge_pages.h"

namespace ggufsm {

namespace {
double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
// As the m=1 kernels (kernels/x86/matmul.cpp, kRowPrefetchBytes): a line this far ahead is fetched.
constexpr int64_t kProbePrefetchWords = 4096 / 8;

// Sums words [b, e) into acc; Prefetch also fetches each line kProbePrefetchWords ahead (a
// prefetch never faults, so the last lines' prefetches past the buffer's end are harmless).
template <bool kPrefetch>
void sum_words(const uint64_t* buffer, int64_t b, int64_t e, uint64_t* acc) {
    int64_t i = b;
    for (; i + 8 <= e; i += 8) {
        if (kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(buffer + i + kProbePrefetchWords), _MM_HINT_T0);
        // Integer sums vectorize at any ISA level (no float reassociation needed).
        for (int k = 0; k < 8; ++k) acc[k] += buffer[i + k];
    }
    for (; i < e; ++i) acc[0] += buffer[i];
}
}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes, ThreadPool& pool, bool huge_pages) : words_(bytes / 8), huge_pages_(huge_pages) {
    if (words_ < 1024) throw Error(code::InvalidInput, "ReadBandwidthProbe: need >= 8 KiB");
    // 2 MiB-aligned (transparent huge pages need aligned ranges): over-map by one huge page, trim.
    const size_t size = (words_ * 8 + kHugePage - 1) / kHugePage * kHugePage;
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw Error(code::InvalidInput, "ReadBandwidthProbe: cannot map " + std::to_string(size) + " bytes");
    uint8_t* base = static_cast<uint8_t*>(raw);
    const size_t lead = (kHugePage - reinterpret_cast<uintptr_t>(base) % kHugePage) % kHugePage;
    if (lead) munmap(base, lead);
    if (kHugePage - lead) munmap(base + lead + size, kHugePage - lead);
    buffer_ = reinterpret_cast<uint64_t*>(base + lead);
    mapped_bytes_ = size;
    madvise(buffer_, size, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);  // advice only
    // Touch every page first (per thread, so pages land near the reader).
    uint64_t* buffer = buffer_;
    pool.parallel_for(static_cast<int64_t>(words_), [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) buffer[i] = static_cast<uint64_t>(i);
    });
}

ReadBandwidthProbe::~ReadBandwidthProbe() {
    if (buffer_) munmap(buffer_, mapped_bytes_);
}

size_t ReadBandwidthProbe::huge_page_bytes() const { return anon_huge_page_bytes(buffer_); }

double ReadBandwidthProbe::pass_gbs(ProbeRead read, ThreadPool& pool) const {
    const uint64_t* buffer = buffer_;
    std::vector<uint64_t> sums(pool.size() * 8);
    const double start = now_seconds();
    pool.parallel_for(static_cast<int64_t>(words_), [&](int64_t b, int64_t e, int t) {
        uint64_t acc[8] = {};
        if (read == ProbeRead::Prefetch) {
            sum_words<true>(buffer, b, e, acc);
        } else {
            sum_words<false>(buffer, b, e, acc);
        }
        for (int k = 0; k < 8; ++k) sums[t * 8 + k] += acc[k];
    });
    const double seconds = now_seconds() - start;
    volatile uint64_t sink = 0;
    for (uint64_t s : sums) sink = sink + s;
    return static_cast<double>(words_ * 8) / seconds / 1e9;
}

double ReadBandwidthProbe::sample_gbs(ThreadPool& pool) const {
    double best = 0;
    for (int read = 0; read < kProbeReads; ++read) best = std::max(best, pass_gbs(static_cast<ProbeRead>(read), pool));
    return best;
}

double ReadBandwidthProbe::best_gbs(int repeats, ThreadPool& pool) const {
    if (repeats < 1) throw Error(code::InvalidInput, "ReadBandwidthProbe: need >= 1 repeat");
    double best = 0;
    for (int r = 0; r < repeats; ++r) best = std::max(best, sample_gbs(pool));
    return best;
}

namespace {
// A spin barrier for the short streams' threads: the last to arrive releases the round.
class SpinBarrier {
public:
    explicit SpinBarrier(int threads) : threads_(threads) {}
    void arrive() {
        const int round = round_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == threads_) {
            arrived_.store(0, std::memory_order_relaxed);
            round_.store(round + 1, std::memory_order_release);
            return;
        }
        while (round_.load(std::memory_order_acquire) == round) _mm_pause();
    }

private:
    const int threads_;
    alignas(64) std::atomic<int> arrived_{0};
    alignas(64) std::atomic<int> round_{0};
};

constexpr size_t kStreamGapBytes = size_t(1) << 20;
}  // namespace

ReadBandwidthProbe::ShortStreams ReadBandwidthProbe::short_streams(int threads, size_t bytes, ProbeRead read, int rounds,
                                                                   size_t lead_bytes, int64_t lead_ns, Lead lead) const {
    const size_t stride = (bytes + kStreamGapBytes + 4095) / 4096 * 4096;
    if (threads < 1 || rounds < 1 || bytes < 64 || stride * size_t(threads) > words_ * 8) {
        throw Error(code::InvalidInput, "short_streams: need >= 1 thread, >= 1 round and 64 bytes <= a stream, with one stream "
                                        "a thread (and 1 MiB apart) fitting the " + std::to_string(words_ * 8) + "-byte buffer");
    }
    const size_t slots = words_ * 8 / stride;
    ShortStreams out;
    out.wall_s.resize(size_t(rounds));
    out.thread_s.resize(size_t(rounds) * size_t(threads));
    std::vector<double> starts(out.thread_s.size()), ends(out.thread_s.size());
    std::vector<uint64_t> sums(size_t(threads) * 8);
    SpinBarrier barrier(threads);
    const auto stream = [&](int t) {
        for (int r = 0; r < rounds; ++r) {
            const size_t slot = (size_t(r) * size_t(threads) + size_t(t)) % slots;
            const uint64_t* begin = buffer_ + slot * stride / 8;
            if (lead_bytes) {
                uint64_t touched = 0;
                for (size_t k = 0; k < std::min(lead_bytes, bytes); k += 64) {
                    const char* line = reinterpret_cast<const char*>(begin) + k;
                    if (lead == Lead::PrefetchL1) {
                        _mm_prefetch(line, _MM_HINT_T0);
                    } else if (lead == Lead::PrefetchL2) {
                        _mm_prefetch(line, _MM_HINT_T1);
                    } else {
                        touched += *reinterpret_cast<const uint64_t*>(line);
                    }
                }
                sums[size_t(t) * 8] += touched;
                const double until = now_seconds() + double(lead_ns) * 1e-9;
                while (now_seconds() < until) _mm_pause();
            }
            barrier.arrive();
            const double start = now_seconds();
            uint64_t acc[8] = {};
            if (read == ProbeRead::Prefetch) {
                sum_words<true>(begin, 0, int64_t(bytes / 8), acc);
            } else {
                sum_words<false>(begin, 0, int64_t(bytes / 8), acc);
            }
            ends[size_t(r) * size_t(threads) + size_t(t)] = now_seconds();
            starts[size_t(r) * size_t(threads) + size_t(t)] = start;
            for (int k = 0; k < 8; ++k) sums[size_t(t) * 8 + size_t(k)] += acc[k];
            barrier.arrive();  // no thread starts the next round's lead while another still streams
        }
    };
    std::vector<std::thread> others;
    for (int t = 1; t < threads; ++t) others.emplace_back(stream, t);
    stream(0);
    for (std::thread& t : others) t.join();
    for (int r = 0; r < rounds; ++r) {
        const size_t first = size_t(r) * size_t(threads);
        const double start = *std::min_element(starts.begin() + first, starts.begin() + first + threads);
        const double end = *std::max_element(ends.begin() + first, ends.begin() + first + threads);
        out.wall_s[size_t(r)] = end - start;
        for (int t = 0; t < threads; ++t) out.thread_s[first + size_t(t)] = ends[first + size_t(t)] - starts[first + size_t(t)];
    }
    volatile uint64_t sink = 0;
    for (uint64_t s : sums) sink = sink + s;
    return out;
}

double read_bandwidth_gbs(size_t bytes, int repeats, ThreadPool& pool) {
    return ReadBandwidthProbe(bytes, pool).best_gbs(repeats, pool);
}

double matvec_seconds(const std::vector<WeightView>& weights, const float* x, int64_t n, int repeats, ThreadPool& pool) {
    if (weights.empty() || repeats < 1 || n < 1) throw Error(code::InvalidInput, "matvec_seconds: need >= 1 weight and >= 1 repeat");
    const WeightView& first = weights.front();
    QuantizedActivations q;
    q.quantize(x, n, first.cols, first.type, pool);
    std::vector<float> y(static_cast<size_t>(n * first.rows));
    matmul(weights.back(), q, y.data(), pool);  // warm the pool and the code
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
        const double start = now_seconds();
        for (const WeightView& w : weights) matmul(w, q, y.data(), pool);
        best = std::min(best, (now_seconds() - start) / static_cast<double>(weights.size()));
    }
    return best;
}

double matmul_seconds(const WeightView& w, const float* x, int64_t n, int repeats, ThreadPool& pool) {
    if (n < 1 || repeats < 1) throw Error(code::InvalidInput, "matmul_seconds: need n >= 1 and >= 1 repeat");
    QuantizedActivations q;
    q.quantize(x, n, w.cols, w.type, pool);
    std::vector<float> y(static_cast<size_t>(n * w.rows));
    matmul(w, q, y.data(), pool);  // warm the pool, the code and the weights
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
        const double start = now_seconds();
        matmul(w, q, y.data(), pool);
        best = std::min(best, now_seconds() - start);
    }
    return best;
}

double parallel_for_overhead_seconds(int64_t n, int calls, int repeats, ThreadPool& pool) {
    if (n < 1 || calls < 1 || repeats < 1) {
        throw Error(code::InvalidInput, "parallel_for_overhead_seconds: need n >= 1, calls >= 1 and repeats >= 1");
    }
    std::vector<int64_t> touched(static_cast<size_t>(pool.size()) * 8);  // 64 bytes per thread: no false sharing
    const auto empty_job = [&](int64_t begin, int64_t end, int t) { touched[t * 8] += end - begin; };
    pool.parallel_for(n, empty_job);
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
        const double start = now_seconds();
        for (int c = 0; c < calls; ++c) pool.parallel_for(n, empty_job);
        best = std::min(best, (now_seconds() - start) / calls);
    }
    return best;
}

uint64_t stream_sum(const uint8_t* data, size_t bytes, bool non_temporal) {
    constexpr size_t kAhead = 4096;
    uint64_t acc[8] = {};
    const auto* words = reinterpret_cast<const uint64_t*>(data);
    const size_t n = bytes / 8;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        const char* ahead = reinterpret_cast<const char*>(words + i) + kAhead;
        if (non_temporal) {
            _mm_prefetch(ahead, _MM_HINT_NTA);
        } else {
            _mm_prefetch(ahead, _MM_HINT_T0);
        }
        for (int k = 0; k < 8; ++k) acc[k] += words[i + k];
    }
    uint64_t sum = 0;
    for (uint64_t a : acc) sum += a;
    return sum;
}

}  // namespace ggufsm
