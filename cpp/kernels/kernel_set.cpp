// The one dispatch point: which kernel set runs (kernel_set.h).
#include "kernels/kernel_set.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "errors.h"

namespace ggufsm::kernels {

namespace scalar {
void fill_matmul(KernelSet& set);      // kernels/scalar/matmul.cpp
void fill_attention(KernelSet& set);   // kernels/scalar/attention.cpp
void fill_activations(KernelSet& set); // kernels/scalar/activations.cpp
void fill_quantize(KernelSet& set);    // kernels/scalar/quantize.cpp
}  // namespace scalar

namespace {

KernelSet make_scalar_set() {
    KernelSet set;
    set.isa = Isa::Scalar;
    scalar::fill_matmul(set);
    scalar::fill_attention(set);
    scalar::fill_activations(set);
    scalar::fill_quantize(set);
    return set;
}

const KernelSet& set_of(Isa isa) {
    switch (isa) {
#if defined(GGUFSM_X86_KERNELS)
        case Isa::Avx512: {
            static const KernelSet set = avx512::make_set();
            return set;
        }
        case Isa::Avx2: {
            static const KernelSet set = avx2::make_set();
            return set;
        }
#else
        case Isa::Avx512:
        case Isa::Avx2:
#endif
        case Isa::Scalar: break;
    }
    return scalar_set();
}

Isa initial_isa() {
    const char* env = std::getenv("GGUFSM_ISA");
    if (!env || !*env) return best_isa();
    const Isa wanted = parse_isa(env);
    if (!cpu_runs(wanted)) {
        throw Error(code::InvalidInput, std::string("GGUFSM_ISA=") + env + ": this CPU cannot run the " + env + " kernels");
    }
    return wanted;
}

// Chosen by the first call to active(); a throwing initializer is retried at the next call.
std::atomic<const KernelSet*>& active_slot() {
    static std::atomic<const KernelSet*> slot{&set_of(initial_isa())};
    return slot;
}

}  // namespace

const KernelSet& scalar_set() {
    static const KernelSet set = make_scalar_set();
    return set;
}

const KernelSet& active() { return *active_slot().load(std::memory_order_acquire); }

void force(Isa isa) {
    if (!cpu_runs(isa)) throw Error(code::InvalidInput, std::string("this CPU cannot run the ") + isa_name(isa) + " kernels");
    active_slot().store(&set_of(isa), std::memory_order_release);
}

}  // namespace ggufsm::kernels
