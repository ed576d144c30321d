// The x86 matmul kernels, written once over 256-bit vectors and compiled per
// ISA variant: AVX2 + FMA + F16C (u8 x s8 products through maddubs/madd) and
// AVX-512 (the same code where AVX512-VNNI turns each u8 x s8 dot into one
// vpdpbusd, and AVX512-BW expands bit masks). On the 2-core Zen 4 this was
// tuned on, 512-bit ops issue as two 256-bit halves, so wider vectors buy only
// fewer instructions; the gain from the AVX-512 variant is VNNI (and its own
// four-block 32-block kernels, kernels/x86/avx512/matmul_32x4.cpp, which
// replace the pairs below in its set). The 32-block kernels read Q8_32
// activations in their grouped layout (matmul.h).
// Semantics are those of kernels/scalar/matmul.cpp; only float summation order differs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/quant.h"
#include "kernels/x86/matmul_rows.h"

namespace ggufsm::kernels::GGUFSM_ISA {
namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// acc (8 x int32) += sums of 4 adjacent u8 * s8 products; u <= 128 and
// |s| <= 127 keep the AVX2 path's int16 pair sums (maddubs) from saturating.
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#ifdef GGUFSM_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 16 packed bytes -> 32 codes: low nibbles first (elements 0..15), then high (16..31).
inline __m256i nibbles_32(const uint8_t* p) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, 0x10 where the bit is set (the fifth bit of a Q5 code).
inline __m256i fifth_bits_32(uint32_t bits) {
#ifdef GGUFSM_VNNI
    return _mm256_maskz_mov_epi8(bits, _mm256_set1_epi8(0x10));
#else
    // Byte k takes byte k/8 of bits, then tests bit k%8 of it.
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(bits)),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
#endif
}

// ---- float weights ----

float dot_f32(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const float* w = reinterpret_cast<const float*>(row);
    const float* a = x.f32(i);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j), _mm256_loadu_ps(a + j), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j + 8), _mm256_loadu_ps(a + j + 8), acc1);
    }
    float tail = 0;
    for (; j < cols; ++j) tail += w[j] * a[j];
    return hsum(_mm256_add_ps(acc0, acc1)) + tail;
}

inline __m256 load8_f16(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline __m256 load8_bf16(const uint8_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <bool Bf16>
float dot_half(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols) {
    const float* a = x.f32(i);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
        const __m256 w0 = Bf16 ? load8_bf16(row + 2 * j) : load8_f16(row + 2 * j);
        const __m256 w1 = Bf16 ? load8_bf16(row + 2 * j + 16) : load8_f16(row + 2 * j + 16);
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a + j), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(a + j + 8), acc1);
    }
    float tail = 0;
    for (; j < cols; ++j) {
        uint16_t h;
        std::memcpy(&h, row + 2 * j, 2);
        tail += (Bf16 ? bf16_to_fp32(h) : half(h)) * a[j];
    }
    return hsum(_mm256_add_ps(acc0, acc1)) + tail;
}

// ---- 32-blocks against Q8_32 activations ----

// Every quantized kernel takes NR activation rows at once (i .. i+NR-1):
// the weight block is loaded and unpacked once and dotted with each of them,
// which is what makes prefill (many rows) cheaper per row than decode.

inline __m256i load_codes(const int8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

// The 32 codes of block b of activation row i in element order (its two halves
// lie 64 bytes apart in the grouped Q8_32 layout, matmul.h).
inline __m256i load_block_codes(const QuantizedActivations& x, int64_t i, int64_t b) {
    const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(x.q8_32_half(i, b, 0)));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), _mm_load_si128(reinterpret_cast<const __m128i*>(x.q8_32_half(i, b, 1))), 1);
}

