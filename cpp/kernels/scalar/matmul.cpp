// The scalar reference matmul kernels: plain C++ over the block layouts, the
// semantics every SIMD variant must reproduce (tests/kernels/test_isa_variants.py).
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernel_set.h"
#include "kernels/quant.h"
#include "kernels/repack.h"

namespace ggufsm::kernels::scalar {

namespace {

uint16_t u16_at(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

float dot_f32(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const float* a = x.f32(i);
    float w[8], acc[8] = {};
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        std::memcpy(w, row + 4 * j, 32);
        for (int k = 0; k < 8; ++k) acc[k] += w[k] * a[j + k];
    }
    float tail = 0;
    for (; j < cols; ++j) {
        float v;
        std::memcpy(&v, row + 4 * j, 4);
        tail += v * a[j];
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

template <float (*ToFloat)(uint16_t)>
float dot_half(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const float* a = x.f32(i);
    float acc[8] = {};
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        for (int k = 0; k < 8; ++k) acc[k] += ToFloat(u16_at(row + 2 * (j + k))) * a[j + k];
    }
    float tail = 0;
    for (; j < cols; ++j) tail += ToFloat(u16_at(row + 2 * j)) * a[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// Each quantized kernel unpacks a block's integer codes in element order,
// takes exact integer dot products with the activation codes, and applies the
// scales in float: the same arithmetic the SIMD variants do in vectors.

template <typename Code>
int dot_codes(const Code* codes, const int8_t* a, int n) {
    int sum = 0;
    for (int k = 0; k < n; ++k) sum += codes[k] * a[k];
    return sum;
}

// ---- 32-blocks against Q8_32 activations ----

// Element l < 16: low nibble of qs[l]; l >= 16: high nibble of qs[l - 16];
// Q5 formats add bit l of qh as the fifth bit.
template <typename Block>
void unpack_32(const Block& b, uint8_t codes[QK32]) {
    for (int l = 0; l < 16; ++l) {
        codes[l] = b.qs[l] & 0xF;
        codes[l + 16] = b.qs[l] >> 4;
    }
    if constexpr (sizeof(Block) == sizeof(BlockQ5_0) || sizeof(Block) == sizeof(BlockQ5_1)) {
        uint32_t high;
        std::memcpy(&high, b.qh, 4);
        for (int l = 0; l < QK32; ++l) codes[l] |= ((high >> l) & 1) << 4;
    }
}

// Offset formats (Q4_0: code - 8, Q5_0: code - 16): d_w * (d_a * sum(code*a) - offset * s_a).
template <typename Block, int Offset>
float dot_offset32(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const Block* w = reinterpret_cast<const Block*>(row);
    const float* ds = x.ds(i);
    float acc = 0;
    uint8_t codes[QK32];
    for (int64_t b = 0; b < cols / QK32; ++b) {
        unpack_32(w[b], codes);
        const int isum = dot_codes(codes, x.q8_32_half(i, b, 0), 16) + dot_codes(codes + 16, x.q8_32_half(i, b, 1), 16);
        acc += fp16_to_fp32(w[b].d) * (ds[2 * b] * static_cast<float>(isum) - Offset * ds[2 * b + 1]);
    }
    return acc;
}

// Min formats (Q4_1, Q5_1): d_w * d_a * sum(code*a) + m_w * s_a.
template <typename Block>
float dot_min32(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const Block* w = reinterpret_cast<const Block*>(row);
    const float* ds = x.ds(i);
    float acc = 0;
    uint8_t codes[QK32];
    for (int64_t b = 0; b < cols / QK32; ++b) {
        unpack_32(w[b], codes);
        const int isum = dot_codes(codes, x.q8_32_half(i, b, 0), 16) + dot_codes(codes + 16, x.q8_32_half(i, b, 1), 16);
        acc += fp16_to_fp32(w[b].d) * ds[2 * b] * static_cast<float>(isum) + fp16_to_fp32(w[b].m) * ds[2 * b + 1];
    }
    return acc;
}

float dot_q8_0(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    const float* ds = x.ds(i);
    float acc = 0;
    for (int64_t b = 0; b < cols / QK32; ++b) {
        const int isum = dot_codes(w[b].qs, x.q8_32_half(i, b, 0), 16) + dot_codes(w[b].qs + 16, x.q8_32_half(i, b, 1), 16);
        acc += fp16_to_fp32(w[b].d) * ds[2 * b] * static_cast<float>(isum);
    }
    return acc;
}

// Q8_0 repacked (WeightLayout::Rows8), in the order of its x86 kernel (kernels/x86/matmul.cpp,
// q8_0_x8_group): per block the exact integer sum, times d_w * d_a rounded to float, added by one
// fused multiply-add, blocks in order. The same bits as that kernel; dot_q8_0 above (the file's layout)
// adds unfused, so the two layouts' results differ in the last bits, within matmul.h's bound.
float dot_q8_0_rows8(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    const float* ds = x.ds(i);
    float acc = 0;
    for (int64_t b = 0; b < cols / QK32; ++b) {
        const int isum = dot_codes(w[b].qs, x.q8_32_half(i, b, 0), 16) + dot_codes(w[b].qs + 16, x.q8_32_half(i, b, 1), 16);
        acc = std::fma(fp16_to_fp32(w[b].d) * ds[2 * b], static_cast<float>(isum), acc);
    }
    return acc;
}

// ---- k-quants against Q8_K activations ----

// Q2_K: element j*128 + s*32 + l is bits 2s..2s+1 of qs[j*32 + l].
void unpack_q2_k(const BlockQ2_K& b, uint8_t codes[QK_K]) {
    for (int j = 0; j < 2; ++j)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) codes[j * 128 + s * 32 + l] = (b.qs[j * 32 + l] >> (2 * s)) & 3;
}

// Q3_K: as Q2_K, minus 4 where bit (j*4 + s) of hmask[l] is clear.
void unpack_q3_k(const BlockQ3_K& b, int8_t codes[QK_K]) {
    for (int j = 0; j < 2; ++j)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) {
                const int low = (b.qs[j * 32 + l] >> (2 * s)) & 3, high = (b.hmask[l] >> (j * 4 + s)) & 1;
                codes[j * 128 + s * 32 + l] = static_cast<int8_t>(low - (high ? 0 : 4));
            }
}

// Q4_K/Q5_K: element j*64 + l is the low nibble of qs[j*32 + l], j*64 + 32 + l
// the high one; Q5_K takes bit (element / 32) of qh[l] as the fifth bit.
template <typename Block>
void unpack_q45_k(const Block& b, uint8_t codes[QK_K]) {
    for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) {
            codes[j * 64 + l] = b.qs[j * 32 + l] & 0xF;
            codes[j * 64 + 32 + l] = b.qs[j * 32 + l] >> 4;
        }
    if constexpr (sizeof(Block) == sizeof(BlockQ5_K)) {
        for (int e = 0; e < QK_K; ++e) codes[e] |= ((b.qh[e % 32] >> (e / 32)) & 1) << 4;
    }
}

// Q6_K: element j*128 + t*32 + l is nibble (t / 2) of ql[j*64 + (t%2)*32 + l]
// with bits 2t..2t+1 of qh[j*32 + l] above it, minus 32.
void unpack_q6_k(const BlockQ6_K& b, int8_t codes[QK_K]) {
    for (int j = 0; j < 2; ++j)
        for (int t = 0; t < 4; ++t)
            for (int l = 0; l < 32; ++l) {
                const int low = (b.ql[j * 64 + (t % 2) * 32 + l] >> (4 * (t / 2))) & 0xF;
                const int high = (b.qh[j * 32 + l] >> (2 * t)) & 3;
                codes[j * 128 + t * 32 + l] = static_cast<int8_t>((low | (high << 4)) - 32);
            }
}

float dot_q2_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const BlockQ2_K* w = reinterpret_cast<const BlockQ2_K*>(row);
    float acc = 0;
    uint8_t codes[QK_K];
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        const int16_t* bsums = x.bsums(i) + b * 16;
        unpack_q2_k(w[b], codes);
        int scaled = 0, mins = 0;
        for (int sub = 0; sub < 16; ++sub) {
            scaled += (w[b].scales[sub] & 0xF) * dot_codes(codes + 16 * sub, a + 16 * sub, 16);
            mins += (w[b].scales[sub] >> 4) * bsums[sub];
        }
        const float da = x.d(i)[b];
        acc += fp16_to_fp32(w[b].d) * da * static_cast<float>(scaled) - fp16_to_fp32(w[b].dmin) * da * static_cast<float>(mins);
    }
    return acc;
}

