// The AVX-512 (VNNI, BW, VL) build: the shared SIMD kernels (matmul_simd.inc),
// with the 32-block kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) replaced by the
// 512-bit ones below.
//
// Why 512-bit when Zen 4 runs each 512-bit op as two 256-bit halves: these
// loops are bound by instruction issue, not by the vector units. Two 32-blocks
// per register halve the loads, shuffles, conversions and FMAs per block; the
// weight and activation scales of a block pair are combined in one 128-bit
// multiply, and the min/offset term rides along in the same vector (lanes 1
// and 3) instead of a separate scalar chain. Measured on the 2-core Zen 4, one
// thread, cache-resident Gemma-3 ffn_down shape, side by side in one run:
// Q4_1 17.4 GB/s (AVX2 build) -> 22.4 (these), Q5_0 13.2 -> 19.6, Q8_0 29.6 ->
// 39.1; the 256-bit VNNI kernels they replace measured 17.6 for Q4_1.
// The same rewrite of the k-quant kernels measured no gain (~20 GB/s for Q4_K
// either way: those loops are bound by their scalar scale unpacking), so they
// stay 256-bit.
#define GGUFSM_SIMD_NAMESPACE avx512
#include "matmul_simd.inc"

namespace ggufsm::kernels {
namespace avx512 {
namespace {

inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

inline uint32_t load32(const void* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// ---- 32-blocks, two per register, against Q8_32 activations ----

// The 64 unsigned 4-bit codes of blocks p0, p1 (16 packed bytes each) in
// activation order: [low nibbles of p0, high of p0, low of p1, high of p1].
inline __m512i nibbles_64(const uint8_t* p0, const uint8_t* p1) {
    __m512i both = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0)));
    both = _mm512_mask_broadcast_i32x4(both, 0xFF00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)));
    return _mm512_and_si512(_mm512_srlv_epi64(both, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(0x0F));
}

// Weight scales of a block pair as four halves: [d0, m0, d1, m1] (with mins)
// or [d0, d0, d1, d1], widened to floats.
template <typename Block, bool Mins>
inline __m128 pair_weight_scales(const Block& b0, const Block& b1) {
    uint64_t h0, h1;
    if constexpr (Mins) {
        h0 = load32(&b0);
        h1 = load32(&b1);
    } else {
        h0 = b0.d | (static_cast<uint32_t>(b0.d) << 16);
        h1 = b1.d | (static_cast<uint32_t>(b1.d) << 16);
    }
    return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(h0 | (h1 << 32))));
}

// Every 32-bit lane of half h of the result is lane 2h of v: a block pair's
// combined scales d_w*d_a spread over the pair's int32 dot-product lanes.
inline __m512 spread_pair_scales(__m128 v) {
    return _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_castps128_ps512(v));
}

// The 64 codes of blocks b0, b1 of a Q4_0/Q4_1/Q5_0/Q5_1 row (unsigned, fifth bit included).
template <typename Block>
inline __m512i codes_64(const Block& b0, const Block& b1) {
    __m512i codes = nibbles_64(b0.qs, b1.qs);
    if constexpr (sizeof(Block) == sizeof(BlockQ5_0) || sizeof(Block) == sizeof(BlockQ5_1)) {
        const __mmask64 fifth = load32(b0.qh) | (static_cast<uint64_t>(load32(b1.qh)) << 32);
        codes = _mm512_mask_add_epi8(codes, fifth, codes, _mm512_set1_epi8(0x10));
    }
    return codes;
}

// One step over blocks (b, b + 1) of a row, or block b alone (Single: the
// second half's activations and scales read as zero). acc accumulates
// d_w d_a sum(code * a) per lane; extra, in lanes 1 and 3, m_w s_a (or d_w s_a).
template <typename Block, bool Mins, int NR, bool Single>
inline void step_32(const Block* w, const QuantizedActivations& x, int64_t i, int64_t b, __m512* acc, __m128* extra) {
    const Block& b1 = Single ? w[b] : w[b + 1];
    const __m512i codes = codes_64(w[b], b1);
    const __m128 wscales = pair_weight_scales<Block, Mins>(w[b], b1);
    for (int k = 0; k < NR; ++k) {
        const int8_t* a = x.qs(i + k) + b * QK32;
        const __m512i act = Single ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, a) : _mm512_load_si512(a);
        const float* ds = x.ds(i + k) + 2 * b;
        const __m128 ascales = Single ? _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(ds))) : _mm_loadu_ps(ds);
        const __m128 scales = _mm_mul_ps(wscales, ascales);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, act);
        acc[k] = _mm512_fmadd_ps(spread_pair_scales(scales), _mm512_cvtepi32_ps(dot), acc[k]);
        extra[k] = _mm_add_ps(extra[k], scales);
    }
}

