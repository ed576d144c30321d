// The int8 compute peak of this CPU, measured: the dot-product instruction
// sequence the prefill kernels are built on, in a loop whose operands sit in
// registers (nothing is read from memory), on every thread of a pool at once.
// `ggufsm bench kernels` reports each prefill kernel's GOP/s as a share of it.
//
// One loop per int8 dot-product ISA the machine has, chosen at run time:
//   "avx2"        vpmaddubsw + vpmaddwd + vpaddd (u8 x s8 -> int32), 256-bit: the
//                 sequence the AVX2 kernels run (kernels/x86/matmul.cpp, dot_u8s8)
//   "avx_vnni"    vpdpbusd on 256-bit vectors (AVX-VNNI)
//   "avx512_vnni" vpdpbusd on 512-bit vectors (AVX512-VNNI)
// Each function carries its own target attribute, so this file builds with
// the core's baseline flags and a loop runs only where int8_peak_isas() lists it.
//
// Ops are counted as llama.cpp and vendors count them: 2 per u8 x s8 multiply-add.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/thread_pool.h"

namespace ggufsm {

// The loops this CPU runs, in the order above ("avx2" first; empty without AVX2).
std::vector<std::string> int8_peak_isas();

struct Int8PeakRun {
    double gops = 0;        // best-of-repeats GOP/s (1e9 ops/s) over all the pool's threads
    int64_t checksum = 0;   // sum of every int32 accumulator lane of every thread, last repeat
};

// Runs the `isa` loop for `iterations` steps on each of the pool's threads at
// once, `repeats` times. InvalidInput for an isa this CPU does not run (or
// unknown), for iterations < 1 or repeats < 1.
Int8PeakRun int8_peak(const std::string& isa, int64_t iterations, int repeats, ThreadPool& pool);

// What int8_peak's checksum must be for `threads` threads and `iterations`
// steps, computed in plain C++ from the same operands: the test that each
// loop does the products it claims (tests/kernels/test_bench_kernels.py).
int64_t int8_peak_expected_checksum(const std::string& isa, int64_t iterations, int threads);

// u8 x s8 multiply-adds one step of the `isa` loop does on one thread (ops = 2x this).
int64_t int8_peak_macs_per_step(const std::string& isa);

}  // namespace ggufsm
