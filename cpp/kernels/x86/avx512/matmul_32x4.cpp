// The AVX-512 variant's 32-block kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0),
// four blocks per 512-bit step; they replace kernels/x86/matmul.cpp's pairs
// in that variant's set (kernels/x86/kernel_set.cpp).
//
// Why 512-bit when Zen 4 runs each 512-bit op as two 256-bit halves: these
// loops are bound by instruction issue, not by the vector units, so what
// counts is ops per byte. A step takes four 32-blocks against activations
// grouped for it (matmul.h): two weight loads, one vpermt2w for the codes and
// one for the scales, two vpdpbusd, and one conversion, scale spread and FMA
// for all four blocks; the min/offset term rides along in the odd lanes of
// the scale vector. Streaming from DRAM, the four-block steps of the 4- and
// 5-bit types pay off only with the software prefetch (matmul_rows.h); the
// figures are in docs/benchmarks.md, "Kernel history". The k-quant kernels
// stay 256-bit (the same rewrite measured no gain); their VNNI scaling and
// vector scale unpacking are in kernels/x86/matmul.cpp.
#if !defined(__AVX512F__)
#error "kernels/x86/avx512/ is compiled only into the AVX-512 variant"
#endif
#include <cstddef>

#include "kernels/quant.h"
#include "kernels/x86/matmul_rows.h"

namespace ggufsm::kernels::GGUFSM_ISA {
namespace {

inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

// ---- 32-blocks, four per step, against grouped Q8_32 activations ----
//
// A step takes four weight blocks (a "group", 4 * sizeof(Block) bytes) from
// two 512-bit loads, L0 = bytes [0, 64) and L1 = bytes [G - 64, G) of the
// group, which overlap instead of reading past it, and gathers from them with
// one vpermt2w each: the 64 packed code bytes (block k's at bytes 16k..16k+15)
// and the 16-bit scales (and Q5 fifth-bit words). Low nibbles then meet the
// activations' first halves and high nibbles the second halves (the grouped
// Q8_32 layout, matmul.h), so lanes 4k..4k+3 of both vpdpbusd results are
// block k's and a step needs one int->float conversion and one FMA.
template <typename Block, bool Mins>
struct Group32 {
    static constexpr bool kQ5 = sizeof(Block) == sizeof(BlockQ5_0) || sizeof(Block) == sizeof(BlockQ5_1);
        static constexpr int kSize = sizeof(Block), kGroup = 4 * kSize, kL1 = kGroup - 64;
    struct Words {
        alignas(64) uint16_t w[32];
    };
    // Word index into (L0, L1) of the 16-bit word at byte `byte` of the group.
    static constexpr uint16_t word(int byte) { return static_cast<uint16_t>(byte + 1 < 64 ? byte / 2 : 32 + (byte - kL1) / 2); }
    static constexpr int qh_offset() {
        if constexpr (kQ5) return offsetof(Block, qh);
        return 0;
    }
    static constexpr Words codes() {
        Words t{};
        for (int j = 0; j < 32; ++j) t.w[j] = word((j / 8) * kSize + static_cast<int>(offsetof(Block, qs)) + 2 * (j % 8));
        return t;
    }
    // Words 0..7: [d0, m0, d1, m1, ...] (or [d0, d0, d1, d1, ...]); 8..11 the
    // low and 12..15 the high qh words of blocks 0..3 (Q5).
    static constexpr Words scales() {
        Words t{};
        for (int k = 0; k < 4; ++k) {
            t.w[2 * k] = word(k * kSize);
            t.w[2 * k + 1] = word(k * kSize + (Mins ? 2 : 0));
            if (kQ5) {
                t.w[8 + k] = word(k * kSize + qh_offset());
                t.w[12 + k] = word(k * kSize + qh_offset() + 2);
            }
        }
        return t;
    }
    static constexpr Words kCodes = codes();
    static constexpr Words kScales = scales();
};

// Every 32-bit lane of quarter q of the result is lane 2q of v: a group's
// combined scales d_w*d_a spread over the group's int32 dot-product lanes.
inline __m512 spread_group_scales(__m256 v) {
    return _mm512_permutexvar_ps(_mm512_set_epi32(6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0), _mm512_castps256_ps512(v));
}

// One step over group g of a row from its two loads. acc accumulates
// d_w d_a sum(code * a) per lane; extra, in odd lanes, m_w s_a (or d_w s_a).
template <typename Block, bool Mins, int NR>
inline void step_32x4(__m512i l0, __m512i l1, __m512i code_index, __m512i scale_index, const QuantizedActivations& x,
                      int64_t i, int64_t g, __m512* acc, __m256* extra) {
    // Keeps l0 and l1 in registers: left alone, GCC folds each load into both
    // vpermt2w as a memory operand, four 64-byte loads per step instead of two.
    __asm__("" : "+v"(l0), "+v"(l1));
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    const __m512i packed = _mm512_permutex2var_epi16(l0, code_index, l1);
    __m512i lo = _mm512_and_si512(packed, nibble);
    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
    const __m512i halves = _mm512_permutex2var_epi16(l0, scale_index, l1);
    if constexpr (Group32<Block, Mins>::kQ5) {
        const __m128i qh = _mm512_extracti32x4_epi32(halves, 1);
        const __m512i fifth = _mm512_set1_epi8(0x10);
        lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(static_cast<uint64_t>(_mm_cvtsi128_si64(qh))), lo, fifth);
        hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(static_cast<uint64_t>(_mm_extract_epi64(qh, 1))), hi, fifth);
    }
    const __m256 wscales = _mm256_cvtph_ps(_mm512_castsi512_si128(halves));
    for (int k = 0; k < NR; ++k) {
        const int8_t* a = x.qs(i + k) + g * 128;
        __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_load_si512(a));
        dot = _mm512_dpbusd_epi32(dot, hi, _mm512_load_si512(a + 64));
        const __m256 scales = _mm256_mul_ps(wscales, _mm256_load_ps(x.ds(i + k) + 8 * g));
        acc[k] = _mm512_fmadd_ps(spread_group_scales(scales), _mm512_cvtepi32_ps(dot), acc[k]);
        extra[k] = _mm256_add_ps(extra[k], scales);
    }
}

