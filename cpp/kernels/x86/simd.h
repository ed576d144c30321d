// Internal to kernels/x86/: what every x86 kernel file shares. These files
// are written once and compiled once per ISA variant (cpp/CMakeLists.txt),
// with that variant's flags and GGUFSM_ISA naming its namespace (avx2 or
// avx512), so the two compilations never share a symbol. Inside a file,
// `#if defined(__AVX512F__)` and friends select what only a variant has, as
// ggml-cpu's arch/x86 files do.
#pragma once
#if !defined(GGUFSM_ISA)
#error "kernels/x86 files are compiled once per ISA variant; cpp/CMakeLists.txt defines GGUFSM_ISA"
#endif
#include <immintrin.h>

#include "kernels/kernel_set.h"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define GGUFSM_VNNI 1
#endif

namespace ggufsm::kernels::GGUFSM_ISA {

// What each file contributes to this variant's set (kernels/x86/kernel_set.cpp).
void fill_matmul(KernelSet& set);       // kernels/x86/matmul.cpp
void fill_matmul_rows8(KernelSet& set); // kernels/x86/matmul_rows8.cpp
void fill_attention(KernelSet& set);    // kernels/x86/attention.cpp
void fill_activations(KernelSet& set);  // kernels/x86/activations.cpp
void fill_quantize(KernelSet& set);     // kernels/x86/quantize.cpp
#if defined(__AVX512F__)
void fill_matmul_32x4(KernelSet& set);  // kernels/x86/avx512/matmul_32x4.cpp
#endif

}  // namespace ggufsm::kernels::GGUFSM_ISA
