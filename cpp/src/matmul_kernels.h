// Internal: the per-ISA kernel tables behind matmul(). Each variant file
// (matmul_scalar.cpp, matmul_avx2.cpp, matmul_avx512.cpp) fills one table;
// an entry left empty in a SIMD table falls back to the scalar kernel.
#pragma once
#include <cstdint>

#include "ggufsm/matmul.h"

namespace ggufsm::kernels {

// y[i * w.rows + r] = dot(row r of w, activation row i) for r in [row_begin, row_end), i in [0, x.n()).
using MatmulRowsFn = void (*)(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin,
                              int64_t row_end);

struct KernelTable {
    MatmulRowsFn rows[31] = {};  // indexed by ggml type id
};

const KernelTable& scalar_table();
const KernelTable& avx2_table();
const KernelTable& avx512_table();

// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block.
inline void k_scale_min(const uint8_t* scales, int j, int& sc, int& m) {
    if (j < 4) {
        sc = scales[j] & 63;
        m = scales[j + 4] & 63;
    } else {
        sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
        m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

// The 16 signed scales of a Q3_K super-block.
inline void q3_k_scales(const uint8_t* packed, int out[16]) {
    for (int j = 0; j < 16; ++j) {
        const int low = (packed[j % 8] >> (4 * (j / 8))) & 0xF;
        const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (low | (high << 4)) - 32;
    }
}

// Drives a per-row dot product over rows x activations. The weight row stays
// in L1 while every activation row is dotted with it (prefill); for one
// activation row this is a plain mat-vec streaming the weights once.
// Dot(const uint8_t* weight_row, const QuantizedActivations& x, int64_t i, int64_t cols) -> float
template <typename Dot>
inline void drive_rows(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin,
                       int64_t row_end, Dot dot) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t n = x.n();
    for (int64_t r = row_begin; r < row_end; ++r) {
        const uint8_t* row = base + r * w.row_bytes;
        for (int64_t i = 0; i < n; ++i) y[i * w.rows + r] = dot(row, x, i, w.cols);
    }
}

}  // namespace ggufsm::kernels
