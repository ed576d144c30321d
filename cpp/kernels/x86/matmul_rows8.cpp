// The register-blocked kernels over Rows8 weights (kernels/repack.h): eight
// weight rows x NA activation rows per pass, every partial sum in registers.
//
// Per block and chunk c (four elements of each of the eight rows, one 32-bit
// lane per row), an activation's four codes are broadcast to every lane and
// one u8 x s8 dot product serves all eight rows. Unlike the row-at-a-time
// kernels (kernels/x86/matmul.cpp) nothing is summed across lanes: lane r
// ends as row r's result, the scales apply as eight-row vectors, and the
// eight results are one store. The unpacking of a block's codes (nibbles,
// fifth bits) is done once for NA activations.
//
// AVX2 has no int32 dot product, so the u8 x s8 pair sums (maddubs, int16)
// are added in int16 before one widening madd: a Q4 code (<= 15) times an
// activation code (|a| <= 127, matmul.cpp) gives pair sums of at most 3810,
// and all eight chunks of a block fit in int16 (30480); a Q5 code (<= 31)
// gives 7874, so four chunks at a time (31496). With VNNI (the AVX-512
// variant) each dot product goes straight into int32.
//
// Semantics are those of the scalar reference (kernels/scalar/matmul.cpp,
// rows8); only float summation order differs.
#include <cstring>

#include "kernels/quant.h"
#include "kernels/repack.h"
#include "kernels/x86/matmul_rows.h"

