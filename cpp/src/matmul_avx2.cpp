// The AVX2 + FMA + F16C build of the SIMD kernels (matmul_simd.inc).
#define GGUFSM_SIMD_NAMESPACE avx2
#define GGUFSM_SIMD_TABLE_FN avx2_table
#include "matmul_simd.inc"