float dot_q3_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const BlockQ3_K* w = reinterpret_cast<const BlockQ3_K*>(row);
    float acc = 0;
    int8_t codes[QK_K];
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        int scales[16];
        q3_k_scales(w[b].scales, scales);
        unpack_q3_k(w[b], codes);
        int scaled = 0;
        for (int sub = 0; sub < 16; ++sub) scaled += scales[sub] * dot_codes(codes + 16 * sub, a + 16 * sub, 16);
        acc += fp16_to_fp32(w[b].d) * x.d(i)[b] * static_cast<float>(scaled);
    }
    return acc;
}

template <typename Block>
float dot_q45_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const Block* w = reinterpret_cast<const Block*>(row);
    float acc = 0;
    uint8_t codes[QK_K];
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        const int16_t* bsums = x.bsums(i) + b * 16;
        unpack_q45_k(w[b], codes);
        int scaled = 0, mins = 0;
        for (int sub = 0; sub < 8; ++sub) {
            int sc, m;
            k_scale_min(w[b].scales, sub, sc, m);
            scaled += sc * dot_codes(codes + 32 * sub, a + 32 * sub, 32);
            mins += m * (bsums[2 * sub] + bsums[2 * sub + 1]);
        }
        const float da = x.d(i)[b];
        acc += fp16_to_fp32(w[b].d) * da * static_cast<float>(scaled) - fp16_to_fp32(w[b].dmin) * da * static_cast<float>(mins);
    }
    return acc;
}

