// The kernel set: every function the kernels dispatch on the CPU's ISA, as
// one table of function pointers per ISA, and the one place that chooses
// which table runs.
//
// kernels/scalar/ fills the scalar set: plain C++, the reference every SIMD
// kernel is tested against (tests/kernels). kernels/x86/ is written once over
// vector types and compiled once per ISA variant with that variant's flags
// (cpp/CMakeLists.txt), each compilation filling its own set. A set starts as
// a copy of the scalar one and overrides what its ISA does better, so an
// entry an ISA has no kernel for (Q2_K, Q3_K) is the scalar kernel (as
// ggml-cpu's arch-fallback.h maps a missing kernel to the generic one) and
// no call site ever looks for a fallback.
//
// The set in use is chosen once, at first use: the best variant the CPU runs,
// unless GGUFSM_ISA=scalar|avx2|avx512 says otherwise. force() (tests,
// benchmarks) swaps the whole set at once.
//
// Internal to the kernels: the forward and the bindings call matmul.h,
// attention.h and ops.h, which read the active set.
#pragma once
#include <cstdint>

#include "kernels/matmul.h"
#include "runtime/cpu_features.h"

namespace ggufsm::kernels {

// ------------------------------------------------------------------ matmul

// y[i * w.rows + r] = dot(row r of w, activation row i) for r in [row_begin,
// row_end), i in [0, x.n()); x is quantized for w.type (matmul.h).
using MatmulRowsFn = void (*)(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin,
                              int64_t row_end);

// Slots of the matmul table: ggml type ids run from 0 (F32) to 30 (BF16).
constexpr int kTypeSlots = 31;

// Activation quantization (matmul.h's contract), `blocks` blocks of `block`
// floats at x (block a multiple of 32): per block, d = amax / 127 and codes
// q = nearest-even(x * (127 / amax)) into q [blocks * block], d into d [blocks],
// and the sum of each 16 codes into sums16 [blocks * block / 16]. A block whose
// amax is 0 or not finite (an inf or a NaN in it), or so small that 127 / amax
// overflows, gets zero codes and d = amax / 127 (so a non-finite input stays
// visible in the result). Every variant gives the same bytes: the quantized
// activations are bit for bit the same whichever set runs the products.
using QuantizeBlocksFn = void (*)(const float* x, int64_t blocks, int64_t block, int8_t* q, float* d, int16_t* sums16);

// ---------------------------------------------------------------- attention

// One step of the online softmax over one block of positions. The `group`
// query heads q [group][hd] of one token (they read one KV head) hold a
// partial softmax over the positions before block b (o [group][hd], m
// [group], l [group]: with s_j = scale * q.k_j over those positions,
//   m = max_j s_j,  l = sum_j exp(s_j - m),  o = sum_j exp(s_j - m) v_j;
// m = -inf, l = 0, o = 0 before any), and absorb the positions [lo, hi) of the
// block [b, b + kBlock) (b a multiple of kKeyTile, b <= lo < hi <= b + kBlock),
// reading k_tiles [n_ctx / 16][hd][16] and v_rows [n_ctx][hd] of that KV head
// (attention.h's layout). out = o / l at the end, and partials over disjoint
// ranges combine. A token's result depends on its blocks and their order, never on
// what else runs beside it: attention() runs the same steps for a token
// however it groups tokens (tiles, batches), so a token's output is the same
// to the last bit alone or among others.
template <typename T>
using AttendFn = void (*)(const float* q, int64_t group, const T* k_tiles, const T* v_rows, int64_t hd, int64_t b,
                          int64_t lo, int64_t hi, float scale, float* o, float* m, float* l);

// dst [n] = src [n] rounded to the nearest half (ties to even), as floats.
using RoundToHalfFn = void (*)(const float* src, float* dst, int64_t n);

// dst [n] = the half bits nearest src [n]: fp32_to_fp16's (quant.h) in every variant, NaN included
// (sign | 0x7E00), so every set writes the same KV cache.
using ToHalfFn = void (*)(const float* src, uint16_t* dst, int64_t n);

// Positions per online-softmax block: 4 key tiles. The rescale of o costs
// hd multiplies per block and head, so longer blocks amortize it; 64 keeps a
// block's scores in four vector registers.
constexpr int64_t kBlock = 64;

// -------------------------------------------------------------- activations

// out[i] = act(gate[i]) * up[i], or act(gate[i]) when up is nullptr; out may equal gate or up.
using GatedFn = void (*)(const float* gate, const float* up, float* out, int64_t n);

// ---------------------------------------------------------------- the set

struct KernelSet {
    Isa isa = Isa::Scalar;
    MatmulRowsFn matmul_rows[kTypeSlots] = {};  // by ggml type id; nullptr: a type the kernels do not run
    // The same over WeightLayout::Rows8 weights (row_begin, row_end multiples of 8);
    // nullptr: a type that is never repacked (kernels/repack.h).
    MatmulRowsFn matmul_rows8[kTypeSlots] = {};
    // WeightLayout::Rows weights with WeightView::rows8_order: the file's layout summed in matmul_rows8's
    // float order (Q8_0 only; nullptr elsewhere).
    MatmulRowsFn matmul_rows_rows8_order[kTypeSlots] = {};
    QuantizeBlocksFn quantize_blocks = nullptr;
    AttendFn<float> attend_f32 = nullptr;
    AttendFn<uint16_t> attend_f16 = nullptr;
    // The attend kernels need hd % attend_hd_multiple == 0; for other head
    // sizes attention() runs the scalar set's (a shape rule, not an ISA choice).
    int64_t attend_hd_multiple = 1;
    RoundToHalfFn round_to_half = nullptr;  // any n
    ToHalfFn to_half = nullptr;             // any n
    GatedFn silu = nullptr;                 // x * sigmoid(x)
    GatedFn gelu = nullptr;                 // ggml's tanh approximation
};

// The scalar reference set (kernels/scalar/).
const KernelSet& scalar_set();
#if defined(GGUFSM_X86_KERNELS)
// The x86 sets (kernels/x86/), each built with its variant's flags.
namespace avx2 {
KernelSet make_set();
}
namespace avx512 {
KernelSet make_set();
}
#endif

// The set in use. The first call chooses it; a bad GGUFSM_ISA is InvalidInput
// then (and at every call until the environment is fixed).
const KernelSet& active();
// Swaps in the set of `isa` (InvalidInput if the CPU cannot run it).
void force(Isa isa);

// ------------------------------------------------ helpers for the kernel files

// Drives a per-row dot product over rows x activations. The weight row stays
// in L1 while every activation row is dotted with it (prefill); for one
// activation row this is a plain mat-vec streaming the weights once.
// Dot(const uint8_t* weight_row, const QuantizedActivations& x, int64_t i, int64_t cols) -> float
template <typename Dot>
inline void drive_rows(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin,
                       int64_t row_end, Dot dot) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t n = x.n();
    for (int64_t r = row_begin; r < row_end; ++r) {
        const uint8_t* row = base + r * w.row_bytes;
        for (int64_t i = 0; i < n; ++i) y[i * w.rows + r] = dot(row, x, i, w.cols);
    }
}

}  // namespace ggufsm::kernels
