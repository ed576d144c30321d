#include "gguf/finite_scan.h"

#include <cstring>

namespace ggufsm::gguf {
namespace {

// A chunk is scanned whole with no early exit, so the compiler can vectorize
// the dense (stride == width) case; the first hit is located only in the chunk
// that has one. Weights are finite almost always, so the common path is one
// branch per chunk.
constexpr int64_t kChunk = 4096;

template <typename Bits>
std::optional<int64_t> scan(const uint8_t* data, Bits mask, int64_t stride, int64_t count) {
    auto at = [&](int64_t i) {
        Bits bits;
        std::memcpy(&bits, data + i * stride, sizeof(Bits));  // tensors and block scales need not be aligned
        return Bits(bits & mask) == mask;
    };
    for (int64_t begin = 0; begin < count; begin += kChunk) {
        const int64_t end = begin + kChunk < count ? begin + kChunk : count;
        bool any = false;
        for (int64_t i = begin; i < end; ++i) any |= at(i);
        if (!any) continue;
        for (int64_t i = begin; i < end; ++i)
            if (at(i)) return i;
    }
    return std::nullopt;
}

}  // namespace

std::optional<int64_t> first_masked(const uint8_t* data, int width, uint32_t mask, int64_t stride, int64_t count) {
    if (width == 2) return scan<uint16_t>(data, static_cast<uint16_t>(mask), stride, count);
    return scan<uint32_t>(data, mask, stride, count);
}

}  // namespace ggufsm::gguf