namespace ggufsm::kernels::GGUFSM_ISA {
namespace {

template <TensorType T>
struct Rows8Format {
    static constexpr bool kMins = T == TensorType::Q4_1 || T == TensorType::Q5_1;
    static constexpr bool kHasQh = T == TensorType::Q5_0 || T == TensorType::Q5_1;
    static constexpr int kOffset = T == TensorType::Q4_0 ? 8 : T == TensorType::Q5_0 ? 16 : 0;
    static constexpr size_t kBlockBytes = T == TensorType::Q4_0 ? 8 * 18 : T == TensorType::Q4_1 ? 8 * 20 : T == TensorType::Q5_0 ? 8 * 22 : 8 * 24;
    static constexpr size_t kQhAt = 16 + (kMins ? 16 : 0);  // repack.h's x8 block: d, m, qh, qs
    static constexpr size_t kQsAt = kQhAt + (kHasQh ? 32 : 0);
};

// Pins an int16 accumulation chain in source order. Integer adds reassociate,
// and GCC would otherwise hoist all of a block's vpmaddubsw for every
// activation row and add them as a tree: some twenty products live at once in
// 16 ymm registers, which spilled (54 ymm stack moves in the Q4_1 kernel, 80 in
// Q4_K). The empty asm makes the accumulator opaque after each step, so each
// product is added as soon as it is made.
inline void in_order(__m256i& v) { __asm__("" : "+x"(v)); }

// The four activation codes of chunk c (elements 4c..4c+3) of block b of row i, in every lane.
inline __m256i broadcast_chunk(const QuantizedActivations& x, int64_t i, int64_t b, int c) {
    int32_t v;
    std::memcpy(&v, x.q8_32_half(i, b, c >> 2) + 4 * (c & 3), 4);
    return _mm256_set1_epi32(v);
}

// Where group_dot finds chunk c of block b of its activation row i + t, its four codes in every lane.
// BroadcastChunks broadcasts them from the quantized activations at every use: at one activation row that is
// 8 of Q5_0's ~58 vector ops a block (vpbroadcastd from memory: a load and an op on vector pipe 1 or 2 each,
// in llvm-mca's Zen 3 model). This machine's Zen 3 runs it on the load pipes alone (tools/vector_pipes.cpp:
// 16 of them beside 16 vpsrlw, which only pipes 1 and 2 run, take the 8 cycles either takes alone), so
// llvm-mca overstates what broadcasting less saves: an instruction to issue and a load, no vector pipe.
// SpreadChunks reads them from a copy laid out already broadcast (SpreadActivations), one aligned 32-byte load
// the vpmaddubsw takes as its memory operand. The same int8 values either way: the same bits.
struct BroadcastChunks {
    const QuantizedActivations& x;
    int64_t i;
    __m256i operator()(int t, int64_t b, int c) const { return broadcast_chunk(x, i + t, b, c); }
};
struct SpreadChunks {
    const __m256i* rows;  // [NA][blocks][8]
    int64_t blocks;
    __m256i operator()(int t, int64_t b, int c) const { return _mm256_load_si256(rows + (t * blocks + b) * 8 + c); }
};

// Activation rows with every chunk already broadcast, [n][blocks][8] vectors, in a buffer per thread kept
// between calls. Filled once per kernel call (per thread's share of a product): blocks * 8 broadcasts a row,
// against blocks * 8 per group of eight weight rows saved. Only for one or two activation rows and at most
// kMaxBytes: the copy is 8x the codes (Gemma 3's 640 columns: 5 KiB a row) and must stay in L1 beside the
// weight stream; at four rows a pre-broadcast copy (Q4_K's, measured) left L1 and lost.
class SpreadActivations {
public:
    static constexpr int64_t kMaxRows = 2;
    static constexpr size_t kMaxBytes = 16 * 1024;
    static bool fits(const QuantizedActivations& x, int64_t blocks) {
        return x.n() >= 1 && x.n() <= kMaxRows && size_t(x.n() * blocks) * 8 * sizeof(__m256i) <= kMaxBytes;
    }
    // x's rows, spread; valid until the next call on this thread.
    static const __m256i* of(const QuantizedActivations& x, int64_t blocks) {
        alignas(64) thread_local __m256i buffer[kMaxBytes / sizeof(__m256i)];
        __m256i* out = buffer;
        for (int64_t i = 0; i < x.n(); ++i) {
            const int8_t* row = x.qs(i);  // once: the stores may alias x's fields, which GCC then reloaded at every chunk
            for (int64_t b = 0; b < blocks; ++b) {
                for (int c = 0; c < 8; ++c) {
                    int32_t v;
                    std::memcpy(&v, row + (b >> 2) * 128 + (c >> 2) * 64 + (b & 3) * 16 + 4 * (c & 3), 4);
                    _mm256_store_si256(out++, _mm256_set1_epi32(v));
                }
            }
        }
        return buffer;
    }
};

// The four activation codes at `p` in every lane.
inline __m256i broadcast_codes(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// The weight stream's software prefetch, per x8 block of `bytes`. A decode
// step (Stream: one activation row, or the 2 .. 8 rows of a batched step,
// rows8_few) prefetches every cache line of the block kPrefetchBytes ahead:
// with matmul_rows.h's one prefetch per block, a Q4_K (1184 bytes) or Q6_K
// (1680 bytes) block had one line in 19 or 27 requested and the rest waited
// on the hardware prefetchers, which start over at each 4 KiB page. A batched
// step takes longer per block than one row, but with one prefetch per block it
// still streamed at about half the one-row rate (m = 4), its compute and its
// weight stream taking turns. A prefill (rows8 past kFewRowsMax rows, each
// group read again for every four activation rows) keeps the one per block.
// Unrolled: GCC kept the loop rolled for the k-quants, an add, a compare and a branch beside each of a Q4_K
// block's 19 prefetches and a Q6_K block's 27.
// A pass over G groups at once streams G times the bytes a block step, so it looks G times as far ahead: the
// same lead in time. At kPrefetchBytes two groups' block steps reached their prefetched lines 16-33 steps
// later instead of 51 (576 columns), and at 1536 columns the first group's prefetches fell in the second's.
template <bool Stream, int G = 1>
inline void prefetch_block(const uint8_t* blk, size_t bytes) {
    if constexpr (Stream) {
#pragma GCC unroll 32
        for (size_t k = 0; k < bytes; k += 64) _mm_prefetch(reinterpret_cast<const char*>(blk) + G * kPrefetchBytes + k, _MM_HINT_T0);
    } else {
        prefetch_ahead(blk);
    }
}

// Eight rows (the group at `group`) dotted with activation rows i .. i+NA-1: out[t] lane r = y[i+t][row r].
template <TensorType T, int NA, bool Stream, typename Chunks>
inline void group_dot(const uint8_t* group, const QuantizedActivations& x, int64_t i, int64_t blocks, const Chunks& chunk,
                      __m256* out) {
    using F = Rows8Format<T>;
    // The mins (m_w * s_a) or offsets (-Offset * d_w * s_a), summed over the blocks in `extra`. For one or two
    // activation rows, in the main loop: a second pass there is a chain of dependent FMAs (4 cycles a block,
    // llvm-mca znver3, after Q5_0's ~14 of the main loop), while in the loop it overlaps the codes' arithmetic
    // and the offsets reuse the converted d_w. For more, in a second pass over the group's scales (still in
    // cache), which keeps the main loop's accumulators in registers (merged at three rows it spilled and gained
    // nothing). The same fused multiply-adds in the same order either way: the same bits.
    constexpr bool kExtraInLoop = NA <= 2;
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    __m256 acc[NA], extra[NA];
    for (int t = 0; t < NA; ++t) acc[t] = extra[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = group + size_t(b) * F::kBlockBytes;
        prefetch_block<Stream>(blk, F::kBlockBytes);
        __m256i hb = _mm256_setzero_si256();
        if constexpr (F::kHasQh) hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + F::kQhAt));
        __m256i sum32[NA];
#ifndef GGUFSM_VNNI
        __m256i sum16[NA];
        for (int t = 0; t < NA; ++t) sum16[t] = _mm256_setzero_si256();
#endif
        for (int t = 0; t < NA; ++t) sum32[t] = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + F::kQsAt + 32 * j));
            __m256i lo, hi;  // chunks j and 4 + j
            if constexpr (F::kHasQh) {
                // The five-bit layout (repack.h): chunk j whole in bits 0..4 of vector j; chunk 4 + j's low
                // three bits in its bits 5..7 and its top two in bits 2j, 2j + 1 of hb, moved to bits 3..4.
                // The 16-bit shifts carry bits across bytes only into bits the masks clear.
                lo = _mm256_and_si256(packed, _mm256_set1_epi8(0x1F));
                const __m256i tops = j < 2 ? _mm256_slli_epi16(hb, 3 - 2 * j) : _mm256_srli_epi16(hb, 2 * j - 3);
                hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(packed, 5), _mm256_set1_epi8(0x07)),
                                     _mm256_and_si256(tops, _mm256_set1_epi8(0x18)));
            } else {
                lo = _mm256_and_si256(packed, nibble);
                hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble);
            }
            for (int t = 0; t < NA; ++t) {
                const __m256i a_lo = chunk(t, b, j), a_hi = chunk(t, b, 4 + j);
#ifdef GGUFSM_VNNI
                sum32[t] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(sum32[t], lo, a_lo), hi, a_hi);
