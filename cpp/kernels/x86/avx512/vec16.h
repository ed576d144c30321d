// Internal: the AVX-512 variant's 16-lane float vector (through
// kernels/x86/vec16.h): one zmm, halves widened by vcvtph2ps, lane masks as
// k-registers.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace ggufsm::kernels::avx512 {
namespace {

using V = __m512;

inline V zero() { return _mm512_setzero_ps(); }
inline V broadcast(float x) { return _mm512_set1_ps(x); }
inline V load(const float* p) { return _mm512_loadu_ps(p); }
inline V load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline void store(float* p, V x) { _mm512_storeu_ps(p, x); }
inline V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V div(V a, V b) { return _mm512_div_ps(a, b); }
inline V max(V a, V b) { return _mm512_max_ps(a, b); }
inline float reduce_max(V x) { return _mm512_reduce_max_ps(x); }
inline float reduce_add(V x) { return _mm512_reduce_add_ps(x); }

// Lanes i with lo <= i < hi keep x; the others become fill.
inline V keep_lanes(V x, int64_t lo, int64_t hi, float fill) {
    const int64_t a = lo < 0 ? 0 : lo > 16 ? 16 : lo, b = hi < 0 ? 0 : hi > 16 ? 16 : hi;
    const __mmask16 keep = __mmask16(((1u << b) - 1u) & ~((1u << a) - 1u));
    return _mm512_mask_blend_ps(keep, _mm512_set1_ps(fill), x);
}

// e^x to about 2 ulp: 2^n * p(r), x = n ln2 + r, |r| <= ln2/2, Cephes' expf
// polynomial; scalef applies 2^n without building exponent bits, so inputs
// far below zero (masked lanes, -inf) come out 0 rather than garbage.
inline V exp(V x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.7f));
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    V p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const V y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

}  // namespace
}  // namespace ggufsm::kernels::avx512
