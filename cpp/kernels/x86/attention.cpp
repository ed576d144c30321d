// The x86 attention kernel (one block step, kernel_set.h's AttendFn), written
// once over V (kernels/x86/vec16.h) and compiled per ISA variant. One V holds
// the scores of one key tile (16 positions) or 16 dims of an output row.
//
// Scores: for each dim d, q[d] broadcast times dim d of 16 transposed keys,
// one accumulator chain per query head (G heads in flight hide the FMA
// latency). Values: each position's weight broadcast times its value row, 16
// dims of G heads at a time.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attention.h"
#include "kernels/quant.h"
#include "kernels/x86/vec16.h"

namespace ggufsm::kernels::GGUFSM_ISA {

namespace {

// Rows: the query heads of one token that read one KV head (Gemma 3: 4, SmolLM2: 3) share every key
// and value load of a block, G of them at a time in registers: a load (and, over a half cache, its
// conversion) feeds G multiply-adds instead of one. Each row's arithmetic is the one-row kernel's:
// each score lane a chain of FMAs over d from zero, each output lane a chain over the positions in
// order after the carry, so how many rows run together never changes a row's bits.
constexpr int kMaxRows = 4;

// s[g][p - b] = scale * q_g . k_p over the block's tiles, lanes outside [lo, hi) -inf.
// Accumulates in locals and stores once: vector types may alias float, so accumulating through a
// pointer made the compiler store every accumulator at every dimension (seen in the disassembly).
template <typename T, int G>
inline void score_rows(const float* q, const T* tiles, int64_t hd, int64_t b, int64_t lo, int64_t hi, float scale,
                       float (*s)[kBlock]) {
    constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
    const V vscale = broadcast(scale);
    const int n_tiles = int((hi - b + kKeyTile - 1) / kKeyTile);
    for (int t = 0; t < n_tiles; ++t) {
        const T* tile = tiles + t * hd * kKeyTile;
        V acc[G];
        for (int g = 0; g < G; ++g) acc[g] = zero();
        for (int64_t d = 0; d < hd; ++d) {
            const V kd = load(tile + d * kKeyTile);
            for (int g = 0; g < G; ++g) acc[g] = fmadd(broadcast(q[g * hd + d]), kd, acc[g]);
        }
        const int64_t at = b + t * kKeyTile;
        for (int g = 0; g < G; ++g) store(s[g] + t * kKeyTile, keep_lanes(mul(acc[g], vscale), lo - at, hi - at, kMinusInf));
    }
}

// o_g [hd] = o_g * carry[g] + sum over p in [lo, hi) of w[g][p - b] * v_rows[p], 16 dims at a time.
template <typename T, int G>
inline void accumulate_rows(float* o, const float (*w)[kBlock], const float* carry, const T* v_rows, int64_t hd, int64_t b,
                            int64_t lo, int64_t hi) {
    for (int64_t d = 0; d < hd; d += kKeyTile) {
        V a[G];
        for (int g = 0; g < G; ++g) a[g] = mul(load(o + g * hd + d), broadcast(carry[g]));
        for (int64_t p = lo; p < hi; ++p) {
            const V v = load(v_rows + p * hd + d);
            for (int g = 0; g < G; ++g) a[g] = fmadd(broadcast(w[g][p - b]), v, a[g]);
        }
        for (int g = 0; g < G; ++g) store(o + g * hd + d, a[g]);
    }
}

template <typename T, int G>
void attend_rows(const float* q, const T* k_tiles, const T* v_rows, int64_t hd, int64_t b, int64_t lo, int64_t hi,
                 float scale, float* o, float* m, float* l) {
    alignas(64) float s[G][kBlock], w[G][kBlock];
    float carry[G];
    const int n_tiles = int((hi - b + kKeyTile - 1) / kKeyTile);
    score_rows<T, G>(q, k_tiles + (b / kKeyTile) * hd * kKeyTile, hd, b, lo, hi, scale, s);
    for (int g = 0; g < G; ++g) {
        V vmax = broadcast(-std::numeric_limits<float>::infinity());
        for (int t = 0; t < n_tiles; ++t) vmax = max(vmax, load(s[g] + t * kKeyTile));
        const float m_new = std::max(m[g], reduce_max(vmax));
        carry[g] = std::exp(m[g] - m_new);
        const V vm = broadcast(m_new);
        V vsum = zero();
        for (int t = 0; t < n_tiles; ++t) {
            const int64_t at = b + t * kKeyTile;
            const V e = keep_lanes(exp(sub(load(s[g] + t * kKeyTile), vm)), lo - at, hi - at, 0.0f);
            store(w[g] + t * kKeyTile, e);
            vsum = add(vsum, e);
        }
        l[g] = l[g] * carry[g] + reduce_add(vsum);
        m[g] = m_new;
    }
    accumulate_rows<T, G>(o, w, carry, v_rows, hd, b, lo, hi);
}

template <typename T>
void attend(const float* q, int64_t group, const T* k_tiles, const T* v_rows, int64_t hd, int64_t b, int64_t lo, int64_t hi,
            float scale, float* o, float* m, float* l) {
    for (int64_t g = 0; g < group; g += kMaxRows) {
        const float* qg = q + g * hd;
        float* og = o + g * hd;
        switch (std::min<int64_t>(kMaxRows, group - g)) {
            case 4: attend_rows<T, 4>(qg, k_tiles, v_rows, hd, b, lo, hi, scale, og, m + g, l + g); break;
            case 3: attend_rows<T, 3>(qg, k_tiles, v_rows, hd, b, lo, hi, scale, og, m + g, l + g); break;
            case 2: attend_rows<T, 2>(qg, k_tiles, v_rows, hd, b, lo, hi, scale, og, m + g, l + g); break;
            default: attend_rows<T, 1>(qg, k_tiles, v_rows, hd, b, lo, hi, scale, og, m + g, l + g); break;
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

// Eight lanes per F16C conversion (a decode step stores 2 x hd halves per KV head and layer, which
// the scalar routine's branches made a tenth of a batched step's attention time). F16C keeps a NaN's
// payload where fp32_to_fp16 writes one quiet NaN, so eight lanes holding a NaN go the scalar way.
void to_half(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0) {
            for (int64_t j = i; j < i + 8; ++j) dst[j] = fp32_to_fp16(src[j]);
            continue;
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

}  // namespace

void fill_attention(KernelSet& set) {
    set.attend_f32 = &attend<float>;
    set.attend_f16 = &attend<uint16_t>;
    set.attend_hd_multiple = kKeyTile;
    set.round_to_half = &round_to_half;
    set.to_half = &to_half;
}

}  // namespace ggufsm::kernels::GGUFSM_ISA