// Q4_0/Q5_0 (w = d_w (code - Offset)) and Q4_1/Q5_1 (w = d_w code + m_w):
//   sum_b d_w d_a sum(code a) + (m_w, or -Offset d_w) s_a.
// Two accumulators per activation row (even and odd block pairs) keep two FMA chains in flight.
template <typename Block, int Offset, bool Mins, int NR>
void dot_32x2(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    const Block* w = reinterpret_cast<const Block*>(row);
    const int64_t blocks = cols / QK32;
    __m512 acc0[NR], acc1[NR];
    __m128 extra[NR];
    for (int k = 0; k < NR; ++k) {
        acc0[k] = acc1[k] = _mm512_setzero_ps();
        extra[k] = _mm_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 4 <= blocks; b += 4) {
        step_32<Block, Mins, NR, false>(w, x, i, b, acc0, extra);
        step_32<Block, Mins, NR, false>(w, x, i, b + 2, acc1, extra);
    }
    if (b + 2 <= blocks) {
        step_32<Block, Mins, NR, false>(w, x, i, b, acc0, extra);
        b += 2;
    }
    if (b < blocks) step_32<Block, Mins, NR, true>(w, x, i, b, acc1, extra);
    for (int k = 0; k < NR; ++k) {
        const float e = _mm_cvtss_f32(_mm_movehdup_ps(extra[k])) + _mm_cvtss_f32(_mm_shuffle_ps(extra[k], extra[k], 3));
        const float dots = hsum512(_mm512_add_ps(acc0[k], acc1[k]));
        out[k] = Mins ? dots + e : dots - Offset * e;
    }
}

// Q8_0, two blocks per register. Signed codes: |w| * (a with w's sign) keeps
// each product exact in vpdpbusd's u8 x s8.
template <int NR, bool Single>
inline void step_q8_0(const BlockQ8_0* w, const QuantizedActivations& x, int64_t i, int64_t b, __m512* acc) {
    const BlockQ8_0& b1 = Single ? w[b] : w[b + 1];
    const __m512i q = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1.qs)), 1);
    const __m512i magnitude = _mm512_abs_epi8(q);
    const __mmask64 negative = _mm512_movepi8_mask(q);
    const __m128 wscales = pair_weight_scales<BlockQ8_0, false>(w[b], b1);
    for (int k = 0; k < NR; ++k) {
        const int8_t* a = x.qs(i + k) + b * QK32;
        const __m512i act = Single ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, a) : _mm512_load_si512(a);
        const __m512i signed_act = _mm512_mask_sub_epi8(act, negative, _mm512_setzero_si512(), act);
        const float* ds = x.ds(i + k) + 2 * b;
        const __m128 ascales = Single ? _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(ds))) : _mm_loadu_ps(ds);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), magnitude, signed_act);
        acc[k] = _mm512_fmadd_ps(spread_pair_scales(_mm_mul_ps(wscales, ascales)), _mm512_cvtepi32_ps(dot), acc[k]);
    }
}

template <int NR>
void dot_q8_0x2(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    const int64_t blocks = cols / QK32;
    __m512 acc0[NR], acc1[NR];
    for (int k = 0; k < NR; ++k) acc0[k] = acc1[k] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 4 <= blocks; b += 4) {
        step_q8_0<NR, false>(w, x, i, b, acc0);
        step_q8_0<NR, false>(w, x, i, b + 2, acc1);
    }
    if (b + 2 <= blocks) {
        step_q8_0<NR, false>(w, x, i, b, acc0);
        b += 2;
    }
    if (b < blocks) step_q8_0<NR, true>(w, x, i, b, acc1);
    for (int k = 0; k < NR; ++k) out[k] = hsum512(_mm512_add_ps(acc0[k], acc1[k]));
}

KernelTable make_wide_table() {
    KernelTable t = make_table();
    t.rows[2] = rows_n<dot_32x2<BlockQ4_0, 8, false, kRowsAtOnce>, dot_32x2<BlockQ4_0, 8, false, 1>>;
    t.rows[3] = rows_n<dot_32x2<BlockQ4_1, 0, true, kRowsAtOnce>, dot_32x2<BlockQ4_1, 0, true, 1>>;
    t.rows[6] = rows_n<dot_32x2<BlockQ5_0, 16, false, kRowsAtOnce>, dot_32x2<BlockQ5_0, 16, false, 1>>;
    t.rows[7] = rows_n<dot_32x2<BlockQ5_1, 0, true, kRowsAtOnce>, dot_32x2<BlockQ5_1, 0, true, 1>>;
    t.rows[8] = rows_n<dot_q8_0x2<kRowsAtOnce>, dot_q8_0x2<1>>;
    return t;
}

}  // namespace
}  // namespace avx512

const KernelTable& avx512_table() {
    static const KernelTable table = avx512::make_wide_table();
    return table;
}

}  // namespace ggufsm::kernels