#else
                sum16[t] = _mm256_add_epi16(sum16[t], _mm256_maddubs_epi16(lo, a_lo));
                sum16[t] = _mm256_add_epi16(sum16[t], _mm256_maddubs_epi16(hi, a_hi));
                in_order(sum16[t]);
                if (F::kHasQh && j == 1) {
                    sum32[t] = _mm256_madd_epi16(sum16[t], _mm256_set1_epi16(1));
                    sum16[t] = _mm256_setzero_si256();
                }
#endif
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
        for (int t = 0; t < NA; ++t) {
#ifndef GGUFSM_VNNI
            sum32[t] = _mm256_add_epi32(sum32[t], _mm256_madd_epi16(sum16[t], _mm256_set1_epi16(1)));
#endif
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x.ds(i + t)[2 * b])), _mm256_cvtepi32_ps(sum32[t]), acc[t]);
        }
        if constexpr (kExtraInLoop) {
            const __m256 v = F::kMins ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16))) : dw;
            for (int t = 0; t < NA; ++t) extra[t] = _mm256_fmadd_ps(v, _mm256_set1_ps(x.ds(i + t)[2 * b + 1]), extra[t]);
        }
    }
    for (int64_t b = 0; b < (kExtraInLoop ? 0 : blocks); ++b) {
        const uint8_t* blk = group + size_t(b) * F::kBlockBytes + (F::kMins ? 16 : 0);
        const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
        for (int t = 0; t < NA; ++t) extra[t] = _mm256_fmadd_ps(v, _mm256_set1_ps(x.ds(i + t)[2 * b + 1]), extra[t]);
    }
    for (int t = 0; t < NA; ++t) {
        out[t] = F::kMins ? _mm256_add_ps(acc[t], extra[t]) : _mm256_fnmadd_ps(_mm256_set1_ps(float(F::kOffset)), extra[t], acc[t]);
    }
}

