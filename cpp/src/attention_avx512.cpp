// The AVX-512 build of the attention kernel (attention_simd.inc over vec16_avx512.h).
#include "vec16_avx512.h"

#define GGUFSM_SIMD_NAMESPACE avx512
#include "attention_simd.inc"

namespace ggufsm::kernels {

const AttentionKernels& avx512_attention() {
    static const AttentionKernels kernels = avx512::make_attention_kernels();
    return kernels;
}

}  // namespace ggufsm::kernels