// Q4_0/Q5_0 (Offset 8/16: w = d_w * (code - Offset)) and Q4_1/Q5_1 (w = d_w * code + m_w):
//   sum_b d_w d_a sum(code*a) + (m_w, or -Offset d_w) * s_a.
// Blocks b, b + 1 (b even) in one step, as the grouped Q8_32 layout lays
// their activations out: the pair's first halves side by side, then their
// second halves. Low nibbles of both blocks meet the first, high nibbles the
// second, so lanes 0..3 of the sum are block b's and 4..7 block b + 1's: one
// conversion and FMA per pair. Single: block b alone (the row's last; its
// partner's activations are the zero padding, and its weights are not read).
// Pairs beat one block per step on either layout (docs/benchmarks.md,
// "Kernel history").
template <typename Block, bool Mins, int NR, bool Single>
inline void step_32x2(const Block* w, const QuantizedActivations& x, int64_t i, int64_t b, __m256* acc, __m128* extra) {
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
    const __m256i packed = Single ? _mm256_zextsi128_si256(q0)
                                  : _mm256_inserti128_si256(_mm256_castsi128_si256(q0), _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b + 1].qs)), 1);
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    __m256i lo = _mm256_and_si256(packed, nibble);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble);
    if constexpr (sizeof(Block) == sizeof(BlockQ5_0) || sizeof(Block) == sizeof(BlockQ5_1)) {
        uint32_t h0, h1 = 0;
        std::memcpy(&h0, w[b].qh, 4);
        if (!Single) std::memcpy(&h1, w[b + 1].qh, 4);
        lo = _mm256_or_si256(lo, fifth_bits_32((h0 & 0xFFFF) | (h1 << 16)));
        hi = _mm256_or_si256(hi, fifth_bits_32((h0 >> 16) | (h1 & 0xFFFF0000u)));
    }
    // [d0, m0, d1, m1] (or [d0, d0, d1, d1]) as floats; zero for a missing partner.
    uint64_t halves;
    if constexpr (Mins) {
        uint32_t h0, h1 = 0;
        std::memcpy(&h0, &w[b], 4);
        if (!Single) std::memcpy(&h1, &w[b + 1], 4);
        halves = h0 | (static_cast<uint64_t>(h1) << 32);
    } else {
        const uint64_t d0 = w[b].d, d1 = Single ? 0 : w[b + 1].d;
        halves = d0 | (d0 << 16) | (d1 << 32) | (d1 << 48);
    }
    const __m128 wscales = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(halves)));
    const __m256i spread = _mm256_set_epi32(2, 2, 2, 2, 0, 0, 0, 0);
    for (int k = 0; k < NR; ++k) {
        const int8_t* a = x.q8_32_half(i + k, b, 0);
        __m256i p = dot_u8s8(_mm256_setzero_si256(), lo, load_codes(a));
        p = dot_u8s8(p, hi, load_codes(a + 64));
        const __m128 scales = _mm_mul_ps(wscales, _mm_loadu_ps(x.ds(i + k) + 2 * b));
        acc[k] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(scales), spread), _mm256_cvtepi32_ps(p), acc[k]);
        extra[k] = _mm_add_ps(extra[k], scales);
    }
}

template <typename Block, int Offset, bool Mins, int NR>
void dot_32(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    const Block* w = reinterpret_cast<const Block*>(row);
    const int64_t blocks = cols / QK32;
    __m256 acc[NR];
    __m128 extra[NR];  // lanes 1 and 3 sum m_w * s_a (or d_w * s_a)
    for (int k = 0; k < NR; ++k) {
        acc[k] = _mm256_setzero_ps();
        extra[k] = _mm_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 2 <= blocks; b += 2) step_32x2<Block, Mins, NR, false>(w, x, i, b, acc, extra);
    if (b < blocks) step_32x2<Block, Mins, NR, true>(w, x, i, b, acc, extra);
    for (int k = 0; k < NR; ++k) {
        const float e = _mm_cvtss_f32(_mm_movehdup_ps(extra[k])) + _mm_cvtss_f32(_mm_shuffle_ps(extra[k], extra[k], 3));
        out[k] = Mins ? hsum(acc[k]) + e : hsum(acc[k]) - Offset * e;
    }
}

// Signed codes: |w| * (a with w's sign) keeps the product exact in u8 x s8.
template <int NR>
void dot_q8_0(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    __m256 acc[NR];
    for (int k = 0; k < NR; ++k) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / QK32; ++b) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
        const __m256i magnitude = _mm256_sign_epi8(q, q);
        const float dw = half(w[b].d);
        for (int k = 0; k < NR; ++k) {
            const __m256i a = load_block_codes(x, i + k, b);
            const __m256i p = dot_u8s8(_mm256_setzero_si256(), magnitude, _mm256_sign_epi8(a, q));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.ds(i + k)[2 * b]), _mm256_cvtepi32_ps(p), acc[k]);
        }
    }
    for (int k = 0; k < NR; ++k) out[k] = hsum(acc[k]);
}

// A batched decode step's 2 .. 8 activation rows against Q8_0 rows in the file's layout (the output
// matrix of SmolLM2 and Gemma 3), all in one pass over each weight row. Each session's logits must keep
// the bits dot_q8_0<1> gives it alone (tests/kernels/test_few_rows.py), which fixes the float work per
// block and activation row: lane j of the int32 sum p (elements 4j .. 4j+3, exact however it is
// made), converted, times the scalar product d_w * d_a, added by one FMA into that row's accumulator,
// and dot_q8_0<1>'s final sum. The int sum is dot_q8_0's sign trick (maddubs of |w| against a with
// w's sign, madd against ones), the weight codes' magnitude made once per block for all rows, against
// the activation codes copied once per call into element order (one load each, where dot_q8_0 joins
// two halves of the grouped layout). It replaced an int16 "deal" of the codes (two madd and a shuffle
// and widening per block) that ran m = 4 at 50 GOP/s a thread in cache (this AVX2 EPYC, 4096 x 576,
// best of 300 calls); this runs 62 (m = 2: 37 -> 55, m = 8: 61 -> 67). Making the scale products
// eight blocks at a time, as a vector, and handing them to the FMAs by a broadcast load or a lane
// permute measured slower (33-35 and 55): the stores and scalar loads of that path stalled the
// store forwarding, and the permute costs as much as the scalar product it saves.

