// Run-time choice between the scalar, AVX2 and AVX-512 kernel variants, so one
// build runs on any x86-64. The best variant the CPU supports is chosen at
// first use unless GGUFSM_ISA=scalar|avx2|avx512 says otherwise; force_isa
// changes it later (tests, benchmarks).
#pragma once
#include <string>
#include <vector>

namespace ggufsm {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);                 // "scalar", "avx2", "avx512"
Isa parse_isa(const std::string& name);        // throws InvalidInput naming the choices
// The variants this CPU can run, scalar first. avx2 needs AVX2+FMA+F16C;
// avx512 needs F, BW, VL, DQ, VNNI and BF16 (the flags its files are built with).
std::vector<Isa> supported_isas();
// The variant the kernels use now.
Isa active_isa();
// Throws InvalidInput if the CPU cannot run it.
void force_isa(Isa isa);

}  // namespace ggufsm
