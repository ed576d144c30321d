// Float32 transformer ops. Reductions (norms, softmax sums) accumulate in
// double, as ggml does, so long rows lose nothing to summation order.
#include "ggufsm/ops.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ggufsm/errors.h"

namespace ggufsm {

namespace {

// Eight independent partial sums: lets the compiler vectorize without
// reassociating a single float chain.
float dot(const float* a, const float* b, int64_t n) {
    float acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
    }
    float tail = 0;
    for (; i < n; ++i) tail += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// y += s * x
void axpy(float s, const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += s * x[i];
}

float gelu_one(float x) {
    constexpr float kSqrt2OverPi = 0.79788456080286535588f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

float silu_one(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

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

void silu(float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = silu_one(x[i]);
}

void gelu(float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = gelu_one(x[i]);
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = silu_one(gate[i]) * up[i];
}

void geglu(const float* gate, const float* up, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = gelu_one(gate[i]) * up[i];
}

void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t n_tok,
               int64_t start_pos, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale,
               int64_t sliding_window, ThreadPool& pool) {
    if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0) {
        throw Error(code::InvalidInput, "attention: n_head " + std::to_string(n_head) + " is not a positive multiple of n_head_kv " +
                                            std::to_string(n_head_kv));
    }
    if (start_pos < 0 || n_tok < 0 || start_pos + n_tok > n_ctx) {
        throw Error(code::InvalidInput, "attention: positions [" + std::to_string(start_pos) + ", " +
                                            std::to_string(start_pos + n_tok) + ") do not fit the cache of n_ctx " +
                                            std::to_string(n_ctx));
    }
    const int64_t group = n_head / n_head_kv;
    pool.parallel_for(n_tok * n_head, [&](int64_t begin, int64_t end, int) {
        std::vector<float> scores(static_cast<size_t>(start_pos + n_tok));
        for (int64_t pair = begin; pair < end; ++pair) {
            const int64_t t = pair / n_head, h = pair % n_head, kvh = h / group;
            const int64_t pos = start_pos + t;
            const int64_t first = sliding_window > 0 ? std::max<int64_t>(0, pos - sliding_window + 1) : 0;
            const int64_t count = pos - first + 1;
            const float* qv = q + (t * n_head + h) * hd;
            const float* keys = k_cache + (kvh * n_ctx + first) * hd;
            const float* values = v_cache + (kvh * n_ctx + first) * hd;
            for (int64_t k = 0; k < count; ++k) scores[k] = scale * dot(qv, keys + k * hd, hd);
            softmax(scores.data(), count);
            float* o = out + (t * n_head + h) * hd;
            std::fill(o, o + hd, 0.0f);
            for (int64_t k = 0; k < count; ++k) axpy(scores[k], values + k * hd, o, hd);
        }
    });
}

}  // namespace ggufsm