// The activation rows 0 .. n-1 as the few-row Q8_0 pass reads them, block-major so that one pointer walks
// a block's rows: codes [blocks][n][32] in element order, and d_a [blocks][n].
struct FewQ8Activations {
    int64_t blocks = 0;
    std::vector<int8_t> codes;
    std::vector<float> d;
    void fill(const QuantizedActivations& x, int64_t n, int64_t n_blocks) {
        blocks = n_blocks;
        codes.resize(size_t(n * blocks * QK32));
        d.resize(size_t(n * blocks));
        for (int64_t b = 0; b < blocks; ++b) {
            for (int64_t k = 0; k < n; ++k) {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes.data() + (b * n + k) * QK32), load_block_codes(x, k, b));
                d[size_t(b * n + k)] = x.ds(k)[2 * b];
            }
        }
    }
};

// The scale d_w * d_a of each row is a vector product of d_w, broadcast once per block, and d_a, broadcast
// from memory; a float product rounds the same as the scalar one it replaced, so the bits are
// dot_q8_0<1>'s. (It measured m = 4 2% slower, m = 8 3% faster in cache: the float work per row and block
// - convert, scale, FMA - sets this kernel's pace, not the op count: with an int32 add in place of those
// three, m = 4 ran 113 GOP/s a thread against 63; a magic-number conversion in place of vcvtdq2ps, or the
// sum of the int16 pairs by shifts in place of madd, gained nothing or lost.) The activations come as plain
// pointers and a count: read through the thread_local FewQ8Activations inside the loop, GCC reloaded them
// by a TLS lookup (a call) at every block.
template <int NR>
void dot_q8_0_few(const uint8_t* row, const int8_t* codes, const float* da, int64_t blocks, float* out) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    __m256 acc[NR];
    for (int k = 0; k < NR; ++k) acc[k] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < blocks; ++b, codes += NR * QK32, da += NR) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
        const __m256i magnitude = _mm256_sign_epi8(q, q);
        const __m256 dw = _mm256_set1_ps(half(w[b].d));
        for (int k = 0; k < NR; ++k) {
            const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + k * QK32));
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(c, q)), ones);
            acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(da + k)), _mm256_cvtepi32_ps(p), acc[k]);
        }
    }
    for (int k = 0; k < NR; ++k) out[k] = hsum(acc[k]);
}

// Two weight rows against the same NR activation rows: each activation block and scale is loaded once for
// both, and twice the independent accumulator chains are in flight. Per row, the operations are
// dot_q8_0_few's, so the bits are too. In cache, a thread: m = 4 68.0 GOP/s against 64.3 one row at a time,
// m = 3 65.4 against 60.6, but m = 2 48.5 against 54.0 (and m >= 5 would spill its 2 x NR accumulators),
// so rows_q8_0_few takes it at three and four rows. Summing all eight accumulators of m = 4 in one
// transposed tree (hsum's adds in hsum's order) measured 4% slower than eight hsums.
template <int NR>
void dot_q8_0_few2(const uint8_t* row0, const uint8_t* row1, const int8_t* codes, const float* da, int64_t blocks, float* out0, float* out1) {
    const BlockQ8_0* w0 = reinterpret_cast<const BlockQ8_0*>(row0);
    const BlockQ8_0* w1 = reinterpret_cast<const BlockQ8_0*>(row1);
    __m256 acc0[NR], acc1[NR];
    for (int k = 0; k < NR; ++k) acc0[k] = acc1[k] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < blocks; ++b, codes += NR * QK32, da += NR) {
        const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0[b].qs));
        const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1[b].qs));
        const __m256i m0 = _mm256_sign_epi8(q0, q0), m1 = _mm256_sign_epi8(q1, q1);
        const __m256 dw0 = _mm256_set1_ps(half(w0[b].d)), dw1 = _mm256_set1_ps(half(w1[b].d));
        for (int k = 0; k < NR; ++k) {
            const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + k * QK32));
            const __m256 a = _mm256_broadcast_ss(da + k);
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(m0, _mm256_sign_epi8(c, q0)), ones);
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(m1, _mm256_sign_epi8(c, q1)), ones);
            acc0[k] = _mm256_fmadd_ps(_mm256_mul_ps(dw0, a), _mm256_cvtepi32_ps(p0), acc0[k]);
            acc1[k] = _mm256_fmadd_ps(_mm256_mul_ps(dw1, a), _mm256_cvtepi32_ps(p1), acc1[k]);
        }
    }
    for (int k = 0; k < NR; ++k) {
        out0[k] = hsum(acc0[k]);
        out1[k] = hsum(acc1[k]);
    }
}

template <int NR>
void rows_q8_0_few(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    thread_local FewQ8Activations a;
    a.fill(x, NR, w.cols / QK32);
    const int8_t* codes = a.codes.data();
    const float* da = a.d.data();
    const int64_t blocks = a.blocks;
    float out[NR], out1[NR];
    int64_t r = row_begin;
    if constexpr (NR == 3 || NR == 4) {
        for (; r + 2 <= row_end; r += 2) {
            prefetch_row_ahead(base + r * w.row_bytes, 2 * w.row_bytes);
            dot_q8_0_few2<NR>(base + r * w.row_bytes, base + (r + 1) * w.row_bytes, codes, da, blocks, out, out1);
            for (int k = 0; k < NR; ++k) {
                y[k * w.rows + r] = out[k];
                y[k * w.rows + r + 1] = out1[k];
            }
        }
    }
    for (; r < row_end; ++r) {
        prefetch_row_ahead(base + r * w.row_bytes, w.row_bytes);
        dot_q8_0_few<NR>(base + r * w.row_bytes, codes, da, blocks, out);
        for (int k = 0; k < NR; ++k) y[k * w.rows + r] = out[k];
    }
}

