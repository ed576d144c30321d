// The scalar reference activation quantization (kernel_set.h, QuantizeBlocksFn):
// the bytes every SIMD variant must reproduce exactly (tests/kernels/test_quantize.py).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/kernel_set.h"

namespace ggufsm::kernels::scalar {

namespace {

// amax of one block; NaN if any element is NaN (std::max alone would skip it).
float block_amax(const float* x, int64_t n) {
    float amax = 0;
    bool nan = false;
    for (int64_t k = 0; k < n; ++k) {
        const float a = std::fabs(x[k]);
        if (std::isnan(a)) nan = true;
        amax = std::max(amax, a);
    }
    return nan ? std::numeric_limits<float>::quiet_NaN() : amax;
}

void quantize_blocks(const float* x, int64_t blocks, int64_t block, int8_t* q, float* d, int16_t* sums16) {
    for (int64_t b = 0; b < blocks; ++b) {
        const float* xb = x + b * block;
        int8_t* qb = q + b * block;
        const float amax = block_amax(xb, block);
        const float inverse = 127.0f / amax;
        d[b] = amax / 127.0f;
        if (!std::isfinite(amax) || !std::isfinite(inverse)) {  // also amax == 0: 127 / 0 is inf
            std::memset(qb, 0, static_cast<size_t>(block));
        } else {
            // lrint rounds as nearbyint does (the current mode: to nearest, ties to even) but is one
            // cvtss2si, where nearbyint is a libm call per element on baseline x86-64.
            for (int64_t k = 0; k < block; ++k) qb[k] = static_cast<int8_t>(std::lrint(xb[k] * inverse));
        }
        for (int64_t g = 0; g < block / 16; ++g) {
            int sum = 0;
            for (int k = 0; k < 16; ++k) sum += qb[16 * g + k];
            sums16[b * (block / 16) + g] = static_cast<int16_t>(sum);
        }
    }
}

}  // namespace

void fill_quantize(KernelSet& set) { set.quantize_blocks = &quantize_blocks; }

}  // namespace ggufsm::kernels::scalar