// Q4_0/Q5_0 (w = d_w (code - Offset)) and Q4_1/Q5_1 (w = d_w code + m_w):
//   sum_b d_w d_a sum(code a) + (m_w, or -Offset d_w) s_a.
// A last group of 1-3 blocks is read with masked loads: the missing blocks'
// bytes read as zero, so their codes and scales are zero, as are the
// activations' padding codes and scales.
template <typename Block, int Offset, bool Mins, int NR>
void dot_32x4(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    using G = Group32<Block, Mins>;
    const __m512i code_index = _mm512_load_si512(G::kCodes.w), scale_index = _mm512_load_si512(G::kScales.w);
    const int64_t blocks = cols / QK32;
    __m512 acc[NR];
    __m256 extra[NR];
    for (int k = 0; k < NR; ++k) {
        acc[k] = _mm512_setzero_ps();
        extra[k] = _mm256_setzero_ps();
    }
    int64_t g = 0;
    for (; 4 * g + 4 <= blocks; ++g) {
        const uint8_t* p = row + g * G::kGroup;
        prefetch_ahead(p);
        step_32x4<Block, Mins, NR>(_mm512_loadu_si512(p), _mm512_loadu_si512(p + G::kL1), code_index, scale_index, x, i, g,
                                   acc, extra);
    }
    if (4 * g < blocks) {
        const uint8_t* p = row + g * G::kGroup;
        const int bytes = static_cast<int>(blocks - 4 * g) * G::kSize;  // < kGroup
        const __mmask64 m0 = bytes >= 64 ? ~0ull : (1ull << bytes) - 1;
        const __mmask64 m1 = bytes <= G::kL1 ? 0 : (1ull << (bytes - G::kL1)) - 1;  // bytes - kL1 < 64
        step_32x4<Block, Mins, NR>(_mm512_maskz_loadu_epi8(m0, p), _mm512_maskz_loadu_epi8(m1, p + G::kL1), code_index,
                                   scale_index, x, i, g, acc, extra);
    }
    // The odd lanes of extra, times 1 (mins) or -Offset, ride into the final sum.
    const __m256 odd = _mm256_set_ps(Mins ? 1.0f : -Offset, 0, Mins ? 1.0f : -Offset, 0, Mins ? 1.0f : -Offset, 0,
                                     Mins ? 1.0f : -Offset, 0);
    for (int k = 0; k < NR; ++k) {
        out[k] = hsum512(_mm512_add_ps(acc[k], _mm512_zextps256_ps512(_mm256_mul_ps(extra[k], odd))));
    }
}