// Q8_0 rows: 2 .. kFewRowsMax activation rows in one pass (dot_q8_0_few), others as rows_n takes them.
void rows_q8_0(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    static_assert(kFewRowsMax == 8, "rows_q8_0 has a pass for each width 2 .. 8");
    switch (x.n()) {
        case 2: rows_q8_0_few<2>(w, x, y, row_begin, row_end); break;
        case 3: rows_q8_0_few<3>(w, x, y, row_begin, row_end); break;
        case 4: rows_q8_0_few<4>(w, x, y, row_begin, row_end); break;
        case 5: rows_q8_0_few<5>(w, x, y, row_begin, row_end); break;
        case 6: rows_q8_0_few<6>(w, x, y, row_begin, row_end); break;
        case 7: rows_q8_0_few<7>(w, x, y, row_begin, row_end); break;
        case 8: rows_q8_0_few<8>(w, x, y, row_begin, row_end); break;
        default: rows_n<dot_q8_0<4>, dot_q8_0<1>>(w, x, y, row_begin, row_end); break;
    }
}

// ---- Q8_0 repacked (WeightLayout::Rows8): the lanes across eight weight rows ----

// Activation rows i .. i+NR-1 against one group of eight Q8_0 rows in the Rows8 layout (kernels/repack.h):
// lane r of each vector is row r. Per block and chunk c (elements 4c .. 4c+3), the activation's four
// codes are broadcast and meet the eight rows' codes of that chunk in one u8 x s8 dot (dot_q8_0's sign
// trick: |w| against a with w's sign), the exact int32 block sums adding up in `sum`; then per block
// one convert, one scale product (d_w of the eight rows times d_a) and one FMA serve all eight rows,
// where the file layout's kernels make those three per row and block, and their float work set those
// kernels' pace (an int add in their place ran 113 against 63 GOP/s). In cache, a thread (this AVX2
// EPYC, 4096 x 576, best of 300, a scratch prototype under load): m = 1 97 GOP/s against 39, m = 2 110
// against 51, m = 4 112 against 62, m = 8 126 against 67.
// The float order per output element is one chain: acc = fma(d_w * d_a, float(block sum), acc), blocks
// in order, the same for every NR, so a session's logits are the same bits alone or batched; the scalar
// reference (kernels/scalar/matmul.cpp, dot_q8_0_rows8) runs this order too, so they agree bit for bit.
// The file layout's dot_q8_0 sums 8-lane partial sums and ends with a horizontal sum: a different order.
constexpr int64_t kX8PrefetchBytes = 1024;
template <int NR, bool Prefetch>
inline void q8_0_x8_group(const uint8_t* group, const QuantizedActivations& x, int64_t i, int64_t blocks, float* y, int64_t y_stride) {
    constexpr size_t kX8 = 8 * sizeof(BlockQ8_0);  // d fp16 [8], then qs int8 [8 chunks][8 rows][4]
    const int8_t* a[NR];
    const float* ds[NR];
    __m256 acc[NR];
    for (int k = 0; k < NR; ++k) {
        a[k] = x.qs(i + k);
        ds[k] = x.ds(i + k);
        acc[k] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* x8 = group + size_t(b) * kX8;
        if constexpr (Prefetch) {
            for (int line = 0; line < 5; ++line) _mm_prefetch(reinterpret_cast<const char*>(x8) + kX8PrefetchBytes + 64 * line, _MM_HINT_T0);
        }
        // Chunk c of block b lies in half c / 4 of the grouped Q8_32 layout, 4 (c % 4) bytes in.
        const int64_t block_at = (b >> 2) * 128 + (b & 3) * 16;
        __m256i sum[NR];
        for (int k = 0; k < NR; ++k) sum[k] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x8 + 16 + 32 * c));
            const __m256i magnitude = _mm256_sign_epi8(q, q);
            for (int k = 0; k < NR; ++k) {
                int32_t four;
                std::memcpy(&four, a[k] + block_at + (c >> 2) * 64 + 4 * (c & 3), 4);
                sum[k] = dot_u8s8(sum[k], magnitude, _mm256_sign_epi8(_mm256_set1_epi32(four), q));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x8)));
        for (int k = 0; k < NR; ++k) {
            acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(ds[k][2 * b])), _mm256_cvtepi32_ps(sum[k]), acc[k]);
        }
    }
    for (int k = 0; k < NR; ++k) _mm256_storeu_ps(y + k * y_stride, acc[k]);
}

