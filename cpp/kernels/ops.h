// Transformer ops on float32 rows. Each is tested against numpy
// (tests/kernels/test_ops.py); shapes are in the comments.
#pragma once
#include <cstdint>
#include <vector>

namespace ggufsm {

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight;  x, out: [n_rows][dim],
// weight: [dim] or nullptr (no scaling). out may equal x.
void rmsnorm(const float* x, const float* weight, float* out, int64_t n_rows, int64_t dim, float eps);

// Rotary position embedding in place. x: [n_tok][n_head][head_dim]; the first
// n_rot dims of each head rotate by theta_i = positions[t] * freq_base^(-2i/n_rot).
// neox = false: pairs (2i, 2i+1) (llama); neox = true: pairs (i, i + n_rot/2)
// (gemma, qwen). Dims from n_rot on are left alone. Angles in double.
void rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot, const int32_t* positions,
          float freq_base, bool neox);

// rope()'s rotations for n_tok tokens, computed once for every head and layer that rotates at those
// positions with that base (a decode step of Gemma 3 asked for 128 x 3 transcendentals a head group, 52
// times a step): cos and sin, [n_tok][n_rot / 2] each, the very floats rope() computes.
struct RopeTable {
    int64_t n_tok = 0, half = 0;
    std::vector<float> cos, sin;
    void compute(const int32_t* positions, int64_t n_tok, int64_t n_rot, float freq_base);
};
// rope() with the rotations of `table`'s tokens [first_tok, first_tok + n_tok): the same bits.
void rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, const RopeTable& table, int64_t first_tok, bool neox);

// In place over x[0..n): exp(x - max) / sum.
// The four activations below run the active kernel set's (kernel_set.h); the
// scalar reference is kernels/scalar/activations.cpp.
void softmax(float* x, int64_t n);
// In place: x * sigmoid(x).
void silu(float* x, int64_t n);
// In place, ggml's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu(float* x, int64_t n);
// out = silu(gate) * up; out may equal gate or up.
void swiglu(const float* gate, const float* up, float* out, int64_t n);
// out = gelu(gate) * up (gemma's feed-forward); out may equal gate or up.
void geglu(const float* gate, const float* up, float* out, int64_t n);

// The greedy token of logits [n] (n > 0): the index of the first largest value, as numpy's argmax
// picks it; or, when a value is not finite (inf or NaN, which no argmax can rank), -1 - the index of
// the first such value. One read for both: the sampler's finite check and its greedy choice.
int64_t greedy_token(const float* logits, int64_t n);

// attention: ggufsm/attention.h.

}  // namespace ggufsm
