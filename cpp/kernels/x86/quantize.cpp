// Activation quantization over 8-float vectors (kernel_set.h, QuantizeBlocksFn),
// compiled per ISA variant. The scalar loop (then a libm nearbyint call per
// element) was 13% of a SmolLM2 512-token prefill. Here the same IEEE
// operations run eight lanes at a time, so the bytes are the scalar ones
// (kernels/scalar/quantize.cpp): |x| and its maximum are exact,
// x * (127 / amax) is the same float product, and vcvtps2dq rounds to nearest
// even as lrint does in the default mode.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/x86/simd.h"

namespace ggufsm::kernels::GGUFSM_ISA {

namespace {

// amax of one block (a multiple of 32 floats); NaN if any element is NaN.
// vmaxps returns its second operand when either is NaN, so max(|x|, acc) skips
// a NaN as std::max does in the scalar loop, and an unordered compare notes it.
float block_amax(const float* x, int64_t n) {
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 amax = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; k += 8) {
        const __m256 v = _mm256_loadu_ps(x + k);
        amax = _mm256_max_ps(_mm256_and_ps(v, magnitude), amax);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(nan)) return std::numeric_limits<float>::quiet_NaN();
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

// 32 codes nearest-even(x * inverse), in element order.
inline __m256i codes32(const float* x, __m256 inverse) {
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), inverse));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), inverse));
    const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), inverse));
    const __m256i e = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), inverse));
    // The packs work per 128-bit half: the dwords come out as a0-3 b0-3 c0-3 e0-3 a4-7 b4-7 c4-7 e4-7.
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, e));
    return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// The sums of codes 0..15 and 16..31: sad against zero sums eight unsigned bytes,
// so the codes are offset by 128 (xor of the sign bit) and 16 x 128 taken off.
inline void sums_of_16(__m256i codes, int16_t* sums16) {
    const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(codes, _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
    alignas(32) int64_t eights[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(eights), sad);
    sums16[0] = static_cast<int16_t>(eights[0] + eights[1] - 16 * 128);
    sums16[1] = static_cast<int16_t>(eights[2] + eights[3] - 16 * 128);
}

void quantize_blocks(const float* x, int64_t blocks, int64_t block, int8_t* q, float* d, int16_t* sums16) {
    for (int64_t b = 0; b < blocks; ++b) {
        const float* xb = x + b * block;
        int8_t* qb = q + b * block;
        int16_t* sb = sums16 + b * (block / 16);
        const float amax = block_amax(xb, block);
        const float inverse = 127.0f / amax;
        d[b] = amax / 127.0f;
        if (!std::isfinite(amax) || !std::isfinite(inverse)) {  // also amax == 0: 127 / 0 is inf
            std::memset(qb, 0, static_cast<size_t>(block));
            std::memset(sb, 0, static_cast<size_t>(block / 16) * 2);
            continue;
        }
        const __m256 inv = _mm256_set1_ps(inverse);
        for (int64_t k = 0; k < block; k += 32) {
            const __m256i codes = codes32(xb + k, inv);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb + k), codes);
            sums_of_16(codes, sb + k / 16);
        }
    }
}

}  // namespace

void fill_quantize(KernelSet& set) { set.quantize_blocks = &quantize_blocks; }

}  // namespace ggufsm::kernels::GGUFSM_ISA
