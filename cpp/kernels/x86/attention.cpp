// The x86 attention kernel, written once over V (kernels/x86/vec16.h) and
// compiled per ISA variant. One V holds the scores of one key
// tile (16 positions) or 16 dims of an output row.
//
// Scores: for each dim d, q[d] broadcast times dim d of 16 transposed keys,
// the four tiles of a block in four independent accumulator chains (one chain
// would wait out the FMA latency at every step). Values: each position's
// weight broadcast times its value row, 64 dims (four chains) at a time.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attention.h"
#include "kernels/quant.h"
#include "kernels/x86/vec16.h"

namespace ggufsm::kernels::GGUFSM_ISA {

namespace {

// Accumulates in locals and writes `out` once: vector types may alias float,
// so accumulating through the pointer made the compiler store all four
// accumulators at every dimension (seen in the disassembly: 4 stores per 4
// FMAs).
template <typename T, int NT>
inline void score_tiles(const float* qg, const T* tiles, int64_t hd, V* out) {
    V acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = zero();
    for (int64_t d = 0; d < hd; ++d) {
        const V qd = broadcast(qg[d]);
        for (int t = 0; t < NT; ++t) acc[t] = fmadd(qd, load(tiles + (t * hd + d) * kKeyTile), acc[t]);
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
}

template <typename T>
inline void score_block(const float* qg, const T* tiles, int64_t hd, int n_tiles, V* acc) {
    switch (n_tiles) {
        case 4: score_tiles<T, 4>(qg, tiles, hd, acc); break;
        case 3: score_tiles<T, 3>(qg, tiles, hd, acc); break;
        case 2: score_tiles<T, 2>(qg, tiles, hd, acc); break;
        default: score_tiles<T, 1>(qg, tiles, hd, acc); break;
    }
}

// og [hd] = og * carry + sum over p in [lo, hi) of w[p - b] * v_rows[p].
template <typename T>
inline void accumulate_values(float* og, const float* w, const T* v_rows, int64_t hd, int64_t b, int64_t lo, int64_t hi,
                              float carry) {
    const V c = broadcast(carry);
    int64_t d = 0;
    for (; d + 4 * kKeyTile <= hd; d += 4 * kKeyTile) {
        V a0 = mul(load(og + d), c), a1 = mul(load(og + d + 16), c);
        V a2 = mul(load(og + d + 32), c), a3 = mul(load(og + d + 48), c);
        for (int64_t p = lo; p < hi; ++p) {
            const V wp = broadcast(w[p - b]);
            const T* v = v_rows + p * hd + d;
            a0 = fmadd(wp, load(v), a0);
            a1 = fmadd(wp, load(v + 16), a1);
            a2 = fmadd(wp, load(v + 32), a2);
            a3 = fmadd(wp, load(v + 48), a3);
        }
        store(og + d, a0);
        store(og + d + 16, a1);
        store(og + d + 32, a2);
        store(og + d + 48, a3);
    }
    for (; d < hd; d += kKeyTile) {
        V a = mul(load(og + d), c);
        for (int64_t p = lo; p < hi; ++p) a = fmadd(broadcast(w[p - b]), load(v_rows + p * hd + d), a);
        store(og + d, a);
    }
}

template <typename T>
void attend(const float* q, int64_t group, const T* k_tiles, const T* v_rows, int64_t hd, int64_t begin, int64_t end,
            float scale, float* o, float* m, float* l) {
    constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
    std::fill(o, o + group * hd, 0.0f);
    std::fill(m, m + group, kMinusInf);
    std::fill(l, l + group, 0.0f);
    alignas(64) float s[kBlock], w[kBlock];
    const V vscale = broadcast(scale);
    for (int64_t b = begin / kKeyTile * kKeyTile; b < end; b += kBlock) {
        const int64_t lo = std::max(b, begin), hi = std::min(b + kBlock, end);
        const int n_tiles = int((hi - b + kKeyTile - 1) / kKeyTile);
        const T* tiles = k_tiles + (b / kKeyTile) * hd * kKeyTile;
        for (int64_t g = 0; g < group; ++g) {
            V acc[4];
            score_block(q + g * hd, tiles, hd, n_tiles, acc);
            V vmax = broadcast(kMinusInf);
            for (int t = 0; t < n_tiles; ++t) {
                const int64_t at = b + t * kKeyTile;
                const V st = keep_lanes(mul(acc[t], vscale), lo - at, hi - at, kMinusInf);
                store(s + t * kKeyTile, st);
                vmax = max(vmax, st);
            }
            const float m_new = std::max(m[g], reduce_max(vmax));
            const float carry = std::exp(m[g] - m_new);
            const V vm = broadcast(m_new);
            V vsum = zero();
            for (int t = 0; t < n_tiles; ++t) {
                const int64_t at = b + t * kKeyTile;
                const V e = keep_lanes(exp(sub(load(s + t * kKeyTile), vm)), lo - at, hi - at, 0.0f);
                store(w + t * kKeyTile, e);
                vsum = add(vsum, e);
            }
            accumulate_values(o + g * hd, w, v_rows, hd, b, lo, hi, carry);
            l[g] = l[g] * carry + reduce_add(vsum);
            m[g] = m_new;
        }
    }
}

// F16C converts eight lanes at once, rounding to nearest even as
// fp32_to_fp16 does (subnormal halves included), so every variant rounds the
// query alike, and costs nothing measurable where a scalar conversion took a
// fifth of the attention time (docs/benchmarks.md, "Kernel history").
void round_to_half(const float* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) dst[i] = fp16_to_fp32(fp32_to_fp16(src[i]));
}

}  // namespace

void fill_attention(KernelSet& set) {
    set.attend_f32 = &attend<float>;
    set.attend_f16 = &attend<uint16_t>;
    set.attend_hd_multiple = kKeyTile;
    set.round_to_half = &round_to_half;
}

}  // namespace ggufsm::kernels::GGUFSM_ISA
