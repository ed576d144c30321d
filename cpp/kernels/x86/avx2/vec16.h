// Internal: the AVX2 + FMA + F16C variant's 16-lane float vector (through
// kernels/x86/vec16.h): two ymm, so every operation is doubled.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace ggufsm::kernels::avx2 {
namespace {

struct V {
    __m256 lo, hi;
};

inline V zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline V broadcast(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline V load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline V load(const uint16_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline void store(float* p, V x) {
    _mm256_storeu_ps(p, x.lo);
    _mm256_storeu_ps(p + 8, x.hi);
}
inline V fmadd(V a, V b, V c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
inline V mul(V a, V b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline V add(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline V sub(V a, V b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline V div(V a, V b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
inline V max(V a, V b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }

inline float reduce(__m256 x, __m128 (*op)(__m128, __m128)) {
    __m128 r = op(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    r = op(r, _mm_movehl_ps(r, r));
    r = op(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}
inline float reduce_max(V x) { return reduce(_mm256_max_ps(x.lo, x.hi), [](__m128 a, __m128 b) { return _mm_max_ps(a, b); }); }
inline float reduce_add(V x) { return reduce(_mm256_add_ps(x.lo, x.hi), [](__m128 a, __m128 b) { return _mm_add_ps(a, b); }); }

// Lanes i with lo <= i < hi keep x; the others become fill.
inline V keep_lanes(V x, int64_t lo, int64_t hi, float fill) {
    const __m256 index_lo = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), index_hi = _mm256_setr_ps(8, 9, 10, 11, 12, 13, 14, 15);
    const __m256 a = _mm256_set1_ps(float(lo < -1 ? -1 : lo > 16 ? 16 : lo)), b = _mm256_set1_ps(float(hi < 0 ? 0 : hi > 17 ? 17 : hi));
    const __m256 f = _mm256_set1_ps(fill);
    auto half = [&](__m256 v, __m256 index) {
        const __m256 keep = _mm256_and_ps(_mm256_cmp_ps(index, a, _CMP_GE_OQ), _mm256_cmp_ps(index, b, _CMP_LT_OQ));
        return _mm256_blendv_ps(f, v, keep);
    };
    return {half(x.lo, index_lo), half(x.hi, index_hi)};
}

// e^x to about 2 ulp: 2^n * p(r), x = n ln2 + r, Cephes' expf polynomial. The
// clamp keeps n in [-126, 127], so 2^n is built from exponent bits directly;
// inputs below it (masked lanes, -inf) give about 1e-38, which keep_lanes zeroes.
inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}
inline V exp(V x) { return {exp8(x.lo), exp8(x.hi)}; }

}  // namespace
}  // namespace ggufsm::kernels::avx2