// group_dot over two groups at once (the second at group + group_bytes), for the Q4 formats' passes of more
// than one activation row (rows8_few, rows8): out[g * NA + t] lane r = y[i+t][row r of group g]. Each
// activation broadcast and row scale serves both groups: at m = 2..4 a block's 8 NA broadcasts and their
// address arithmetic were a third of its instructions, the products' floor (8 NA maddubs, as many int16
// adds) the rest. Each row's integer sums and float steps are group_dot's in the same order (its mins in the
// second pass, as group_dot's past two rows): the same bits. The Q5 formats keep group_dot: their fifth
// bits leave no registers for a second group's sums.
template <TensorType T, int NA, bool Stream>
inline void group_dot_pair(const uint8_t* group, size_t group_bytes, const QuantizedActivations& x, int64_t i, int64_t blocks,
                           __m256* out) {
    using F = Rows8Format<T>;
    static_assert(!F::kHasQh, "two groups at once only for the Q4 formats (registers)");
    constexpr int G = 2;
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    // Each activation row's codes are reached from one pointer per block (q8_32_half(b, 0); its second half a
    // fixed distance on): left to itself, GCC computed every (row, chunk) address of a block apart, and at
    // four rows kept them on the stack.
    const ptrdiff_t second_half = x.q8_32_half(i, 0, 1) - x.q8_32_half(i, 0, 0);
    __m256 acc[G * NA], extra[G * NA];
    for (int k = 0; k < G * NA; ++k) acc[k] = extra[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* blk[G];
        for (int g = 0; g < G; ++g) {
            blk[g] = group + g * group_bytes + size_t(b) * F::kBlockBytes;
            prefetch_block<Stream, G>(blk[g], F::kBlockBytes);
        }
        const int8_t* a[NA];
        for (int t = 0; t < NA; ++t) {
            a[t] = x.q8_32_half(i + t, b, 0);
            __asm__("" : "+r"(a[t]));
        }
#ifdef GGUFSM_VNNI
        __m256i sum32[G * NA];
        for (int k = 0; k < G * NA; ++k) sum32[k] = _mm256_setzero_si256();
#else
        __m256i sum16[G * NA];
        for (int k = 0; k < G * NA; ++k) sum16[k] = _mm256_setzero_si256();
#endif
        for (int j = 0; j < 4; ++j) {
            __m256i lo[G], hi[G];  // chunks j and 4 + j
            for (int g = 0; g < G; ++g) {
                const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[g] + F::kQsAt + 32 * j));
                lo[g] = _mm256_and_si256(packed, nibble);
                hi[g] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble);
            }
            for (int t = 0; t < NA; ++t) {
                const __m256i a_lo = broadcast_codes(a[t] + 4 * j), a_hi = broadcast_codes(a[t] + second_half + 4 * j);
                for (int g = 0; g < G; ++g) {
                    const int k = g * NA + t;
#ifdef GGUFSM_VNNI
                    sum32[k] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(sum32[k], lo[g], a_lo), hi[g], a_hi);
#else
                    sum16[k] = _mm256_add_epi16(sum16[k], _mm256_maddubs_epi16(lo[g], a_lo));
                    sum16[k] = _mm256_add_epi16(sum16[k], _mm256_maddubs_epi16(hi[g], a_hi));
                    in_order(sum16[k]);
#endif
                }
            }
        }
        for (int g = 0; g < G; ++g) {
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[g])));
            for (int t = 0; t < NA; ++t) {
                const int k = g * NA + t;
#ifdef GGUFSM_VNNI
                const __m256i sum = sum32[k];
#else
                const __m256i sum = _mm256_madd_epi16(sum16[k], _mm256_set1_epi16(1));
#endif
                acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x.ds(i + t)[2 * b])), _mm256_cvtepi32_ps(sum), acc[k]);
            }
        }
    }
    // Both groups' mins in one pass: each activation's s_a broadcast once for the two groups. A pass per group
    // broadcast it twice (at four rows 8 broadcasts a block pair beside 8 FMAs; a broadcast from memory takes a
    // vector pipe in llvm-mca's Zen 3 model, not on the hardware: BroadcastChunks): one pass measured 1.04-1.10x
    // in cache at m = 2..8. Each row's FMAs run over the blocks in the same order: the same bits.
    for (int64_t b = 0; b < blocks; ++b) {
        __m256 v[G];
        for (int g = 0; g < G; ++g) {
            const uint8_t* blk = group + g * group_bytes + size_t(b) * F::kBlockBytes + (F::kMins ? 16 : 0);
            v[g] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
        }
        for (int t = 0; t < NA; ++t) {
            const __m256 s = _mm256_set1_ps(x.ds(i + t)[2 * b + 1]);
            for (int g = 0; g < G; ++g) extra[g * NA + t] = _mm256_fmadd_ps(v[g], s, extra[g * NA + t]);
        }
    }
    for (int k = 0; k < G * NA; ++k) {
        out[k] = F::kMins ? _mm256_add_ps(acc[k], extra[k]) : _mm256_fnmadd_ps(_mm256_set1_ps(float(F::kOffset)), extra[k], acc[k]);
    }
}

