// Internal: the per-ISA gated activations behind ops.h's silu, gelu, swiglu
// and geglu. ops.cpp holds the scalar reference; activation_avx2.cpp and
// activation_avx512.cpp (activation_simd.inc) must agree with it
// (tests/kernels/test_ops.py).
#pragma once
#include <cstdint>

namespace ggufsm::kernels {

// out[i] = act(gate[i]) * up[i], or act(gate[i]) when up is nullptr; out may equal gate or up.
using GatedFn = void (*)(const float* gate, const float* up, float* out, int64_t n);

struct ActivationKernels {
    GatedFn silu = nullptr;  // x * sigmoid(x)
    GatedFn gelu = nullptr;  // ggml's tanh approximation
};

const ActivationKernels& avx2_activations();
const ActivationKernels& avx512_activations();

}  // namespace ggufsm::kernels
