// CPUID probing: which kernel variants this CPU runs.
#include "runtime/cpu_features.h"

#include "errors.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define GGUFSM_X86 1
#endif

namespace ggufsm {

namespace {

struct CpuFlags {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false, avx512bf16 = false;
};

CpuFlags probe_cpu() {
    CpuFlags f;
#ifdef GGUFSM_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    if (!osxsave) return f;
    // The OS must save the YMM (and for AVX-512 the opmask/ZMM) state.
    unsigned xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const bool ymm_state = (xcr0_lo & 0x6) == 0x6, zmm_state = (xcr0_lo & 0xE6) == 0xE6;
    if (!ymm_state || __get_cpuid_max(0, nullptr) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    if (zmm_state) {
        f.avx512f = b & (1u << 16);
        f.avx512dq = b & (1u << 17);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512vnni = c & (1u << 11);
        __cpuid_count(7, 1, a, b, c, d);
        f.avx512bf16 = a & (1u << 5);
    }
#endif
    return f;
}

}  // namespace

bool cpu_runs(Isa isa) {
    static const CpuFlags f = probe_cpu();
    switch (isa) {
        case Isa::Scalar: return true;
        case Isa::Avx2: return f.avx2 && f.fma && f.f16c;
        case Isa::Avx512:
            return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni &&
                   f.avx512bf16;
    }
    return false;
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
    }
    return "?";
}

Isa parse_isa(const std::string& name) {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        if (name == isa_name(isa)) return isa;
    }
    throw Error(code::InvalidInput, "unknown ISA '" + name + "': expected scalar, avx2 or avx512");
}

std::vector<Isa> supported_isas() {
    std::vector<Isa> out;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        if (cpu_runs(isa)) out.push_back(isa);
    }
    return out;
}

Isa best_isa() {
    if (cpu_runs(Isa::Avx512)) return Isa::Avx512;
    if (cpu_runs(Isa::Avx2)) return Isa::Avx2;
    return Isa::Scalar;
}

}  // namespace ggufsm