// Q4_K (repack.h's super-block layout): per sub-block, the eight chunks'
// maddubs sums stay in int16 (8 x 3810 at most) and one madd against the
// rows' scales as (sc, sc) words widens and scales them at once. The mins
// (dmin * m * the activations' sub-block sums) take a second pass, as above.
template <int NA, bool Stream>
inline void group_dot_q4_k(const uint8_t* group, const QuantizedActivations& x, int64_t i, int64_t blocks, __m256* out) {
    constexpr size_t kX8 = 1184, kSc = 32, kM = 96, kQs = 160;
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    __m256 acc[NA];
    for (int t = 0; t < NA; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = group + size_t(b) * kX8;
        prefetch_block<Stream>(blk, kX8);
        __m256i sum32[NA];
        for (int t = 0; t < NA; ++t) sum32[t] = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            for (int h = 0; h < 2; ++h) {
                __m256i sum16[NA];
                for (int t = 0; t < NA; ++t) sum16[t] = _mm256_setzero_si256();
                for (int v = 0; v < 8; ++v) {
                    const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQs + 256 * j + 32 * v));
                    const __m256i codes = h ? _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble) : _mm256_and_si256(packed, nibble);
                    for (int t = 0; t < NA; ++t) {
                        int32_t a;
                        std::memcpy(&a, x.qs(i + t) + b * QK_K + 64 * j + 32 * h + 4 * v, 4);
                        sum16[t] = _mm256_add_epi16(sum16[t], _mm256_maddubs_epi16(codes, _mm256_set1_epi32(a)));
                        in_order(sum16[t]);
                    }
                }
                const __m256i sc = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + kSc + 8 * (2 * j + h))));
                const __m256i sc_words = _mm256_or_si256(sc, _mm256_slli_epi32(sc, 16));
                for (int t = 0; t < NA; ++t) sum32[t] = _mm256_add_epi32(sum32[t], _mm256_madd_epi16(sum16[t], sc_words));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
        for (int t = 0; t < NA; ++t) {
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x.d(i + t)[b])), _mm256_cvtepi32_ps(sum32[t]), acc[t]);
        }
    }
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = group + size_t(b) * kX8;
        const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)));
        __m256i m_words[4];  // lane r: (m of sub-block 2p, of 2p + 1)
        for (int p = 0; p < 4; ++p) m_words[p] = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kM + 16 * p)));
        for (int t = 0; t < NA; ++t) {
            // The activations' eight sub-block sums (|sum| <= 32 * 127 fits int16), as word pairs.
            const __m256i sums = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums(i + t) + b * 16)), ones);
            alignas(32) int32_t pairs[8];  // 128-bit lanes: [s0 s1 | s2 s3 | s0 s1 | s2 s3], [s4 s5 | ...]
            _mm256_store_si256(reinterpret_cast<__m256i*>(pairs), _mm256_packs_epi32(sums, sums));
            __m256i mins = _mm256_madd_epi16(m_words[0], _mm256_set1_epi32(pairs[0]));
            mins = _mm256_add_epi32(mins, _mm256_madd_epi16(m_words[1], _mm256_set1_epi32(pairs[1])));
            mins = _mm256_add_epi32(mins, _mm256_madd_epi16(m_words[2], _mm256_set1_epi32(pairs[4])));
            mins = _mm256_add_epi32(mins, _mm256_madd_epi16(m_words[3], _mm256_set1_epi32(pairs[5])));
            acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, _mm256_set1_ps(x.d(i + t)[b])), _mm256_cvtepi32_ps(mins), acc[t]);
        }
    }
    for (int t = 0; t < NA; ++t) out[t] = acc[t];
}

