#include "bench/measure.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "errors.h"

namespace ggufsm {

namespace {
double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes, ThreadPool& pool) : words_(bytes / 8) {
    if (words_ < 1024) throw Error(code::InvalidInput, "ReadBandwidthProbe: need >= 8 KiB");
    buffer_.reset(new uint64_t[words_]);
    // Touch every page first (per thread, so pages land near the reader).
    uint64_t* buffer = buffer_.get();
    pool.parallel_for(static_cast<int64_t>(words_), [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) buffer[i] = static_cast<uint64_t>(i);
    });
}

double ReadBandwidthProbe::best_gbs(int repeats, ThreadPool& pool) const {
    if (repeats < 1) throw Error(code::InvalidInput, "ReadBandwidthProbe: need >= 1 repeat");
    const uint64_t* buffer = buffer_.get();
    std::vector<uint64_t> sums(pool.size() * 8);
    double best = 0;
    for (int r = 0; r < repeats; ++r) {
        const double start = now_seconds();
        pool.parallel_for(static_cast<int64_t>(words_), [&](int64_t b, int64_t e, int t) {
            // Integer sums vectorize at any ISA level (no float reassociation needed).
            uint64_t acc[8] = {};
            int64_t i = b;
            for (; i + 8 <= e; i += 8) {
                for (int k = 0; k < 8; ++k) acc[k] += buffer[i + k];
            }
            for (; i < e; ++i) acc[0] += buffer[i];
            std::memcpy(&sums[t * 8], acc, sizeof acc);
        });
        const double seconds = now_seconds() - start;
        best = std::max(best, static_cast<double>(words_ * 8) / seconds / 1e9);
    }
    volatile uint64_t sink = 0;
    for (uint64_t s : sums) sink = sink + s;
    return best;
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

}  // namespace ggufsm
