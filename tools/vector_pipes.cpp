// Which vector pipes the products' instructions share on this machine, measured, where llvm-mca only models.
//
//     g++ -O2 -mavx2 -pthread tools/vector_pipes.cpp -o /tmp/vector_pipes && /tmp/vector_pipes
//
// Two questions the AVX2 product kernels' design turns on (kernels/x86/matmul_rows8.cpp):
// 1. Does a broadcast from memory (vpbroadcastd ymm, m32: an activation's four codes in every lane) take a
//    vector pipe? llvm-mca's Zen 3 model puts it on pipe 1 or 2, beside the shifts and shuffles; if the
//    hardware runs it on the load pipes alone, sharing broadcasts between weight groups saves no vector work.
//    Answered by timing 16 broadcasts, 16 vpsrlw (pipes 1 and 2 only), and both interleaved.
// 2. Do the two CPUs share one core's vector pipes (SMT siblings under the hypervisor)? Then compute-bound
//    products cannot gain from a second thread. Answered by two threads pinned to cpus 0 and 1, each timing
//    windows of vpmaddubsw: the fastest window while the other thread was inside one of its own, against the
//    fastest while it was not.
// Every figure is the fastest of many short register-only windows, in core cycles (a chain of dependent
// vpaddw, one cycle each, is the clock): a busy machine makes windows slower, never faster.
#include <pthread.h>
#include <sched.h>
#include <x86intrin.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <thread>

namespace {

#define X8(s) s s s s s s s s
#define CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3"

using Case = void (*)(long iterations);

double best_tsc_per_iteration(Case body, long iterations, int windows) {
    uint64_t best = ~uint64_t(0);
    for (int w = 0; w < windows; ++w) {
        const uint64_t start = __rdtsc();
        body(iterations);
        const uint64_t took = __rdtsc() - start;
        if (took < best) best = took;
    }
    return double(best) / double(iterations);
}

alignas(64) int32_t memory[16] = {1, 2, 3, 4};

// A case: its instructions, 16 or 32 of them, in a loop of its own (a call per iteration would cost more than they do).
#define CASE(name, body) \
    void name(long n) { \
        for (long i = 0; i < n; ++i) __asm__ volatile(body ::"r"(memory) : CLOBBERS); \
    }
#define PAIR(a, b) X8(a "\n\t" b "\n\t")
CASE(chain16, PAIR("vpaddw %%ymm1, %%ymm0, %%ymm0", "vpaddw %%ymm1, %%ymm0, %%ymm0"))
CASE(maddubs16, PAIR("vpmaddubsw %%ymm3, %%ymm2, %%ymm0", "vpmaddubsw %%ymm3, %%ymm2, %%ymm1"))
CASE(paddw16, PAIR("vpaddw %%ymm3, %%ymm2, %%ymm0", "vpaddw %%ymm3, %%ymm2, %%ymm1"))
CASE(srlw16, PAIR("vpsrlw $4, %%ymm3, %%ymm0", "vpsrlw $4, %%ymm3, %%ymm1"))
CASE(broadcast16, PAIR("vpbroadcastd (%0), %%ymm0", "vpbroadcastd 4(%0), %%ymm1"))
CASE(broadcast16_srlw16, PAIR("vpbroadcastd (%0), %%ymm0\n\tvpsrlw $4, %%ymm3, %%ymm1", "vpbroadcastd 4(%0), %%ymm0\n\tvpsrlw $4, %%ymm3, %%ymm1"))
CASE(maddubs16_paddw16, PAIR("vpmaddubsw %%ymm3, %%ymm2, %%ymm0\n\tvpaddw %%ymm3, %%ymm2, %%ymm1", "vpmaddubsw %%ymm3, %%ymm2, %%ymm0\n\tvpaddw %%ymm3, %%ymm2, %%ymm1"))
CASE(maddubs16_srlw16, PAIR("vpmaddubsw %%ymm3, %%ymm2, %%ymm0\n\tvpsrlw $4, %%ymm3, %%ymm1", "vpmaddubsw %%ymm3, %%ymm2, %%ymm0\n\tvpsrlw $4, %%ymm3, %%ymm1"))
CASE(maddubs16_pmaddwd16, PAIR("vpmaddubsw %%ymm3, %%ymm2, %%ymm0\n\tvpmaddwd %%ymm3, %%ymm2, %%ymm1", "vpmaddubsw %%ymm3, %%ymm2, %%ymm0\n\tvpmaddwd %%ymm3, %%ymm2, %%ymm1"))

struct Shared {
    std::atomic<int> inside[2] = {};
    double alone[2] = {1e30, 1e30}, together[2] = {1e30, 1e30};
    long together_windows[2] = {};
};

void pinned_windows(Shared& s, int me) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(me, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    constexpr long kIterations = 2000;
    for (int w = 0; w < 100000; ++w) {
        s.inside[me].store(1);
        const bool other_at_start = s.inside[1 - me].load();
        const uint64_t start = __rdtsc();
        maddubs16(kIterations);
        const double tsc = double(__rdtsc() - start) / kIterations;
        const bool other_at_end = s.inside[1 - me].load();
        s.inside[me].store(0);
        if (other_at_start && other_at_end) {
            ++s.together_windows[me];
            if (tsc < s.together[me]) s.together[me] = tsc;
        } else if (!other_at_start && !other_at_end && tsc < s.alone[me]) {
            s.alone[me] = tsc;
        }
    }
}

}  // namespace

int main() {
    constexpr long kIterations = 5000;
    constexpr int kWindows = 2000;
    const double clock = best_tsc_per_iteration(chain16, kIterations, kWindows) / 16;  // tsc per core cycle
    struct Named {
        const char* name;
        Case body;
    };
    const Named cases[] = {{"16 vpmaddubsw", maddubs16},
                          {"16 vpaddw", paddw16},
                          {"16 vpsrlw", srlw16},
                          {"16 vpbroadcastd ymm, m32", broadcast16},
                          {"16 vpbroadcastd m32 + 16 vpsrlw", broadcast16_srlw16},
                          {"16 vpmaddubsw + 16 vpaddw", maddubs16_paddw16},
                          {"16 vpmaddubsw + 16 vpsrlw", maddubs16_srlw16},
                          {"16 vpmaddubsw + 16 vpmaddwd", maddubs16_pmaddwd16}};
    std::printf("core cycles per TSC tick %.3f\n", 1.0 / clock);
    for (const Named& c : cases) {
        std::printf("%-34s %6.2f cycles\n", c.name, best_tsc_per_iteration(c.body, kIterations, kWindows) / clock);
    }
    Shared shared;
    std::thread a(pinned_windows, std::ref(shared), 0), b(pinned_windows, std::ref(shared), 1);
    a.join();
    b.join();
    for (int k = 0; k < 2; ++k) {
        // A window alone may never come (the other thread always inside one of its own): then it says so.
        char alone[32] = "no window";
        if (shared.alone[k] < 1e29) std::snprintf(alone, sizeof alone, "%.2f cycles", shared.alone[k] / clock);
        std::printf("cpu %d: 16 vpmaddubsw alone %s, with the other cpu running them too %.2f cycles (%ld windows)\n", k, alone,
                    shared.together[k] / clock, shared.together_windows[k]);
    }
}