float dot_q6_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(row);
    float acc = 0;
    int8_t codes[QK_K];
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        unpack_q6_k(w[b], codes);
        int scaled = 0;
        for (int sub = 0; sub < 16; ++sub) scaled += w[b].scales[sub] * dot_codes(codes + 16 * sub, a + 16 * sub, 16);
        acc += fp16_to_fp32(w[b].d) * x.d(i)[b] * static_cast<float>(scaled);
    }
    return acc;
}

template <float (*Dot)(const uint8_t*, const QuantizedActivations&, int64_t, int64_t)>
void rows(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    drive_rows(w, x, y, row_begin, row_end, Dot);
}

// Rows8 weights (kernels/repack.h): each row unpacked back to the file's
// layout, then the kernel above, so the reference of a repacked matrix is by
// construction the reference of the matrix it came from.
template <float (*Dot)(const uint8_t*, const QuantizedActivations&, int64_t, int64_t)>
void rows8(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    std::vector<uint8_t> row(w.row_bytes);
    for (int64_t r = row_begin; r < row_end; ++r) {
        unpack_row8(w, r, row.data());
        for (int64_t i = 0; i < x.n(); ++i) y[i * w.rows + r] = Dot(row.data(), x, i, w.cols);
    }
}

}  // namespace

void fill_matmul(KernelSet& set) {
    set.matmul_rows8[2] = rows8<dot_offset32<BlockQ4_0, 8>>;
    set.matmul_rows8[3] = rows8<dot_min32<BlockQ4_1>>;
    set.matmul_rows8[6] = rows8<dot_offset32<BlockQ5_0, 16>>;
    set.matmul_rows8[7] = rows8<dot_min32<BlockQ5_1>>;
    set.matmul_rows8[12] = rows8<dot_q45_k<BlockQ4_K>>;
    set.matmul_rows8[14] = rows8<dot_q6_k>;
    set.matmul_rows8[8] = rows8<dot_q8_0_rows8>;
    set.matmul_rows_rows8_order[8] = rows<dot_q8_0_rows8>;  // the file's rows, the Rows8 order
    set.matmul_rows[0] = rows<dot_f32>;
    set.matmul_rows[1] = rows<dot_half<fp16_to_fp32>>;
    set.matmul_rows[30] = rows<dot_half<bf16_to_fp32>>;
    set.matmul_rows[2] = rows<dot_offset32<BlockQ4_0, 8>>;
    set.matmul_rows[3] = rows<dot_min32<BlockQ4_1>>;
    set.matmul_rows[6] = rows<dot_offset32<BlockQ5_0, 16>>;
    set.matmul_rows[7] = rows<dot_min32<BlockQ5_1>>;
    set.matmul_rows[8] = rows<dot_q8_0>;
    set.matmul_rows[10] = rows<dot_q2_k>;
    set.matmul_rows[11] = rows<dot_q3_k>;
    set.matmul_rows[12] = rows<dot_q45_k<BlockQ4_K>>;
    set.matmul_rows[13] = rows<dot_q45_k<BlockQ5_K>>;
    set.matmul_rows[14] = rows<dot_q6_k>;
}

}  // namespace ggufsm::kernels::scalar
