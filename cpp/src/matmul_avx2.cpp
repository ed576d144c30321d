// The AVX2 + FMA + F16C build of the SIMD kernels (matmul_simd.inc).
#define GGUFSM_SIMD_NAMESPACE avx2
#include "matmul_simd.inc"

namespace ggufsm::kernels {

const KernelTable& avx2_table() {
    static const KernelTable table = avx2::make_table();
    return table;
}

}  // namespace ggufsm::kernels
