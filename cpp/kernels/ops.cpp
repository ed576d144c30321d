// Float32 transformer ops. Reductions (norms, softmax sums) accumulate in
// double, as ggml does, so long rows lose nothing to summation order.
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "kernels/kernel_set.h"

namespace ggufsm {

namespace {
// GCC/Clang vector extensions: the compiler's own vectors for whatever the target has (SSE2 at least on
// x86-64), no ISA-specific code. The plain loops were not vectorized: a float max reduction is not reordered
// without -ffast-math, and the lanes written as arrays were unrolled into scalar maxss by the SLP pass.
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));

f32x4 load4(const float* p) {
    f32x4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
}  // namespace

int64_t greedy_token(const float* logits, int64_t n) {
    // Four vectors of running maxima over blocks of 16 values, with the non-finite test in the same read (a
    // value is not finite when its exponent bits are all ones), then the tail value by value. The lanes'
    // maximum is the row's (max is exact in any order on finite values; -0 and +0 compare equal in the index
    // scan, as in numpy's argmax); the first block holding it gives its first index. 5-15x faster than the
    // one dependent max per value it replaced (a 49152-logit row: about numpy's argmax alone).
    constexpr int64_t kBlock = 16;
    const int64_t n_blocks = n / kBlock;
    const i32x4 exponent = i32x4{} + 0x7F800000;
    f32x4 lane_max[4];
    i32x4 lane_bad[4] = {};
    for (auto& m : lane_max) m = f32x4{} + logits[0];
    for (int64_t b = 0; b < n_blocks; ++b) {
        for (int k = 0; k < 4; ++k) {
            const f32x4 v = load4(logits + b * kBlock + 4 * k);
            i32x4 bits;
            std::memcpy(&bits, &v, sizeof bits);
            lane_bad[k] |= (bits & exponent) == exponent;
            lane_max[k] = v > lane_max[k] ? v : lane_max[k];
        }
    }
    bool bad = false;
    float best = logits[0];
    for (int k = 0; k < 4; ++k) {
        for (int j = 0; j < 4; ++j) {
            bad |= lane_bad[k][j] != 0;
            best = std::max(best, lane_max[k][j]);
        }
    }
    for (int64_t i = n_blocks * kBlock; i < n; ++i) {  // the tail
        bad |= !std::isfinite(logits[i]);
        best = std::max(best, logits[i]);
    }
    if (bad) {
        for (int64_t i = 0; i < n; ++i) {
            if (!std::isfinite(logits[i])) return -1 - i;
        }
    }
    const f32x4 target = f32x4{} + best;
    for (int64_t b = 0; b < n_blocks; ++b) {  // the first block holding the maximum, four vectors compared at once
        const float* block = logits + b * kBlock;
        i32x4 hit = (load4(block) == target) | (load4(block + 4) == target) | (load4(block + 8) == target) |
                    (load4(block + 12) == target);
        if (hit[0] | hit[1] | hit[2] | hit[3]) {
            for (int64_t j = 0; j < kBlock; ++j) {
                if (block[j] == best) return b * kBlock + j;
            }
        }
    }
    for (int64_t i = n_blocks * kBlock; i < n; ++i) {
        if (logits[i] == best) return i;
    }
    return 0;
}

void rmsnorm(const float* x, const float* weight, float* out, int64_t n_rows, int64_t dim, float eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * dim;
        float* outr = out + r * dim;
        double sum = 0;
        for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
        const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
        if (weight) {
            for (int64_t i = 0; i < dim; ++i) outr[i] = xr[i] * scale * weight[i];
        } else {
            for (int64_t i = 0; i < dim; ++i) outr[i] = xr[i] * scale;
        }
    }
}

void rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot, const int32_t* positions,
          float freq_base, bool neox) {
    if (n_rot <= 0 || n_rot % 2 != 0 || n_rot > head_dim) {
        throw Error(code::InvalidInput, "rope: n_rot " + std::to_string(n_rot) + " must be even and in (0, head_dim " +
                                            std::to_string(head_dim) + "]");
    }
    const int64_t half = n_rot / 2;
    std::vector<double> inv_freq(half);
    for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(static_cast<double>(freq_base), -2.0 * i / n_rot);
    std::vector<float> cos_t(half), sin_t(half);
    for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t i = 0; i < half; ++i) {
            const double theta = positions[t] * inv_freq[i];
            cos_t[i] = static_cast<float>(std::cos(theta));
            sin_t[i] = static_cast<float>(std::sin(theta));
        }
        for (int64_t h = 0; h < n_head; ++h) {
            float* v = x + (t * n_head + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * cos_t[i] - x1 * sin_t[i];
                v[b] = x0 * sin_t[i] + x1 * cos_t[i];
            }
        }
    }
}

void softmax(float* x, int64_t n) {
    if (n <= 0) return;
    const float max = *std::max_element(x, x + n);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
        sum += x[i];
    }
    const float inverse = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inverse;
}

// The activations run the active kernel set's (kernel_set.h); the scalar
// reference is kernels/scalar/activations.cpp.
void silu(float* x, int64_t n) { kernels::active().silu(x, nullptr, x, n); }
void gelu(float* x, int64_t n) { kernels::active().gelu(x, nullptr, x, n); }
void swiglu(const float* gate, const float* up, float* out, int64_t n) { kernels::active().silu(gate, up, out, n); }
void geglu(const float* gate, const float* up, float* out, int64_t n) { kernels::active().gelu(gate, up, out, n); }

}  // namespace ggufsm