// Q6_K (repack.h): codes 0..63 with offset 32, so
//   sum sc (q - 32) a = sum sc q a - 32 sum sc bsum16,
// the second from the scales as (sc[2p], sc[2p+1]) word pairs against the
// activations' 16-element sums, which lie in memory as the matching pairs.
// A sub-block's three code vectors give its first three chunks by one AND
// each; the fourth chunk's six bits, two in the top of each vector, are
// gathered by three ANDs, two ORs and three shifts: 11 vector ops per
// sub-block's codes, where the layout with ql nibbles and qh bit pairs took
// 17 (and the loads and shifts of that unpack, not the products, set the
// pace at one activation row). A pair sum of maddubs is at most
// 2 x 63 x 127 = 16002, so two chunks add in int16 before the madd against
// (sc, sc) words widens and scales them. The integer sum of a super-block is
// exact in any order, so each row's result has the bits of any other order
// of these integer steps.
template <int NA, bool Stream>
inline void group_dot_q6_k(const uint8_t* group, const QuantizedActivations& x, int64_t i, int64_t blocks, __m256* out) {
    constexpr size_t kX8 = 1680, kSc = 16, kCodes = 144;
    const __m256i six = _mm256_set1_epi8(0x3F), top = _mm256_set1_epi8(static_cast<char>(0xC0));
    // Byte shuffles within each 128-bit half: 32-bit lane j takes its word 0 (bytes 4j, 4j+1) twice, or its word 1.
    const __m256i first_word = _mm256_setr_epi32(0x01000100, 0x05040504, 0x09080908, 0x0D0C0D0C, 0x01000100, 0x05040504, 0x09080908, 0x0D0C0D0C);
    const __m256i second_word = _mm256_add_epi8(first_word, _mm256_set1_epi8(2));
    __m256 acc[NA];
    for (int t = 0; t < NA; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = group + size_t(b) * kX8;
        prefetch_block<Stream>(blk, kX8);
        auto scale_pairs = [&](int p) {
            return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kSc + 16 * p)));
        };
        __m256i sum32[NA];
        for (int t = 0; t < NA; ++t) {
            __m256i offset = _mm256_setzero_si256();
            const int16_t* bsums = x.bsums(i + t) + b * 16;
            for (int p = 0; p < 8; ++p) {
                int32_t pair;
                std::memcpy(&pair, bsums + 2 * p, 4);
                offset = _mm256_add_epi32(offset, _mm256_madd_epi16(scale_pairs(p), _mm256_set1_epi32(pair)));
            }
            sum32[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
        }
        for (int s = 0; s < 16; ++s) {  // sub-block s: chunks 4s .. 4s + 3
            const __m256i sc_words = _mm256_shuffle_epi8(scale_pairs(s / 2), s % 2 ? second_word : first_word);
            const uint8_t* v = blk + kCodes + 96 * s;
            const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
            const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 32));
            const __m256i v2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 64));
            // The fourth chunk's bits 0..1, 2..3, 4..5 sit at bits 6..7 of v0, v1, v2. The 16-bit shifts move
            // bits across bytes only where the masks left zeros.
            __m256i fourth = _mm256_and_si256(v0, top);
            fourth = _mm256_or_si256(_mm256_srli_epi16(fourth, 2), _mm256_and_si256(v1, top));
            fourth = _mm256_or_si256(_mm256_srli_epi16(fourth, 2), _mm256_and_si256(v2, top));
            const __m256i codes[4] = {_mm256_and_si256(v0, six), _mm256_and_si256(v1, six), _mm256_and_si256(v2, six),
                                      _mm256_srli_epi16(fourth, 2)};
            for (int t = 0; t < NA; ++t) {
                const int8_t* a = x.qs(i + t) + b * QK_K + 16 * s;
                __m256i sum16[2];
                for (int h = 0; h < 2; ++h) {
                    int32_t a0, a1;
                    std::memcpy(&a0, a + 8 * h, 4);
                    std::memcpy(&a1, a + 8 * h + 4, 4);
                    sum16[h] = _mm256_add_epi16(_mm256_maddubs_epi16(codes[2 * h], _mm256_set1_epi32(a0)),
                                                _mm256_maddubs_epi16(codes[2 * h + 1], _mm256_set1_epi32(a1)));
                    in_order(sum16[h]);
                }
                sum32[t] = _mm256_add_epi32(sum32[t], _mm256_add_epi32(_mm256_madd_epi16(sum16[0], sc_words),
                                                                       _mm256_madd_epi16(sum16[1], sc_words)));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
        for (int t = 0; t < NA; ++t) {
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x.d(i + t)[b])), _mm256_cvtepi32_ps(sum32[t]), acc[t]);
        }
    }
    for (int t = 0; t < NA; ++t) out[t] = acc[t];
}

