// The AVX-512 (VNNI, BW, VL) build of the SIMD kernels (matmul_simd.inc).
#define GGUFSM_SIMD_NAMESPACE avx512
#define GGUFSM_SIMD_TABLE_FN avx512_table
#include "matmul_simd.inc"
