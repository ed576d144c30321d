// Internal to kernels/x86/: the row drivers and the weight-stream prefetch
// that the x86 matmul kernels share (kernels/x86/matmul.cpp and, in the
// AVX-512 variant, kernels/x86/avx512/matmul_32x4.cpp).
#pragma once
#include "kernels/x86/simd.h"

namespace ggufsm::kernels::GGUFSM_ISA {
namespace {

// Software prefetch of the weight stream, one per step of a kernel, this far
// ahead. The hardware prefetchers stop at 4 KiB page boundaries, so a kernel
// that eats a page faster than DRAM latency stalls at every page start;
// requesting two pages ahead covers that (docs/benchmarks.md, "Kernel
// history", has the distances tried). A burst of prefetches per row instead
// measured worse than none. Prefetches never fault; past the end of the
// weights they cost at most 8 KiB of reads. The k-quant and Q8_0 kernels
// leave the stream to the hardware: the prefetch measured no gain or a loss
// for them.
constexpr int64_t kPrefetchBytes = 8192;
inline void prefetch_ahead(const void* p) {
    _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
}

// Rows x activation rows: Many activation rows per pass over a weight row
// (the weight block is loaded and unpacked once and dotted with each), the
// rest one by one.
constexpr int kRowsAtOnce = 4;
using DotNFn = void (*)(const uint8_t*, const QuantizedActivations&, int64_t, int64_t, float*);

template <DotNFn DotMany, DotNFn DotOne, int Many = kRowsAtOnce>
void rows_n(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t n = x.n();
    float out[Many];
    for (int64_t r = row_begin; r < row_end; ++r) {
        const uint8_t* row = base + r * w.row_bytes;
        int64_t i = 0;
        for (; i + Many <= n; i += Many) {
            DotMany(row, x, i, w.cols, out);
            for (int k = 0; k < Many; ++k) y[(i + k) * w.rows + r] = out[k];
        }
        for (; i < n; ++i) DotOne(row, x, i, w.cols, &y[i * w.rows + r]);
    }
}

// A decode step of a few sessions (DecodeBatch: 2 .. kFewRowsMax activation
// rows). rows_n takes them four at a time and the rest one by one, each one a
// fresh pass over the weight row (its blocks unpacked again): 2, 3 and 5..7
// sessions paid up to three extra passes. Here the n rows go in
// passes(n) = ceil(n / Many) passes as even as they go (5 = 3 + 2, 6 = 3 + 3),
// so each weight block is unpacked at most twice per step and the weights
// stream from memory once. Every activation row has its own accumulators and
// the same operations whatever the pass width, so each session's result is
// bit-identical to its step alone (tests/kernels/test_few_rows.py).
constexpr int64_t kFewRowsMax = 8;

// Widths of the passes over n (1 <= n <= kFewRowsMax) rows: width[p] for p < count.
struct FewRowsPasses {
    int count = 0;
    int width[kFewRowsMax] = {};
};
inline FewRowsPasses few_rows_passes(int64_t n, int many) {
    FewRowsPasses p;
    p.count = static_cast<int>((n + many - 1) / many);
    for (int k = 0; k < p.count; ++k) p.width[k] = static_cast<int>(n / p.count + (k < n % p.count ? 1 : 0));
    return p;
}

// Software prefetch of every cache line of a weight row, kFewRowPrefetchBytes
// ahead, once per row before the few-row passes read it: as the one-row
// kernels do (kernels/x86/matmul.cpp, rows_one), since a step of a few
// sessions streams each row once just as a single session's does and the
// hardware prefetchers start over at each 4 KiB page. Prefetches never fault;
// past the end of the weights they read at most kFewRowPrefetchBytes more.
constexpr int64_t kFewRowPrefetchBytes = 4096;
inline void prefetch_row_ahead(const uint8_t* row, size_t row_bytes) {
    for (size_t k = 0; k < row_bytes; k += 64) _mm_prefetch(reinterpret_cast<const char*>(row) + kFewRowPrefetchBytes + k, _MM_HINT_T0);
}

static_assert(kRowsAtOnce == 4, "rows_few has a kernel for each pass width 1 .. 4");
template <DotNFn Dot4, DotNFn Dot3, DotNFn Dot2, DotNFn Dot1>
void rows_few(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const FewRowsPasses passes = few_rows_passes(x.n(), kRowsAtOnce);
    float out[kRowsAtOnce];
    for (int64_t r = row_begin; r < row_end; ++r) {
        const uint8_t* row = base + r * w.row_bytes;
        prefetch_row_ahead(row, w.row_bytes);
        int64_t i = 0;
        for (int p = 0; p < passes.count; ++p) {
            const int width = passes.width[p];
            switch (width) {
                case 4: Dot4(row, x, i, w.cols, out); break;
                case 3: Dot3(row, x, i, w.cols, out); break;
                case 2: Dot2(row, x, i, w.cols, out); break;
                default: Dot1(row, x, i, w.cols, out); break;
            }
            for (int k = 0; k < width; ++k) y[(i + k) * w.rows + r] = out[k];
            i += width;
        }
    }
}

// rows_n, but for a batch of 2 .. kFewRowsMax rows rows_few.
template <DotNFn Dot4, DotNFn Dot3, DotNFn Dot2, DotNFn Dot1>
void rows_any(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    if (x.n() >= 2 && x.n() <= kFewRowsMax) {
        rows_few<Dot4, Dot3, Dot2, Dot1>(w, x, y, row_begin, row_end);
    } else {
        rows_n<Dot4, Dot1>(w, x, y, row_begin, row_end);
    }
}

}  // namespace
}  // namespace ggufsm::kernels::GGUFSM_ISA