// Q8_0, four blocks per step. Signed codes: |w| * (a with w's sign) keeps
// each product exact in vpdpbusd's u8 x s8. The 34-byte blocks are read with
// one 256-bit load each (a 136-byte group is past two-register vpermt2w);
// two 128-bit-lane shuffles sort their halves into the grouped order. Tail:
// only the blocks that exist are read, the rest are zero.
template <int NR, bool Tail>
inline void step_q8_0x4(const BlockQ8_0* w, int64_t present, const QuantizedActivations& x, int64_t i, int64_t g,
                        __m512* acc) {
    __m256i q[4];
    uint64_t d = 0;
    for (int k = 0; k < 4; ++k) {
        if (Tail && k >= present) {
            q[k] = _mm256_setzero_si256();
            continue;
        }
        q[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[k].qs));
        d |= static_cast<uint64_t>(w[k].d) << (16 * k);
    }
    const __m512i w01 = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
    const __m512i w23 = _mm512_inserti64x4(_mm512_castsi256_si512(q[2]), q[3], 1);
    const __m512i lo = _mm512_shuffle_i64x2(w01, w23, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i hi = _mm512_shuffle_i64x2(w01, w23, _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i lo_magnitude = _mm512_abs_epi8(lo), hi_magnitude = _mm512_abs_epi8(hi);
    const __mmask64 lo_negative = _mm512_movepi8_mask(lo), hi_negative = _mm512_movepi8_mask(hi);
    const __m128i dh = _mm_cvtsi64_si128(static_cast<long long>(d));
    const __m256 wscales = _mm256_cvtph_ps(_mm_unpacklo_epi16(dh, dh));  // [d0, d0, d1, d1, ...]
    for (int k = 0; k < NR; ++k) {
        const int8_t* a = x.qs(i + k) + g * 128;
        const __m512i a_lo = _mm512_load_si512(a), a_hi = _mm512_load_si512(a + 64);
        const __m512i zero = _mm512_setzero_si512();
        __m512i dot = _mm512_dpbusd_epi32(zero, lo_magnitude, _mm512_mask_sub_epi8(a_lo, lo_negative, zero, a_lo));
        dot = _mm512_dpbusd_epi32(dot, hi_magnitude, _mm512_mask_sub_epi8(a_hi, hi_negative, zero, a_hi));
        const __m256 scales = _mm256_mul_ps(wscales, _mm256_load_ps(x.ds(i + k) + 8 * g));
        acc[k] = _mm512_fmadd_ps(spread_group_scales(scales), _mm512_cvtepi32_ps(dot), acc[k]);
    }
}

template <int NR>
void dot_q8_0x4(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    const int64_t blocks = cols / QK32;
    __m512 acc[NR];
    for (int k = 0; k < NR; ++k) acc[k] = _mm512_setzero_ps();
    int64_t g = 0;
    // No software prefetch here: it cost Q8_0 cache-resident speed and gained
    // nothing streaming.
    for (; 4 * g + 4 <= blocks; ++g) step_q8_0x4<NR, false>(w + 4 * g, 4, x, i, g, acc);
    if (4 * g < blocks) step_q8_0x4<NR, true>(w + 4 * g, blocks - 4 * g, x, i, g, acc);
    for (int k = 0; k < NR; ++k) out[k] = hsum512(acc[k]);
}

// Activation rows per pass over a weight row in a prefill: eight, not the
// shared kernels' four, so a step's weight unpacking (two gathers, nibble
// split, fifth bits, scale conversion) is shared by twice the rows; 32 zmm
// registers hold the eight accumulators and offset terms.
constexpr int kWideRows = 8;

}  // namespace

void fill_matmul_32x4(KernelSet& set) {
    set.matmul_rows[2] = rows_n<dot_32x4<BlockQ4_0, 8, false, kWideRows>, dot_32x4<BlockQ4_0, 8, false, 1>, kWideRows>;
    set.matmul_rows[3] = rows_n<dot_32x4<BlockQ4_1, 0, true, kWideRows>, dot_32x4<BlockQ4_1, 0, true, 1>, kWideRows>;
    set.matmul_rows[6] = rows_n<dot_32x4<BlockQ5_0, 16, false, kWideRows>, dot_32x4<BlockQ5_0, 16, false, 1>, kWideRows>;
    set.matmul_rows[7] = rows_n<dot_32x4<BlockQ5_1, 0, true, kWideRows>, dot_32x4<BlockQ5_1, 0, true, 1>, kWideRows>;
    set.matmul_rows[8] = rows_n<dot_q8_0x4<kRowsAtOnce>, dot_q8_0x4<1>>;
}

}  // namespace ggufsm::kernels::GGUFSM_ISA