// Activation rows per pass: four (sixteen accumulator-sized values live in
// the loop: NA float sums, NA int16 and NA int32 partials, the codes).
constexpr int kActivationsAtOnce = 4;

// Stream: the weights prefetch every line ahead (prefetch_block); a prefill's rows8 passes with
// more than one activation row keep one prefetch per block.
template <TensorType T, int NA, bool Stream = NA == 1>
inline void dot_group(const uint8_t* group, const QuantizedActivations& x, int64_t i, int64_t blocks, __m256* out) {
    if constexpr (T == TensorType::Q4_K) {
        group_dot_q4_k<NA, Stream>(group, x, i, blocks, out);
    } else if constexpr (T == TensorType::Q6_K) {
        group_dot_q6_k<NA, Stream>(group, x, i, blocks, out);
    } else {
        group_dot<T, NA, Stream>(group, x, i, blocks, BroadcastChunks{x, i}, out);
    }
}

// Groups a pass of more than one activation row takes at once (group_dot's G): two for the Q4 formats,
// whose unpack leaves the registers for two groups' sums; one for the rest.
template <TensorType T>
constexpr int kGroupsAtOnce = T == TensorType::Q4_0 || T == TensorType::Q4_1 ? 2 : 1;

// A prefill's pass: G groups (kGroupsAtOnce) against every four activation rows, the rest one by one.
template <TensorType T, int G>
inline void rows8_groups(const uint8_t* group, size_t group_bytes, const QuantizedActivations& x, int64_t blocks, float* yg,
                         int64_t stride) {
    const int64_t n = x.n();
    __m256 out[G * kActivationsAtOnce];
    int64_t i = 0;
    for (; i + kActivationsAtOnce <= n; i += kActivationsAtOnce) {
        if constexpr (G == 1) {
            dot_group<T, kActivationsAtOnce>(group, x, i, blocks, out);
        } else {
            group_dot_pair<T, kActivationsAtOnce, false>(group, group_bytes, x, i, blocks, out);
        }
        for (int g = 0; g < G; ++g) {
            for (int t = 0; t < kActivationsAtOnce; ++t) _mm256_storeu_ps(yg + (i + t) * stride + g * kRows8, out[g * kActivationsAtOnce + t]);
        }
    }
    for (; i < n; ++i) {
        for (int g = 0; g < G; ++g) {
            dot_group<T, 1>(group + g * group_bytes, x, i, blocks, out);
            _mm256_storeu_ps(yg + i * stride + g * kRows8, out[0]);
        }
    }
}

template <TensorType T>
void rows8(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    constexpr int G = kGroupsAtOnce<T>;
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const size_t group_bytes = rows8_group_bytes(w);
    const int64_t blocks = w.cols / block_size(T), end = row_end / kRows8;
    int64_t g = row_begin / kRows8;
    // Fewer than four rows (a decode step of one session) have no pass a pair of groups serves.
    if (x.n() >= kActivationsAtOnce) {
        for (; g + G <= end; g += G) rows8_groups<T, G>(base + size_t(g) * group_bytes, group_bytes, x, blocks, y + g * kRows8, w.rows);
    }
    for (; g < end; ++g) rows8_groups<T, 1>(base + size_t(g) * group_bytes, group_bytes, x, blocks, y + g * kRows8, w.rows);
}

// A decode step of a few sessions (2 .. kFewRowsMax activation rows, matmul_rows.h's
// rows_few): each group of eight weight rows (or two groups, kGroupsAtOnce)
// meets the n activations in ceil(n / 4) passes as even as they go, while the
// group is in L1, instead of four at a time and the rest one by one. The group
// streams from memory once per step; each activation's arithmetic is
// dot_group<T, 1>'s whatever the width and the groups at once, so every
// session's result is bit-identical to its step alone.
template <TensorType T, int NA, int G>
inline void group_pass(const uint8_t* group, size_t group_bytes, const QuantizedActivations& x, int64_t i, int64_t blocks,
                       float* y, int64_t stride) {
    __m256 out[G * NA];
    if constexpr (G == 1) {
        dot_group<T, NA, true>(group, x, i, blocks, out);
    } else {
        group_dot_pair<T, NA, true>(group, group_bytes, x, i, blocks, out);
    }
    for (int g = 0; g < G; ++g) {
        for (int t = 0; t < NA; ++t) _mm256_storeu_ps(y + (i + t) * stride + g * kRows8, out[g * NA + t]);
    }
}