// Q8_0 Rows8 rows [row_begin, row_end) (multiples of 8): each group against every activation row, up to
// eight at a time (the group, 8 x row_bytes, stays in L1 between passes). The first pass prefetches the
// lines of each x8 block kX8PrefetchBytes ahead as it reads it (the hardware prefetchers start over at
// every 4 KiB page): one burst per group, as rows_one prefetches per row, streamed a 240 MB matrix
// slower than no prefetch at all on 2 MiB pages; per block, 1 KiB ahead, it matched rows_one's rate on
// the file's rows (a scratch stream test, 1 thread: 1, 2, 4 and 8 KiB ahead measured 16.6-17.1, 14.4-15.1,
// 13.0-15.7, 9.7-15.3 GB/s on 2 MiB pages, rows_one 16.2-16.7). Prefetches never fault; past the end of
// the weights they read at most kX8PrefetchBytes + 320 bytes more. Loads stay inside the x8 blocks.
template <bool Prefetch>
inline void q8_0_x8_pass(int64_t m, const uint8_t* group, const QuantizedActivations& x, int64_t i, int64_t blocks, float* out, int64_t stride) {
    switch (m) {
        case 1: q8_0_x8_group<1, Prefetch>(group, x, i, blocks, out, stride); break;
        case 2: q8_0_x8_group<2, Prefetch>(group, x, i, blocks, out, stride); break;
        case 3: q8_0_x8_group<3, Prefetch>(group, x, i, blocks, out, stride); break;
        case 4: q8_0_x8_group<4, Prefetch>(group, x, i, blocks, out, stride); break;
        case 5: q8_0_x8_group<5, Prefetch>(group, x, i, blocks, out, stride); break;
        case 6: q8_0_x8_group<6, Prefetch>(group, x, i, blocks, out, stride); break;
        case 7: q8_0_x8_group<7, Prefetch>(group, x, i, blocks, out, stride); break;
        default: q8_0_x8_group<8, Prefetch>(group, x, i, blocks, out, stride); break;
    }
}

void rows8_q8_0(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t blocks = w.cols / QK32, n = x.n();
    const size_t group_bytes = size_t(blocks) * 8 * sizeof(BlockQ8_0);
    for (int64_t r = row_begin; r < row_end; r += 8) {
        const uint8_t* group = base + size_t(r / 8) * group_bytes;
        for (int64_t i = 0; i < n;) {
            const int64_t m = std::min<int64_t>(n - i, 8);
            float* out = y + i * w.rows + r;
            if (i == 0) {
                q8_0_x8_pass<true>(m, group, x, i, blocks, out, w.rows);
            } else {
                q8_0_x8_pass<false>(m, group, x, i, blocks, out, w.rows);
            }
            i += m;
        }
    }
}

// ---- Q8_0 in the file's layout, in the Rows8 kernels' float order ----

// 8 vectors of eight int32 -> one vector whose lane r is the sum of v[r]'s lanes. Integer adds, so exact
// in any order: only the float work after it fixes a product's bits.
inline __m256i lane_sums_x8(const __m256i v[8]) {
    const __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
    // ab: [v0..v3's lanes 0..3 | v0..v3's lanes 4..7], cd the same for v4..v7.
    const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

// Activation rows i .. i+NR-1 against eight consecutive Q8_0 rows in the file's layout, in q8_0_x8_group's
// float order: per block, the eight rows' exact int32 sums gathered into one vector (lane r: row r), then
// one convert, one scale product (d_w of the eight rows times d_a) and one FMA into that row's lane,
// blocks in order. So a matrix gives the same bits in either layout, and a repack between two steps
// (forward/weights.cpp: the output matrix) changes no result. The per-row float work it shares over
// eight rows pays for the lanes' horizontal adds (bench kernels --decode-shapes; s9-q8order's report).
// Prefetch: per block, five lines of the next group, which covers the next group as the blocks run
// (8 rows x 34 bytes a block = 4.25 lines): the hardware prefetchers start over at every 4 KiB page.
// Prefetches never fault; past the end of the weights they read at most one group (+ 320 bytes) more.
template <int NR, bool Prefetch>
inline void q8_0_lanes_group(const uint8_t* rows, size_t row_bytes, const QuantizedActivations& x, int64_t i, int64_t blocks, float* y,
                             int64_t y_stride) {
    const float* ds[NR];
    __m256 acc[NR];
    for (int k = 0; k < NR; ++k) {
        ds[k] = x.ds(i + k);
        acc[k] = _mm256_setzero_ps();
    }
    const __m256i ones = _mm256_set1_epi16(1);
    const uint8_t* next = rows + 8 * row_bytes;
    for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* block = rows + size_t(b) * sizeof(BlockQ8_0);
        if constexpr (Prefetch) {
            for (int line = 0; line < 5; ++line) {
                _mm_prefetch(reinterpret_cast<const char*>(next) + size_t(b) * 8 * sizeof(BlockQ8_0) + 64 * line, _MM_HINT_T0);
            }
        }
        uint16_t h[8];
        for (int r = 0; r < 8; ++r) std::memcpy(&h[r], block + r * row_bytes, 2);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
        for (int k = 0; k < NR; ++k) {
            const __m256i a = load_block_codes(x, i + k, b);
            __m256i p[8];
            for (int r = 0; r < 8; ++r) {
                const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + r * row_bytes + 2));
                p[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q)), ones);
            }
            acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(ds[k][2 * b])), _mm256_cvtepi32_ps(lane_sums_x8(p)), acc[k]);
        }
    }
    for (int k = 0; k < NR; ++k) _mm256_storeu_ps(y + k * y_stride, acc[k]);
}

