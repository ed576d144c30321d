// What this CPU runs: the kernel variants (ISAs) the build carries and the
// CPUID and XCR0 bits each needs. Which variant's kernels actually run is
// chosen once, in kernels/kernel_set.h.
#pragma once
#include <string>
#include <vector>

namespace ggufsm {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);                 // "scalar", "avx2", "avx512"
Isa parse_isa(const std::string& name);        // throws InvalidInput naming the choices
// avx2 needs AVX2+FMA+F16C; avx512 needs F, BW, VL, DQ, VNNI and BF16 (the
// flags its files are built with); scalar runs anywhere.
bool cpu_runs(Isa isa);
// The variants this CPU can run, scalar first.
std::vector<Isa> supported_isas();
// The fastest of them.
Isa best_isa();

}  // namespace ggufsm
