// The scalar reference activations: SiLU and GELU, each alone or gating an
// `up` vector, in plain loops; the x86 kernels (kernels/x86/activations.cpp)
// must agree with them (tests/kernels/test_ops.py).
#include <cmath>

#include "kernels/kernel_set.h"

namespace ggufsm::kernels::scalar {

namespace {

float silu_one(float x) { return x / (1.0f + std::exp(-x)); }

// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u), the same function: for x below
// about -3, 1 + tanh(u) cancels to a few bits (to exactly 0 from about x = -5.5), while
// sigmoid keeps full relative precision; and the SIMD kernels compute it so.
float gelu_one(float x) {
    constexpr float kTwoSqrt2OverPi = 2.0f * 0.79788456080286535588f;
    return x / (1.0f + std::exp(-kTwoSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

template <float (*Act)(float)>
void gated(const float* gate, const float* up, float* out, int64_t n) {
    if (up) {
        for (int64_t i = 0; i < n; ++i) out[i] = Act(gate[i]) * up[i];
    } else {
        for (int64_t i = 0; i < n; ++i) out[i] = Act(gate[i]);
    }
}

}  // namespace

void fill_activations(KernelSet& set) {
    set.silu = &gated<silu_one>;
    set.gelu = &gated<gelu_one>;
}

}  // namespace ggufsm::kernels::scalar
