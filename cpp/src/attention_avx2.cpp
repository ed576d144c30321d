// The AVX2 + FMA + F16C build of the attention kernel (attention_simd.inc over vec16_avx2.h).
#include "vec16_avx2.h"

#define GGUFSM_SIMD_NAMESPACE avx2
#include "attention_simd.inc"

namespace ggufsm::kernels {

const AttentionKernels& avx2_attention() {
    static const AttentionKernels kernels = avx2::make_attention_kernels();
    return kernels;
}

}  // namespace ggufsm::kernels
