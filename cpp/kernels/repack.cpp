// The Rows8 repack (kernels/repack.h): a permutation of each group's bytes,
// scalar, run once at load.
#include "kernels/repack.h"

#include <cstring>
#include <string>
#include <vector>

#include "errors.h"

namespace ggufsm {

namespace {

bool has_mins(TensorType t) { return t == TensorType::Q4_1 || t == TensorType::Q5_1; }
bool has_qh(TensorType t) { return t == TensorType::Q5_0 || t == TensorType::Q5_1; }

// Offsets of d, m, qh and qs inside one block of the file's layout (ggml-common.h).
struct PlainOffsets {
    size_t m, qh, qs;
};
PlainOffsets plain_offsets(TensorType t) {
    switch (t) {
        case TensorType::Q4_0: return {0, 0, offsetof(BlockQ4_0, qs)};
        case TensorType::Q4_1: return {offsetof(BlockQ4_1, m), 0, offsetof(BlockQ4_1, qs)};
        case TensorType::Q5_0: return {0, offsetof(BlockQ5_0, qh), offsetof(BlockQ5_0, qs)};
        case TensorType::Q5_1: return {offsetof(BlockQ5_1, m), offsetof(BlockQ5_1, qh), offsetof(BlockQ5_1, qs)};
        default: break;
    }
    throw Error(code::InvalidInput, std::string(type_name(uint32_t(t))) + " has no repacked layout");
}

// Offsets of m, qh and qs inside an x8 block (repack.h).
struct X8Offsets {
    size_t m, qh, qs;
};
X8Offsets x8_offsets(TensorType t) {
    size_t at = 16;  // d [8]
    const size_t m = at;
    if (has_mins(t)) at += 16;
    const size_t qh = at;
    if (has_qh(t)) at += 32;
    return {m, qh, at};
}

// Bits 0, 4, 8, ..., 28 of v as one byte (bit c from bit 4c): pairs, then
// nibbles, then the byte, folded together (the per-bit loop was most of the
// repack's time on Q5_0).
inline uint8_t every_fourth_bit(uint32_t v) {
    v &= 0x11111111u;
    v = (v | (v >> 3)) & 0x03030303u;
    v = (v | (v >> 6)) & 0x000F000Fu;
    return uint8_t(v | (v >> 12));
}

// One x8 block from the eight rows' block b (src: the group in the file's layout).
void pack_block(TensorType t, const uint8_t* group, size_t row_bytes, int64_t b, uint8_t* out) {
    const size_t bb = block_bytes(t);
    const PlainOffsets po = plain_offsets(t);
    const X8Offsets xo = x8_offsets(t);
    std::memset(out, 0, rows8_block_bytes(t));
    for (int r = 0; r < 8; ++r) {
        const uint8_t* blk = group + size_t(r) * row_bytes + size_t(b) * bb;
        std::memcpy(out + 2 * r, blk, 2);
        if (has_mins(t)) std::memcpy(out + xo.m + 2 * r, blk + po.m, 2);
        if (has_qh(t)) {
            uint32_t high;
            std::memcpy(&high, blk + po.qh, 4);
            for (int k = 0; k < 4; ++k) out[xo.qh + 4 * r + k] = every_fourth_bit(high >> k);
        }
        for (int j = 0; j < 4; ++j) std::memcpy(out + xo.qs + 32 * j + 4 * r, blk + po.qs + 4 * j, 4);
    }
}

// Row r's block b (file layout, into out) from its x8 block.
void unpack_block(TensorType t, const uint8_t* x8, int r, uint8_t* out) {
    const PlainOffsets po = plain_offsets(t);
    const X8Offsets xo = x8_offsets(t);
    std::memcpy(out, x8 + 2 * r, 2);
    if (has_mins(t)) std::memcpy(out + po.m, x8 + xo.m + 2 * r, 2);
    if (has_qh(t)) {
        uint32_t high = 0;
        for (int k = 0; k < 4; ++k) {
            const uint8_t byte = x8[xo.qh + 4 * r + k];
            for (int c = 0; c < 8; ++c) high |= uint32_t((byte >> c) & 1) << (4 * c + k);
        }
        std::memcpy(out + po.qh, &high, 4);
    }
    for (int j = 0; j < 4; ++j) std::memcpy(out + po.qs + 4 * j, x8 + xo.qs + 32 * j + 4 * r, 4);
}

// ---- Q4_K ----
constexpr size_t kQ4KScAt = 32, kQ4KMAt = 96, kQ4KQsAt = 160, kQ4KX8Bytes = 1184;

void pack_q4_k(const uint8_t* group, size_t row_bytes, int64_t b, uint8_t* out) {
    for (int r = 0; r < 8; ++r) {
        BlockQ4_K blk;
        std::memcpy(&blk, group + size_t(r) * row_bytes + size_t(b) * sizeof(BlockQ4_K), sizeof blk);
        std::memcpy(out + 2 * r, &blk.d, 2);
        std::memcpy(out + 16 + 2 * r, &blk.dmin, 2);
        for (int sub = 0; sub < 8; ++sub) {
            int sc, m;
            k_scale_min(blk.scales, sub, sc, m);
            out[kQ4KScAt + 8 * sub + r] = uint8_t(sc);
            out[kQ4KMAt + 16 * (sub / 2) + 2 * r + sub % 2] = uint8_t(m);
        }
        for (int j = 0; j < 4; ++j)
            for (int v = 0; v < 8; ++v) std::memcpy(out + kQ4KQsAt + 256 * j + 32 * v + 4 * r, blk.qs + 32 * j + 4 * v, 4);
    }
}

void unpack_q4_k(const uint8_t* x8, int r, uint8_t* out) {
    BlockQ4_K blk{};
    std::memcpy(&blk.d, x8 + 2 * r, 2);
    std::memcpy(&blk.dmin, x8 + 16 + 2 * r, 2);
    for (int sub = 0; sub < 8; ++sub) {
        const int sc = x8[kQ4KScAt + 8 * sub + r], m = x8[kQ4KMAt + 16 * (sub / 2) + 2 * r + sub % 2];
        // The inverse of k_scale_min (quant.h).
        if (sub < 4) {
            blk.scales[sub] = uint8_t((blk.scales[sub] & 0xC0) | sc);
            blk.scales[sub + 4] = uint8_t((blk.scales[sub + 4] & 0xC0) | m);
        } else {
            blk.scales[sub + 4] = uint8_t((sc & 0xF) | ((m & 0xF) << 4));
            blk.scales[sub - 4] = uint8_t((blk.scales[sub - 4] & 0x3F) | ((sc >> 4) << 6));
            blk.scales[sub] = uint8_t((blk.scales[sub] & 0x3F) | ((m >> 4) << 6));
        }
    }
    for (int j = 0; j < 4; ++j)
        for (int v = 0; v < 8; ++v) std::memcpy(blk.qs + 32 * j + 4 * v, x8 + kQ4KQsAt + 256 * j + 32 * v + 4 * r, 4);
    std::memcpy(out, &blk, sizeof blk);
}

// ---- Q6_K ----
constexpr size_t kQ6KScAt = 16, kQ6KQlAt = 144, kQ6KQhAt = 1168, kQ6KX8Bytes = 1680;

// Element e of a Q6_K block as its unsigned 6-bit code (ggml's layout; quant.h).
void q6_k_codes(const BlockQ6_K& b, uint8_t codes[QK_K]) {
    for (int j = 0; j < 2; ++j)
        for (int t = 0; t < 4; ++t)
            for (int l = 0; l < 32; ++l) {
                const uint8_t low = (b.ql[j * 64 + (t % 2) * 32 + l] >> (4 * (t / 2))) & 0xF;
                const uint8_t high = (b.qh[j * 32 + l] >> (2 * t)) & 3;
                codes[j * 128 + t * 32 + l] = uint8_t(low | (high << 4));
            }
}

void pack_q6_k(const uint8_t* group, size_t row_bytes, int64_t b, uint8_t* out) {
    std::memset(out, 0, kQ6KX8Bytes);
    for (int r = 0; r < 8; ++r) {
        BlockQ6_K blk;
        std::memcpy(&blk, group + size_t(r) * row_bytes + size_t(b) * sizeof(BlockQ6_K), sizeof blk);
        std::memcpy(out + 2 * r, &blk.d, 2);
        for (int p = 0; p < 8; ++p)
            for (int e = 0; e < 2; ++e) out[kQ6KScAt + 16 * p + 2 * r + e] = uint8_t(blk.scales[2 * p + e]);
        uint8_t codes[QK_K];
        q6_k_codes(blk, codes);
        for (int u = 0; u < 32; ++u)
            for (int k = 0; k < 4; ++k) {
                out[kQ6KQlAt + 32 * u + 4 * r + k] = uint8_t((codes[4 * u + k] & 0xF) | ((codes[128 + 4 * u + k] & 0xF) << 4));
            }
        for (int w = 0; w < 16; ++w)
            for (int k = 0; k < 4; ++k) {
                uint8_t byte = 0;
                for (int q = 0; q < 4; ++q) byte |= uint8_t(((codes[4 * (w + 16 * q) + k] >> 4) & 3) << (2 * q));
                out[kQ6KQhAt + 32 * w + 4 * r + k] = byte;
            }
    }
}

void unpack_q6_k(const uint8_t* x8, int r, uint8_t* out) {
    BlockQ6_K blk{};
    std::memcpy(&blk.d, x8 + 2 * r, 2);
    for (int p = 0; p < 8; ++p)
        for (int e = 0; e < 2; ++e) blk.scales[2 * p + e] = int8_t(x8[kQ6KScAt + 16 * p + 2 * r + e]);
    uint8_t codes[QK_K];
    for (int c = 0; c < 64; ++c)
        for (int k = 0; k < 4; ++k) {
            const uint8_t ql = x8[kQ6KQlAt + 32 * (c % 32) + 4 * r + k];
            const uint8_t qh = x8[kQ6KQhAt + 32 * (c % 16) + 4 * r + k];
            codes[4 * c + k] = uint8_t(((ql >> (4 * (c / 32))) & 0xF) | (((qh >> (2 * (c / 16))) & 3) << 4));
        }
    for (int j = 0; j < 2; ++j)
        for (int t = 0; t < 4; ++t)
            for (int l = 0; l < 32; ++l) {
                const uint8_t code = codes[j * 128 + t * 32 + l];
                blk.ql[j * 64 + (t % 2) * 32 + l] |= uint8_t((code & 0xF) << (4 * (t / 2)));
                blk.qh[j * 32 + l] |= uint8_t((code >> 4) << (2 * t));
            }
    std::memcpy(out, &blk, sizeof blk);
}

}  // namespace

bool repackable_type(TensorType type) {
    return type == TensorType::Q4_0 || type == TensorType::Q4_1 || type == TensorType::Q5_0 || type == TensorType::Q5_1 ||
           type == TensorType::Q4_K || type == TensorType::Q6_K;
}

bool repackable(const WeightView& w) {
    return w.layout == WeightLayout::Rows && repackable_type(w.type) && w.rows > 0 && w.rows % kRows8 == 0;
}

size_t rows8_block_bytes(TensorType type) { return type == TensorType::Q4_K ? kQ4KX8Bytes : 8 * block_bytes(type); }
static_assert(kQ6KX8Bytes == 8 * sizeof(BlockQ6_K));
size_t rows8_group_bytes(const WeightView& w) { return size_t(w.cols / block_size(w.type)) * rows8_block_bytes(w.type); }
size_t rows8_bytes(const WeightView& w) { return size_t(w.rows / kRows8) * rows8_group_bytes(w); }

WeightView repack_rows8(const WeightView& w, void* dst, ThreadPool& pool) {
    if (!repackable(w)) {
        throw Error(code::InvalidInput, std::string("cannot repack ") + type_name(uint32_t(w.type)) + " weights [" +
                                            std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                                            "]: needs Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q6_K in the file's layout with rows a multiple of 8");
    }
    const size_t group_bytes = size_t(kRows8) * w.row_bytes, packed_group_bytes = rows8_group_bytes(w);
    const size_t x8_bytes = rows8_block_bytes(w.type);
    const int64_t blocks = w.cols / block_size(w.type);
    const uint8_t* src = static_cast<const uint8_t*>(w.data);
    uint8_t* out = static_cast<uint8_t*>(dst);
    pool.parallel_for(w.rows / kRows8, [&](int64_t begin, int64_t end, int) {
        std::vector<uint8_t> group(group_bytes);  // the group read whole first: dst may be w.data
        for (int64_t g = begin; g < end; ++g) {
            std::memcpy(group.data(), src + size_t(g) * group_bytes, group_bytes);
            uint8_t* to = out + size_t(g) * packed_group_bytes;
            for (int64_t b = 0; b < blocks; ++b) {
                if (w.type == TensorType::Q4_K) {
                    pack_q4_k(group.data(), w.row_bytes, b, to + size_t(b) * x8_bytes);
                } else if (w.type == TensorType::Q6_K) {
                    pack_q6_k(group.data(), w.row_bytes, b, to + size_t(b) * x8_bytes);
                } else {
                    pack_block(w.type, group.data(), w.row_bytes, b, to + size_t(b) * x8_bytes);
                }
            }
        }
    });
    WeightView packed = w;
    packed.data = dst;
    packed.layout = WeightLayout::Rows8;
    return packed;
}

void unpack_row8(const WeightView& w, int64_t r, uint8_t* dst) {
    const size_t bb = block_bytes(w.type), xb = rows8_block_bytes(w.type);
    const uint8_t* group = static_cast<const uint8_t*>(w.data) + size_t(r / kRows8) * rows8_group_bytes(w);
    for (int64_t b = 0; b < w.cols / block_size(w.type); ++b) {
        if (w.type == TensorType::Q4_K) {
            unpack_q4_k(group + size_t(b) * xb, int(r % kRows8), dst + size_t(b) * bb);
        } else if (w.type == TensorType::Q6_K) {
            unpack_q6_k(group + size_t(b) * xb, int(r % kRows8), dst + size_t(b) * bb);
        } else {
            unpack_block(w.type, group + size_t(b) * xb, int(r % kRows8), dst + size_t(b) * bb);
        }
    }
}

}  // namespace ggufsm
