#include "bench/int8_peak.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "errors.h"
#include "runtime/cpu_features.h"

namespace ggufsm {

namespace {

// Independent accumulator chains per step: enough to cover the multiply
// latency (3-5 cycles) at two multiplies per cycle.
constexpr int kChains = 8;
// Operands: 4 unsigned and 2 signed vectors of 64 bytes (the 256-bit loops
// use the first 32), small enough that no int16 pair sum of vpmaddubsw
// saturates and no int32 lane overflows in 2^24 steps (|lane step| <= 4*3*2).
constexpr int kUnsigned = 4, kSigned = 2;
alignas(64) const uint8_t kA[kUnsigned][64] = {
    {0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 2, 2, 3, 3, 0, 0, 2, 0, 3, 1, 0, 2, 1, 3, 3, 1, 0, 2, 1, 3, 2, 0,
     1, 2, 3, 0, 2, 3, 0, 1, 3, 0, 1, 2, 0, 3, 2, 1, 2, 2, 1, 1, 0, 0, 3, 3, 1, 0, 3, 2, 2, 3, 0, 1},
    {3, 3, 3, 3, 0, 0, 0, 0, 1, 2, 1, 2, 2, 1, 2, 1, 0, 3, 0, 3, 3, 0, 3, 0, 1, 1, 1, 1, 2, 2, 2, 2,
     2, 1, 0, 3, 3, 0, 1, 2, 0, 0, 1, 1, 2, 2, 3, 3, 3, 2, 1, 0, 0, 1, 2, 3, 1, 3, 1, 3, 2, 0, 2, 0},
    {1, 0, 0, 1, 2, 3, 3, 2, 0, 1, 1, 0, 3, 2, 2, 3, 1, 1, 0, 0, 3, 3, 2, 2, 0, 2, 0, 2, 1, 3, 1, 3,
     3, 0, 2, 1, 1, 2, 0, 3, 2, 3, 3, 2, 1, 0, 0, 1, 0, 1, 2, 3, 3, 2, 1, 0, 2, 2, 0, 0, 1, 1, 3, 3},
    {2, 3, 1, 0, 0, 1, 3, 2, 3, 2, 0, 1, 1, 0, 2, 3, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 2, 2, 1, 1, 0, 0,
     1, 3, 0, 2, 2, 0, 3, 1, 0, 1, 0, 1, 3, 2, 3, 2, 2, 0, 2, 0, 1, 3, 1, 3, 3, 1, 3, 1, 0, 2, 0, 2},
};
alignas(64) const int8_t kB[kSigned][64] = {
    {1, -1, 2, -2, 0, 1, -1, 2, -2, 0, 1, 1, -1, -1, 2, 2, -2, -2, 0, 0, 1, -2, 2, -1, 0, 2, -1, 1, -2, 0, 1, -1,
     2, 0, -2, 1, -1, 2, 0, -2, 1, -1, 0, 2, -2, 1, 1, 0, -1, 2, -2, 0, 2, -1, 1, -2, 0, 1, 2, -1, -2, 0, 1, 2},
    {-2, 2, -1, 1, 0, -2, 2, 1, -1, 0, 0, 2, -2, 1, -1, 2, 1, 0, -1, -2, 2, 1, 0, -1, -2, 2, 1, 0, -1, 2, -2, 1,
     0, -1, 1, -2, 2, 0, -1, 1, 2, -2, 0, 1, -1, 2, 0, -2, 1, 1, -1, -1, 2, 2, -2, -2, 0, 1, -1, 2, -2, 0, 1, -1},
};

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The empty asm marks the operand as changed each step, so the compiler can
// neither hoist the (loop-invariant) products out of the loop nor fold the
// chains into one multiplication; it emits no instruction.
#define GGUFSM_OPAQUE(v) asm volatile("" : "+x"(v))

template <typename V>
int64_t lanes_sum(const V* acc, int n) {
    int64_t total = 0;
    for (int k = 0; k < n; ++k) {
        int32_t lanes[sizeof(V) / 4];
        std::memcpy(lanes, &acc[k], sizeof(V));
        for (int32_t lane : lanes) total += lane;
    }
    return total;
}

// AVX2 has no u8 x s8 dot product into int32: vpmaddubsw gives int16 pair sums and vpmaddwd widens them. The
// kernels add several pair sums in int16 before one widening (matmul_rows8.cpp), so the multiplier pipes spend
// one op on 32 multiply-adds, not two; the loop does the same, or it would read about half the ceiling they
// reach. The operands keep eight pair sums far inside int16 (8 x 12).
constexpr int64_t kInt16Steps = 8;

__attribute__((target("avx2"))) int64_t loop_avx2(int64_t iterations) {
    __m256i a[kUnsigned], b[kSigned], pairs[kChains], acc[kChains];
    for (int k = 0; k < kUnsigned; ++k) a[k] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kA[k]));
    for (int k = 0; k < kSigned; ++k) b[k] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kB[k]));
    for (int k = 0; k < kChains; ++k) pairs[k] = acc[k] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t it = 0; it < iterations; ++it) {
        for (int k = 0; k < kUnsigned; ++k) GGUFSM_OPAQUE(a[k]);
        for (int k = 0; k < kChains; ++k) {
            pairs[k] = _mm256_add_epi16(pairs[k], _mm256_maddubs_epi16(a[k % kUnsigned], b[k / kUnsigned]));
        }
        if (it % kInt16Steps == kInt16Steps - 1 || it == iterations - 1) {
            for (int k = 0; k < kChains; ++k) {
                acc[k] = _mm256_add_epi32(acc[k], _mm256_madd_epi16(pairs[k], ones));
                pairs[k] = _mm256_setzero_si256();
            }
        }
    }
    return lanes_sum(acc, kChains);
}