// One row in the same order, for the rows after the last whole group of eight.
void q8_0_lanes_row(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t blocks, float* out) {
    const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
    const float* ds = x.ds(i);
    const __m256i ones = _mm256_set1_epi16(1);
    float acc = 0;
    for (int64_t b = 0; b < blocks; ++b) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
        const __m256i a = load_block_codes(x, i, b);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q)), ones);
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
        acc = std::fma(half(w[b].d) * ds[2 * b], static_cast<float>(_mm_cvtsi128_si32(s)), acc);
    }
    *out = acc;
}

template <bool Prefetch>
inline void q8_0_lanes_pass(int64_t m, const uint8_t* rows, size_t row_bytes, const QuantizedActivations& x, int64_t i, int64_t blocks,
                            float* out, int64_t stride) {
    switch (m) {
        case 1: q8_0_lanes_group<1, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
        case 2: q8_0_lanes_group<2, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
        case 3: q8_0_lanes_group<3, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
        case 4: q8_0_lanes_group<4, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
        case 5: q8_0_lanes_group<5, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
        case 6: q8_0_lanes_group<6, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
        case 7: q8_0_lanes_group<7, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
        default: q8_0_lanes_group<8, Prefetch>(rows, row_bytes, x, i, blocks, out, stride); break;
    }
}

// Q8_0 file-layout rows [row_begin, row_end) in the Rows8 order (WeightView::rows8_order): eight rows at a
// time against up to eight activation rows a pass, as rows8_q8_0 takes them (the group stays in L1
// between passes); the rows after the last whole group one by one.
void rows_q8_0_lanes(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const int64_t blocks = w.cols / QK32, n = x.n();
    int64_t r = row_begin;
    for (; r + 8 <= row_end; r += 8) {
        const uint8_t* rows = base + size_t(r) * w.row_bytes;
        for (int64_t i = 0; i < n;) {
            const int64_t m = std::min<int64_t>(n - i, 8);
            if (i == 0) {
                q8_0_lanes_pass<true>(m, rows, w.row_bytes, x, i, blocks, y + i * w.rows + r, w.rows);
            } else {
                q8_0_lanes_pass<false>(m, rows, w.row_bytes, x, i, blocks, y + i * w.rows + r, w.rows);
            }
            i += m;
        }
    }
    for (; r < row_end; ++r) {
        for (int64_t i = 0; i < n; ++i) q8_0_lanes_row(base + size_t(r) * w.row_bytes, x, i, blocks, &y[i * w.rows + r]);
    }
}

// ---- k-quants against Q8_K activations ----

// acc (8 x int32) += pairwise sums of the int16 products p * scale.
inline __m256i add_scaled(__m256i acc, __m256i products16, __m256i scales16) {
#ifdef GGUFSM_VNNI
    return _mm256_dpwssd_epi32(acc, products16, scales16);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(products16, scales16));
#endif
}

// int16 products of adjacent u8 codes and s8 activations, summed in pairs
// (codes <= 63 and |a| <= 127 cannot saturate).
inline __m256i products16(__m256i codes, const int8_t* a) { return _mm256_maddubs_epi16(codes, load_codes(a)); }

// A vector whose every 16-bit lane is lane k of v (v holds the same 8 words in both halves).
inline __m256i broadcast_word(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16(static_cast<int16_t>(((2 * k + 1) << 8) | (2 * k))));
}

inline __m256i load_bsums(const QuantizedActivations& x, int64_t i, int64_t b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums(i) + b * 16));
}

template <typename Block, int NR>
void dot_q45_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    constexpr bool kHasQh = sizeof(Block) == sizeof(BlockQ5_K);
    const Block* w = reinterpret_cast<const Block*>(row);
    const __m256i low_nibble = _mm256_set1_epi8(0x0F);
    __m256 acc[NR];
    for (int k = 0; k < NR; ++k) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        // The eight 6-bit scales and mins (k_scale_min), unpacked in a vector:
        // the scalar shifts it replaces were on every super-block's critical
        // path. With A, B, C the three 32-bit words of scales[12], byte-wise
        //   sc0..3 = A & 63, m0..3 = B & 63, sc4..7 = (C & 15) | (A >> 6) << 4,
        //   m4..7 = (C >> 4) | (B >> 6) << 4.
        const __m128i head = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&w[b]));  // [d|dmin, A, B, C]
        const __m128i low = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(head, _MM_SHUFFLE(3, 3, 2, 1)), _mm_set_epi32(4, 0, 0, 0)),
                                          _mm_set_epi32(0x0F0F0F0F, 0x0F0F0F0F, 0x3F3F3F3F, 0x3F3F3F3F));
        const __m128i top = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(head, _MM_SHUFFLE(2, 1, 0, 0)), 2),
                                          _mm_set_epi32(0x30303030, 0x30303030, 0, 0));
        // [sc0..3, sc4..7, m0..3, m4..7]
        const __m128i unpacked = _mm_shuffle_epi32(_mm_or_si128(low, top), _MM_SHUFFLE(3, 1, 2, 0));
        const __m256i mins32 = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(unpacked, unpacked));
