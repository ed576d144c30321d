// The AVX-512 build of the gated activations (activation_simd.inc over vec16_avx512.h).
#include "vec16_avx512.h"

#define GGUFSM_SIMD_NAMESPACE avx512
#include "activation_simd.inc"

namespace ggufsm::kernels {

const ActivationKernels& avx512_activations() {
    static const ActivationKernels kernels = avx512::make_activation_kernels();
    return kernels;
}

}  // namespace ggufsm::kernels
