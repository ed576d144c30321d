// Internal: the per-ISA attention kernels behind attention() (attention.h).
// attention_scalar.cpp is the reference; attention_avx2.cpp and
// attention_avx512.cpp (attention_simd.inc) must agree with it
// (tests/kernels/test_attention.py).
#pragma once
#include <cstdint>

namespace ggufsm::kernels {

// The `group` query heads q [group][hd] of one KV head attend its positions
// [begin, end) (begin < end), reading k_tiles [n_ctx / 16][hd][16] and
// v_rows [n_ctx][hd] of that head. With s_j = scale * q.k_j, writes per head
//   m = max_j s_j,  l = sum_j exp(s_j - m),  o [hd] = sum_j exp(s_j - m) v_j
// (a partial softmax: out = o / l, and partials over disjoint ranges combine).
template <typename T>
using AttendFn = void (*)(const float* q, int64_t group, const T* k_tiles, const T* v_rows, int64_t hd, int64_t begin,
                          int64_t end, float scale, float* o, float* m, float* l);

// dst [n] = src [n] rounded to the nearest half (ties to even), as floats.
using RoundToHalfFn = void (*)(const float* src, float* dst, int64_t n);

struct AttentionKernels {
    AttendFn<float> f32 = nullptr;
    AttendFn<uint16_t> f16 = nullptr;
    int64_t hd_multiple = 1;  // the kernels need hd % hd_multiple == 0; otherwise the scalar ones run
    RoundToHalfFn round_to_half = nullptr;  // any n
};

const AttentionKernels& scalar_attention();
const AttentionKernels& avx2_attention();
const AttentionKernels& avx512_attention();

// Positions per online-softmax block: 4 key tiles. The rescale of o costs
// hd multiplies per block and head, so longer blocks amortize it; 64 keeps a
// block's scores in four vector registers.
constexpr int64_t kBlock = 64;

}  // namespace ggufsm::kernels