#ifdef GGUFSM_VNNI
        alignas(32) int32_t scale32[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(scale32), _mm256_cvtepu8_epi32(unpacked));
#else
        const __m256i scales16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(unpacked));
#endif
        __m256i qh;
        if constexpr (kHasQh) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh));
        __m256i scaled[NR], scaled2[NR];
        for (int k = 0; k < NR; ++k) scaled[k] = scaled2[k] = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * j));
            __m256i lo = _mm256_and_si256(raw, low_nibble);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibble);
            if constexpr (kHasQh) {
                const __m256i bit = _mm256_set1_epi8(1);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), bit), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), bit), 4));
            }
#ifdef GGUFSM_VNNI
            // One vpdpbusd per 32 codes, then the int32 sums (|sum| <= 4 * 15 * 127,
            // so the low 16 bits are the whole value and the high 16 its sign) times
            // the sub-block scale in one vpdpwssd against [scale, 0] words; the
            // scale comes by a broadcast load, which costs no ALU op; low and high
            // nibbles in two chains (one chain waits out the latency). Replaces
            // maddubs + vpdpwssd + a shuffle per 32 codes (docs/benchmarks.md,
            // "Kernel history").
            const __m256i sc_lo32 = _mm256_set1_epi32(scale32[2 * j]), sc_hi32 = _mm256_set1_epi32(scale32[2 * j + 1]);
            for (int k = 0; k < NR; ++k) {
                const int8_t* a = x.qs(i + k) + b * QK_K + 64 * j;
                scaled[k] = _mm256_dpwssd_epi32(scaled[k], _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, load_codes(a)), sc_lo32);
                scaled2[k] = _mm256_dpwssd_epi32(scaled2[k], _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, load_codes(a + 32)), sc_hi32);
            }
#else
            const __m256i sc_lo16 = broadcast_word(scales16, 2 * j), sc_hi16 = broadcast_word(scales16, 2 * j + 1);
            for (int k = 0; k < NR; ++k) {
                const int8_t* a = x.qs(i + k) + b * QK_K + 64 * j;
                scaled[k] = add_scaled(scaled[k], products16(lo, a), sc_lo16);
                scaled[k] = add_scaled(scaled[k], products16(hi, a + 32), sc_hi16);
            }
#endif
        }
        const float d = half(w[b].d), dmin = half(w[b].dmin);
        for (int k = 0; k < NR; ++k) {
            scaled[k] = _mm256_add_epi32(scaled[k], scaled2[k]);
            // Sum of the activation codes over each 32-element sub-block, from the 16-element sums.
            const __m256i sub_sums = _mm256_madd_epi16(load_bsums(x, i + k, b), _mm256_set1_epi16(1));
            const __m256i mins = _mm256_mullo_epi32(mins32, sub_sums);
            const float da = x.d(i + k)[b];
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(scaled[k]), acc[k]);
            acc[k] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * da), _mm256_cvtepi32_ps(mins), acc[k]);
        }
    }
    for (int k = 0; k < NR; ++k) out[k] = hsum(acc[k]);
}

// Codes are 6-bit unsigned (0..63) with offset 32: sum(sc*(q-32)*a) =
// sum(sc*q*a) - 32 * sum(sc * bsum).
template <int NR>
void dot_q6_k(const uint8_t* row, const QuantizedActivations& x, int64_t i, int64_t cols, float* out) {
    const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(row);
    const __m256i low_nibble = _mm256_set1_epi8(0x0F), two_bits = _mm256_set1_epi8(0x03);
    __m256 acc[NR];
    for (int k = 0; k < NR; ++k) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / QK_K; ++b) {
        const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales)));
        __m256i scaled[NR];
        for (int k = 0; k < NR; ++k) {
            // -32 * sum(sc * bsum)
            scaled[k] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                         _mm256_slli_epi32(_mm256_madd_epi16(load_bsums(x, i + k, b), scales16), 5));
        }
        for (int j = 0; j < 2; ++j) {
            // Scales 8j..8j+7 in both 128-bit halves; each 32 codes span two 16-element sub-blocks.
            const __m256i half_scales = j == 0 ? _mm256_permute2x128_si256(scales16, scales16, 0x00)
                                               : _mm256_permute2x128_si256(scales16, scales16, 0x11);
            const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * j));
            const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * j + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh + 32 * j));
            const __m256i codes[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, low_nibble), _mm256_slli_epi16(_mm256_and_si256(qh, two_bits), 4)),
                _mm256_or_si256(_mm256_and_si256(ql1, low_nibble),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), two_bits), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low_nibble),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), two_bits), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low_nibble),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), two_bits), 4)),
            };
            for (int t = 0; t < 4; ++t) {
                const __m256i pair = _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(((4 * t + 3) << 8) | (4 * t + 2))),
                                                      _mm_set1_epi16(static_cast<int16_t>(((4 * t + 1) << 8) | (4 * t))));
                const __m256i scales = _mm256_shuffle_epi8(half_scales, pair);
                for (int k = 0; k < NR; ++k) {
                    const int8_t* a = x.qs(i + k) + b * QK_K + 128 * j + 32 * t;
                    scaled[k] = add_scaled(scaled[k], products16(codes[t], a), scales);
                }
            }
        }
        const float d = half(w[b].d);
        for (int k = 0; k < NR; ++k) {
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d(i + k)[b]), _mm256_cvtepi32_ps(scaled[k]), acc[k]);
        }
    }
    for (int k = 0; k < NR; ++k) out[k] = hsum(acc[k]);
}

