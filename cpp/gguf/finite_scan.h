// The finite-weights check's inner loop (reference/model/finite_weights.py):
// the first of `count` little-endian floats of `width` bytes (2 or 4), `stride`
// bytes apart from `data`, whose exponent bits are all ones (`mask`), i.e. a
// NaN or an infinity. Read in place from the mapping: no copy, no conversion.
#pragma once
#include <cstdint>
#include <optional>

namespace ggufsm::gguf {

// The index (0..count-1) of the first float with (bits & mask) == mask, or none.
std::optional<int64_t> first_masked(const uint8_t* data, int width, uint32_t mask, int64_t stride, int64_t count);

}  // namespace ggufsm::gguf
