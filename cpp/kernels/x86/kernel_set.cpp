// This variant's kernel set (kernel_set.h): the scalar set, with what the
// x86 files do better written over it.
#include "kernels/x86/simd.h"

namespace ggufsm::kernels::GGUFSM_ISA {

KernelSet make_set() {
    KernelSet set = scalar_set();
#if defined(__AVX512F__)
    set.isa = Isa::Avx512;
#else
    set.isa = Isa::Avx2;
#endif
    fill_matmul(set);
    fill_matmul_rows8(set);
    fill_attention(set);
    fill_activations(set);
    fill_quantize(set);
#if defined(__AVX512F__)
    fill_matmul_32x4(set);
#endif
    return set;
}

}  // namespace ggufsm::kernels::GGUFSM_ISA
