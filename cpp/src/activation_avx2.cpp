// The AVX2 + FMA build of the gated activations (activation_simd.inc over vec16_avx2.h).
#include "vec16_avx2.h"

#define GGUFSM_SIMD_NAMESPACE avx2
#include "activation_simd.inc"

namespace ggufsm::kernels {

const ActivationKernels& avx2_activations() {
    static const ActivationKernels kernels = avx2::make_activation_kernels();
    return kernels;
}

}  // namespace ggufsm::kernels