__attribute__((target("avx2,avxvnni"))) int64_t loop_avx_vnni(int64_t iterations) {
    __m256i a[kUnsigned], b[kSigned], acc[kChains];
    for (int k = 0; k < kUnsigned; ++k) a[k] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kA[k]));
    for (int k = 0; k < kSigned; ++k) b[k] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kB[k]));
    for (int k = 0; k < kChains; ++k) acc[k] = _mm256_setzero_si256();
    for (int64_t it = 0; it < iterations; ++it) {
        for (int k = 0; k < kUnsigned; ++k) GGUFSM_OPAQUE(a[k]);
        for (int k = 0; k < kChains; ++k) acc[k] = _mm256_dpbusd_avx_epi32(acc[k], a[k % kUnsigned], b[k / kUnsigned]);
    }
    return lanes_sum(acc, kChains);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) int64_t loop_avx512_vnni(int64_t iterations) {
    __m512i a[kUnsigned], b[kSigned], acc[kChains];
    for (int k = 0; k < kUnsigned; ++k) a[k] = _mm512_load_si512(kA[k]);
    for (int k = 0; k < kSigned; ++k) b[k] = _mm512_load_si512(kB[k]);
    for (int k = 0; k < kChains; ++k) acc[k] = _mm512_setzero_si512();
    for (int64_t it = 0; it < iterations; ++it) {
        for (int k = 0; k < kUnsigned; ++k) asm volatile("" : "+v"(a[k]));
        for (int k = 0; k < kChains; ++k) acc[k] = _mm512_dpbusd_epi32(acc[k], a[k % kUnsigned], b[k / kUnsigned]);
    }
    return lanes_sum(acc, kChains);
}

struct Loop {
    const char* name;
    int bytes;  // vector width
    int64_t (*run)(int64_t);
    bool (*present)();
};

const Loop kLoops[] = {
    {"avx2", 32, loop_avx2, [] { return cpu_runs(Isa::Avx2); }},
    {"avx_vnni", 32, loop_avx_vnni, [] { return cpu_runs(Isa::Avx2) && __builtin_cpu_supports("avxvnni"); }},
    {"avx512_vnni", 64, loop_avx512_vnni,
     [] { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"); }},
};

const Loop& loop_named(const std::string& isa, bool must_run) {
    for (const Loop& loop : kLoops) {
        if (isa != loop.name) continue;
        if (must_run && !loop.present()) throw Error(code::InvalidInput, "int8 peak: this CPU cannot run the " + isa + " loop");
        return loop;
    }
    throw Error(code::InvalidInput, "int8 peak: unknown loop '" + isa + "' (avx2, avx_vnni, avx512_vnni)");
}

}  // namespace

std::vector<std::string> int8_peak_isas() {
    std::vector<std::string> names;
    for (const Loop& loop : kLoops) {
        if (loop.present()) names.emplace_back(loop.name);
    }
    return names;
}

int64_t int8_peak_macs_per_step(const std::string& isa) { return int64_t(kChains) * loop_named(isa, false).bytes; }

int64_t int8_peak_expected_checksum(const std::string& isa, int64_t iterations, int threads) {
    const Loop& loop = loop_named(isa, false);
    int64_t per_step = 0;
    for (int k = 0; k < kChains; ++k) {
        for (int j = 0; j < loop.bytes; ++j) per_step += int64_t(kA[k % kUnsigned][j]) * kB[k / kUnsigned][j];
    }
    return per_step * iterations * threads;
}

Int8PeakRun int8_peak(const std::string& isa, int64_t iterations, int repeats, ThreadPool& pool) {
    const Loop& loop = loop_named(isa, true);
    if (iterations < 1 || repeats < 1) throw Error(code::InvalidInput, "int8 peak: need iterations >= 1 and repeats >= 1");
    if (iterations > (int64_t(1) << 24)) throw Error(code::InvalidInput, "int8 peak: at most 2^24 iterations (int32 lanes)");
    const int threads = pool.size();
    std::vector<int64_t> sums(size_t(threads) * 8);  // 64 bytes per thread
    Int8PeakRun result;
    for (int r = 0; r < repeats; ++r) {
        const double start = now_seconds();
        // One item per thread, one chunk each: every thread runs the loop once, all at once.
        pool.parallel_for(threads, [&](int64_t begin, int64_t end, int) {
            for (int64_t t = begin; t < end; ++t) sums[size_t(t) * 8] = loop.run(iterations);
        }, 1);
        const double seconds = now_seconds() - start;
        const double ops = 2.0 * double(int8_peak_macs_per_step(isa)) * double(iterations) * threads;
        result.gops = std::max(result.gops, ops / seconds / 1e9);
        result.checksum = 0;
        for (int t = 0; t < threads; ++t) result.checksum += sums[size_t(t) * 8];
    }
    return result;
}

}  // namespace ggufsm
