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

}  // namespace
}  // namespace ggufsm::kernels::GGUFSM_ISA