template <float (*Dot)(const uint8_t*, const QuantizedActivations&, int64_t, int64_t)>
void rows(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    drive_rows(w, x, y, row_begin, row_end, Dot);
}

// One activation row (a decode step of one session): a plain mat-vec that
// streams the weights once, row after row. Before each row, every cache line
// of the row kRowPrefetchBytes ahead is prefetched: the hardware prefetchers
// start over at each 4 KiB page, and a row-at-a-time kernel that waits out
// the latency there streamed Q8_0 at 65% of the streaming sum's rate; one
// prefetch per line, issued per row rather than per block (a prefetch per
// block cost a third of the kernel's in-cache rate), brought it to 85-95%
// (a standalone stream test, 1 thread, 4 KiB and 2 MiB pages alike; 2-8 KiB
// ahead measured the same). matmul_rows.h's drivers for several activation
// rows keep leaving the stream to the hardware. Prefetches never fault; past
// the end of the weights they read at most kRowPrefetchBytes more.
constexpr int64_t kRowPrefetchBytes = 4096;

template <DotNFn Dot1>
void rows_one(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    for (int64_t r = row_begin; r < row_end; ++r) {
        const uint8_t* row = base + r * w.row_bytes;
        for (size_t k = 0; k < w.row_bytes; k += 64) _mm_prefetch(reinterpret_cast<const char*>(row) + kRowPrefetchBytes + k, _MM_HINT_T0);
        Dot1(row, x, 0, w.cols, &y[r]);
    }
}

// rows_any (matmul_rows.h), with one activation row through rows_one: the
// same Dot1 per row, so the results are rows_any's bit for bit.
template <DotNFn Dot4, DotNFn Dot3, DotNFn Dot2, DotNFn Dot1>
void rows_stream(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    if (x.n() == 1) {
        rows_one<Dot1>(w, x, y, row_begin, row_end);
    } else {
        rows_any<Dot4, Dot3, Dot2, Dot1>(w, x, y, row_begin, row_end);
    }
}

// rows_q8_0's few-row passes, with one activation row through rows_one (the
// same dot_q8_0<1> per row as rows_q8_0 gives it).
void rows_q8_0_stream(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    if (x.n() == 1) {
        rows_one<dot_q8_0<1>>(w, x, y, row_begin, row_end);
    } else {
        rows_q8_0(w, x, y, row_begin, row_end);
    }
}

}  // namespace

void fill_matmul(KernelSet& set) {
    set.matmul_rows[0] = rows<dot_f32>;
    set.matmul_rows[1] = rows<dot_half<false>>;
    set.matmul_rows[30] = rows<dot_half<true>>;
    set.matmul_rows[2] = rows_stream<dot_32<BlockQ4_0, 8, false, 4>, dot_32<BlockQ4_0, 8, false, 3>, dot_32<BlockQ4_0, 8, false, 2>,
                                  dot_32<BlockQ4_0, 8, false, 1>>;
    set.matmul_rows[3] = rows_stream<dot_32<BlockQ4_1, 0, true, 4>, dot_32<BlockQ4_1, 0, true, 3>, dot_32<BlockQ4_1, 0, true, 2>,
                                  dot_32<BlockQ4_1, 0, true, 1>>;
    set.matmul_rows[6] = rows_stream<dot_32<BlockQ5_0, 16, false, 4>, dot_32<BlockQ5_0, 16, false, 3>, dot_32<BlockQ5_0, 16, false, 2>,
                                  dot_32<BlockQ5_0, 16, false, 1>>;
    set.matmul_rows[7] = rows_stream<dot_32<BlockQ5_1, 0, true, 4>, dot_32<BlockQ5_1, 0, true, 3>, dot_32<BlockQ5_1, 0, true, 2>,
                                  dot_32<BlockQ5_1, 0, true, 1>>;
    set.matmul_rows[8] = rows_q8_0_stream;
    set.matmul_rows8[8] = rows8_q8_0;
    set.matmul_rows_rows8_order[8] = rows_q8_0_lanes;
    set.matmul_rows[12] = rows_stream<dot_q45_k<BlockQ4_K, 4>, dot_q45_k<BlockQ4_K, 3>, dot_q45_k<BlockQ4_K, 2>, dot_q45_k<BlockQ4_K, 1>>;
    set.matmul_rows[13] = rows_stream<dot_q45_k<BlockQ5_K, 4>, dot_q45_k<BlockQ5_K, 3>, dot_q45_k<BlockQ5_K, 2>, dot_q45_k<BlockQ5_K, 1>>;
    set.matmul_rows[14] = rows_stream<dot_q6_k<4>, dot_q6_k<3>, dot_q6_k<2>, dot_q6_k<1>>;
}

}  // namespace ggufsm::kernels::GGUFSM_ISA
