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

namespace {
// out = x * scale * weight (or x * scale) over one row of dim.
void scale_row(const float* x, const float* weight, float scale, float* out, int64_t dim) {
    if (weight) {
        for (int64_t i = 0; i < dim; ++i) out[i] = x[i] * scale * weight[i];
    } else {
        for (int64_t i = 0; i < dim; ++i) out[i] = x[i] * scale;
    }
}

float rms_scale(double sum, int64_t dim, float eps) {
    return static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
}
}  // namespace

void rmsnorm(const float* x, const float* weight, float* out, int64_t n_rows, int64_t dim, float eps) {
    // Each row's sum of squares in element order (ggml's), one dependent double add per element: a row's
    // time is that chain's latency. Four rows' chains advance side by side (Gemma 3's q/k norms are 12
    // rows of 256 a layer, a prefill's norms hundreds of rows), each still in its own order: the same bits.
    constexpr int64_t kRows = 4;
    int64_t r = 0;
    for (; r + kRows <= n_rows; r += kRows) {
        const float* xr = x + r * dim;
        double sum[kRows] = {};
        for (int64_t i = 0; i < dim; ++i) {
            for (int64_t j = 0; j < kRows; ++j) sum[j] += static_cast<double>(xr[j * dim + i]) * xr[j * dim + i];
        }
        for (int64_t j = 0; j < kRows; ++j) scale_row(xr + j * dim, weight, rms_scale(sum[j], dim, eps), out + (r + j) * dim, dim);
    }
    for (; r < n_rows; ++r) {
        const float* xr = x + r * dim;
        double sum = 0;
        for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
        scale_row(xr, weight, rms_scale(sum, dim, eps), out + r * dim, dim);
    }
}

void RopeTable::compute(const int32_t* positions, int64_t tokens, int64_t n_rot, float freq_base) {
    if (n_rot <= 0 || n_rot % 2 != 0) {
        throw Error(code::InvalidInput, "rope: n_rot " + std::to_string(n_rot) + " must be even and positive");
    }
    n_tok = tokens;
    half = n_rot / 2;
    std::vector<double> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = std::pow(static_cast<double>(freq_base), -2.0 * i / n_rot);
    cos.resize(size_t(n_tok * half));
    sin.resize(cos.size());
    for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t i = 0; i < half; ++i) {
            const double theta = positions[t] * inv_freq[size_t(i)];
            cos[size_t(t * half + i)] = static_cast<float>(std::cos(theta));
            sin[size_t(t * half + i)] = static_cast<float>(std::sin(theta));
        }
    }
}

void rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, const RopeTable& table, int64_t first_tok, bool neox) {
    const int64_t half = table.half;
    if (half <= 0 || 2 * half > head_dim || first_tok < 0 || first_tok + n_tok > table.n_tok) {
        throw Error(code::InvalidInput, "rope: a table of " + std::to_string(table.n_tok) + " tokens, " + std::to_string(2 * half) +
                                            " rotated dims, for tokens [" + std::to_string(first_tok) + ", " +
                                            std::to_string(first_tok + n_tok) + ") of heads of " + std::to_string(head_dim));
    }
    for (int64_t t = 0; t < n_tok; ++t) {
        const float* cos_t = &table.cos[size_t((first_tok + t) * half)];
        const float* sin_t = &table.sin[size_t((first_tok + t) * half)];
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

void rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot, const int32_t* positions,
          float freq_base, bool neox) {
    if (n_rot <= 0 || n_rot % 2 != 0 || n_rot > head_dim) {
        throw Error(code::InvalidInput, "rope: n_rot " + std::to_string(n_rot) + " must be even and in (0, head_dim " +
                                            std::to_string(head_dim) + "]");
    }
    RopeTable table;
    table.compute(positions, n_tok, n_rot, freq_base);
    rope(x, n_tok, n_head, head_dim, table, 0, neox);
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
