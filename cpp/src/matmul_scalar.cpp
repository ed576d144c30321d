// The scalar reference kernels: plain C++ over the block layouts, the
// semantics every SIMD variant must reproduce (tests/kernels/test_isa_variants.py).
#include <cstring>

#include "ggufsm/quant.h"
#include "matmul_kernels.h"

namespace ggufsm::kernels {

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

// ---- 32-blocks against Q8_32 activations ----

// Sum over one block of code(l) * a[l] for 4-bit codes stored as in Q4_0/Q4_1
// (element l < 16: low nibble of qs[l]; l >= 16: high nibble of qs[l - 16]),
// with the fifth bits from qh when given.
int dot_block_4or5(const uint8_t* qs, const uint8_t* qh, const int8_t* a) {
    uint32_t high = 0;
    if (qh) std::memcpy(&high, qh, 4);
    int sum = 0;
    for (int l = 0; l < 16; ++l) {
        const int lo = (qs[l] & 0xF) | (((high >> l) & 1) << 4);
        const int hi = (qs[l] >> 4) | (((high >> (l + 16)) & 1) << 4);
        sum += lo * a[l] + hi * a[l + 16];
    }
    return sum;
}

// Offset formats (Q4_0: code - 8, Q5_0: code - 16): d_w * (d_a * sum(code*a) - offset * s_a).
template <typename Block, int Offset, bool HasQh>
float dot_offset32(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const Block* w = reinterpret_cast<const Block*>(row);
    const int8_t* qs = x.qs(i);
    const float *d = x.d(i), *s = x.s(i);
    float acc = 0;
    for (int64_t b = 0; b < cols / QK32; ++b) {
        const uint8_t* qh = nullptr;
        if constexpr (HasQh) qh = w[b].qh;
        const int isum = dot_block_4or5(w[b].qs, qh, qs + b * QK32);
        acc += fp16_to_fp32(w[b].d) * (d[b] * static_cast<float>(isum) - Offset * s[b]);
    }
    return acc;
}

// Min formats (Q4_1, Q5_1): d_w * d_a * sum(code*a) + m_w * s_a.
template <typename Block, bool HasQh>
float dot_min32(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const Block* w = reinterpret_cast<const Block*>(row);
    const int8_t* qs = x.qs(i);
    const float *d = x.d(i), *s = x.s(i);
    float acc = 0;
    for (int64_t b = 0; b < cols / QK32; ++b) {
        const uint8_t* qh = nullptr;
        if constexpr (HasQh) qh = w[b].qh;
        const int isum = dot_block_4or5(w[b].qs, qh, qs + b * QK32);
        acc += fp16_to_fp32(w[b].d) * d[b] * static_cast<float>(isum) + fp16_to_fp32(w[b].m) * s[b];
    }
    return acc;
}

float dot_q8_0(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    const int8_t* qs = x.qs(i);
    const float* d = x.d(i);
    float acc = 0;
    for (int64_t b = 0; b < cols / QK32; ++b) {
        int isum = 0;
        for (int l = 0; l < QK32; ++l) isum += w[b].qs[l] * qs[b * QK32 + l];
        acc += fp16_to_fp32(w[b].d) * d[b] * static_cast<float>(isum);
    }
    return acc;
}

// ---- k-quants against Q8_K activations ----

float dot_q2_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const BlockQ2_K* w = reinterpret_cast<const BlockQ2_K*>(row);
    float acc = 0;
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        const int16_t* bsums = x.bsums(i) + b * 16;
        int scaled = 0, mins = 0;
        for (int sub = 0; sub < 16; ++sub) {
            int isum = 0;
            for (int k = 0; k < 16; ++k) {
                const int e = sub * 16 + k, j = e / 128, s = (e / 32) % 4, l = e % 32;
                isum += ((w[b].qs[j * 32 + l] >> (2 * s)) & 3) * a[e];
            }
            scaled += (w[b].scales[sub] & 0xF) * isum;
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
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        int scales[16];
        q3_k_scales(w[b].scales, scales);
        int scaled = 0;
        for (int sub = 0; sub < 16; ++sub) {
            int isum = 0;
            for (int k = 0; k < 16; ++k) {
                const int e = sub * 16 + k, j = e / 128, s = (e / 32) % 4, l = e % 32;
                const int low = (w[b].qs[j * 32 + l] >> (2 * s)) & 3;
                const int high = (w[b].hmask[l] >> (e / 32)) & 1;
                isum += (low - (high ? 0 : 4)) * a[e];
            }
            scaled += scales[sub] * isum;
        }
        acc += fp16_to_fp32(w[b].d) * x.d(i)[b] * static_cast<float>(scaled);
    }
    return acc;
}

template <typename Block, bool HasQh>
float dot_q45_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const Block* w = reinterpret_cast<const Block*>(row);
    float acc = 0;
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        const int16_t* bsums = x.bsums(i) + b * 16;
        int scaled = 0, mins = 0;
        for (int sub = 0; sub < 8; ++sub) {
            int sc, m;
            k_scale_min(w[b].scales, sub, sc, m);
            const int j = sub / 2, s = sub % 2;
            int isum = 0;
            for (int l = 0; l < 32; ++l) {
                int q = (w[b].qs[j * 32 + l] >> (4 * s)) & 0xF;
                if constexpr (HasQh) q |= ((w[b].qh[l] >> sub) & 1) << 4;
                isum += q * a[sub * 32 + l];
            }
            scaled += sc * isum;
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
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const int8_t* a = x.qs(i) + b * QK_K;
        int scaled = 0;
        for (int sub = 0; sub < 16; ++sub) {
            int isum = 0;
            for (int k = 0; k < 16; ++k) {
                const int e = sub * 16 + k, j = e / 128, t = (e / 32) % 4, l = e % 32;
                const int low = (w[b].ql[j * 64 + (t % 2) * 32 + l] >> (4 * (t / 2))) & 0xF;
                const int high = (w[b].qh[j * 32 + l] >> (2 * t)) & 3;
                isum += ((low | (high << 4)) - 32) * a[e];
            }
            scaled += w[b].scales[sub] * isum;
        }
        acc += fp16_to_fp32(w[b].d) * x.d(i)[b] * static_cast<float>(scaled);
    }
    return acc;
}

template <float (*Dot)(const uint8_t*, const QuantizedActivations&, int64_t, int64_t)>
void rows(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    drive_rows(w, x, y, row_begin, row_end, Dot);
}

KernelTable make_table() {
    KernelTable t;
    t.rows[0] = rows<dot_f32>;
    t.rows[1] = rows<dot_half<fp16_to_fp32>>;
    t.rows[30] = rows<dot_half<bf16_to_fp32>>;
    t.rows[2] = rows<dot_offset32<BlockQ4_0, 8, false>>;
    t.rows[3] = rows<dot_min32<BlockQ4_1, false>>;
    t.rows[6] = rows<dot_offset32<BlockQ5_0, 16, true>>;
    t.rows[7] = rows<dot_min32<BlockQ5_1, true>>;
    t.rows[8] = rows<dot_q8_0>;
    t.rows[10] = rows<dot_q2_k>;
    t.rows[11] = rows<dot_q3_k>;
    t.rows[12] = rows<dot_q45_k<BlockQ4_K, false>>;
    t.rows[13] = rows<dot_q45_k<BlockQ5_K, true>>;
    t.rows[14] = rows<dot_q6_k>;
    return t;
}

}  // namespace

const KernelTable& scalar_table() {
    static const KernelTable table = make_table();
    return table;
}

}  // namespace ggufsm::kernels
