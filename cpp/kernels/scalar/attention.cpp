// The scalar reference attention kernel: one block step of the online softmax
// of kernel_set.h (AttendFn) in plain loops, head by head, the semantics the
// SIMD variants reproduce (they differ only in summation order and exp's last bits).
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attention.h"
#include "kernels/kernel_set.h"
#include "kernels/quant.h"

namespace ggufsm::kernels::scalar {

namespace {

inline float to_float(float x) { return x; }
inline float to_float(uint16_t h) { return fp16_to_fp32(h); }

template <typename T>
void attend(const float* q, int64_t group, const T* k_tiles, const T* v_rows, int64_t hd, int64_t b, int64_t lo, int64_t hi,
            float scale, float* o, float* m, float* l) {
    float s[kBlock];
    for (int64_t g = 0; g < group; ++g) {
        const float* qg = q + g * hd;
        float block_max = -std::numeric_limits<float>::infinity();
        for (int64_t p = lo; p < hi; ++p) {
            const T* tile = k_tiles + (p / kKeyTile) * hd * kKeyTile + p % kKeyTile;
            float dot = 0;
            for (int64_t d = 0; d < hd; ++d) dot += qg[d] * to_float(tile[d * kKeyTile]);
            s[p - b] = scale * dot;
            block_max = std::max(block_max, s[p - b]);
        }
        const float m_new = std::max(m[g], block_max);
        const float carry = std::exp(m[g] - m_new);
        float* og = o + g * hd;
        float sum = 0;
        for (int64_t d = 0; d < hd; ++d) og[d] *= carry;
        for (int64_t p = lo; p < hi; ++p) {
            const float weight = std::exp(s[p - b] - m_new);
            sum += weight;
            const T* v = v_rows + p * hd;
            for (int64_t d = 0; d < hd; ++d) og[d] += weight * to_float(v[d]);
        }
        l[g] = l[g] * carry + sum;
        m[g] = m_new;
    }
}

void round_to_half(const float* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(fp32_to_fp16(src[i]));
}

void to_half(const float* src, uint16_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

}  // namespace

void fill_attention(KernelSet& set) {
    set.attend_f32 = &attend<float>;
    set.attend_f16 = &attend<uint16_t>;
    set.attend_hd_multiple = 1;
    set.round_to_half = &round_to_half;
    set.to_half = &to_half;
}

}  // namespace ggufsm::kernels::scalar
