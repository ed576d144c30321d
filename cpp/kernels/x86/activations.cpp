// SiLU and GELU over 16 lanes (V, kernels/x86/vec16.h), compiled per ISA
// variant. Both are x * sigmoid(z) = x / (1 + e^-z): SiLU with z = x, and
// GELU's 0.5 x (1 + tanh(u)) with z = 2u, u = sqrt(2/pi) (x + 0.044715 x^3),
// since 0.5 (1 + tanh(u)) = sigmoid(2u). One exp and one divide per lane
// replace tanhf, which had been a tenth of Gemma 3's prefill.
#include <cmath>

#include "kernels/x86/vec16.h"

namespace ggufsm::kernels::GGUFSM_ISA {

namespace {

constexpr float kTwoSqrt2OverPi = 2.0f * 0.79788456080286535588f;
constexpr float kGeluCubic = 0.044715f;

inline V silu_lanes(V x) { return div(x, add(broadcast(1.0f), exp(sub(zero(), x)))); }
inline V gelu_lanes(V x) {
    const V z = mul(mul(x, broadcast(kTwoSqrt2OverPi)), fmadd(mul(x, x), broadcast(kGeluCubic), broadcast(1.0f)));
    return div(x, add(broadcast(1.0f), exp(sub(zero(), z))));
}
inline float silu_one(float x) { return x / (1.0f + std::exp(-x)); }
inline float gelu_one(float x) { return x / (1.0f + std::exp(-kTwoSqrt2OverPi * x * (1.0f + kGeluCubic * x * x))); }

template <V (*Lanes)(V), float (*One)(float)>
void gated(const float* gate, const float* up, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V a = Lanes(load(gate + i));
        if (up) a = mul(a, load(up + i));
        store(out + i, a);
    }
    for (; i < n; ++i) out[i] = One(gate[i]) * (up ? up[i] : 1.0f);
}

}  // namespace

void fill_activations(KernelSet& set) {
    set.silu = &gated<silu_lanes, silu_one>;
    set.gelu = &gated<gelu_lanes, gelu_one>;
}

}  // namespace ggufsm::kernels::GGUFSM_ISA