template <TensorType T, int G>
inline void groups_passes(const uint8_t* group, size_t group_bytes, const QuantizedActivations& x, const FewRowsPasses& passes,
                          int64_t blocks, float* yg, int64_t stride) {
    int64_t i = 0;
    for (int p = 0; p < passes.count; ++p) {
        switch (passes.width[p]) {
            case 4: group_pass<T, 4, G>(group, group_bytes, x, i, blocks, yg, stride); break;
            case 3: group_pass<T, 3, G>(group, group_bytes, x, i, blocks, yg, stride); break;
            case 2: group_pass<T, 2, G>(group, group_bytes, x, i, blocks, yg, stride); break;
            default: group_pass<T, 1, G>(group, group_bytes, x, i, blocks, yg, stride); break;
        }
        i += passes.width[p];
    }
}

template <TensorType T>
void rows8_few(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    static_assert(kActivationsAtOnce == 4, "rows8_few has a pass for each width 1 .. 4");
    constexpr int G = kGroupsAtOnce<T>;
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const size_t group_bytes = rows8_group_bytes(w);
    const int64_t blocks = w.cols / block_size(T);
    const FewRowsPasses passes = few_rows_passes(x.n(), kActivationsAtOnce);
    const int64_t end = row_end / kRows8;
    int64_t g = row_begin / kRows8;
    for (; g + G <= end; g += G) groups_passes<T, G>(base + size_t(g) * group_bytes, group_bytes, x, passes, blocks, y + g * kRows8, w.rows);
    for (; g < end; ++g) groups_passes<T, 1>(base + size_t(g) * group_bytes, group_bytes, x, passes, blocks, y + g * kRows8, w.rows);
}

// A decode step of one or two activation rows over SpreadActivations (the types that spread: kSpreads).
// Each group is one pass of width n, as rows8 (n = 1) and rows8_few (n = 2) take it: the same bits.
template <TensorType T, int NA>
void rows8_spread(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    const uint8_t* base = static_cast<const uint8_t*>(w.data);
    const size_t group_bytes = rows8_group_bytes(w);
    const int64_t blocks = w.cols / block_size(T);
    const SpreadChunks chunks{SpreadActivations::of(x, blocks), blocks};
    __m256 out[NA];
    for (int64_t g = row_begin / kRows8; g < row_end / kRows8; ++g) {
        group_dot<T, NA, true>(base + size_t(g) * group_bytes, x, 0, blocks, chunks, out);
        for (int t = 0; t < NA; ++t) _mm256_storeu_ps(y + t * w.rows + g * kRows8, out[t]);
    }
}

// Q5_0 (Gemma 3's q, k, gate and up) alone: at one row its 8 broadcasts are ~14% of a block's vector ops
// (llvm-mca 15.2 -> 13.0 cycles spread). Q4_K's and Q6_K's copy at Gemma 3's 1024 and 2048 columns (32-64 KiB)
// would not fit L1; Q4_0/Q4_1 have not been measured spread.
template <TensorType T>
constexpr bool kSpreads = T == TensorType::Q5_0;

// rows8, but for a batch of 2 .. kFewRowsMax activation rows rows8_few.
template <TensorType T>
void rows8_any(const WeightView& w, const QuantizedActivations& x, float* y, int64_t row_begin, int64_t row_end) {
    if constexpr (kSpreads<T>) {
        if (SpreadActivations::fits(x, w.cols / block_size(T))) {
            if (x.n() == 1) return rows8_spread<T, 1>(w, x, y, row_begin, row_end);
            return rows8_spread<T, 2>(w, x, y, row_begin, row_end);
        }
    }
    if (x.n() >= 2 && x.n() <= kFewRowsMax) {
        rows8_few<T>(w, x, y, row_begin, row_end);
    } else {
        rows8<T>(w, x, y, row_begin, row_end);
    }
}

}  // namespace

void fill_matmul_rows8(KernelSet& set) {
    set.matmul_rows8[2] = rows8_any<TensorType::Q4_0>;
    set.matmul_rows8[3] = rows8_any<TensorType::Q4_1>;
    set.matmul_rows8[6] = rows8_any<TensorType::Q5_0>;
    set.matmul_rows8[7] = rows8_any<TensorType::Q5_1>;
    set.matmul_rows8[12] = rows8_any<TensorType::Q4_K>;
    set.matmul_rows8[14] = rows8_any<TensorType::Q6_K>;
}

}  // namespace ggufsm::kernels::GGUFSM_ISA
