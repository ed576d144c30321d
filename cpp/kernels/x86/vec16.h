// Internal to kernels/x86/: V, a vector of 16 floats, and its operations,
// for the kernels written over it (attention.cpp, activations.cpp): two ymm
// in the AVX2 variant, one zmm in the AVX-512 one.
#pragma once
#include "kernels/x86/simd.h"

#if defined(__AVX512F__)
#include "kernels/x86/avx512/vec16.h"
#else
#include "kernels/x86/avx2/vec16.h"
#endif
