// The Rows8 repack (kernels/repack.h): a permutation of each group's bytes,
// scalar, run once at load.
#include "kernels/repack.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
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
        case TensorType::Q8_0: return {0, 0, offsetof(BlockQ8_0, qs)};
        default: break;
    }
    throw Error(code::InvalidInput, std::string(type_name(uint32_t(t))) + " has no repacked layout");
}

// The 4-byte chunks of a block's qs: 16 packed nibble bytes (Q4/Q5), or Q8_0's 32 codes.
int qs_chunks(TensorType t) { return t == TensorType::Q8_0 ? 8 : 4; }

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

// The file layout of the 32-element types, known at compile time so each
// type's packer is its own straight-line code (the runtime-typed packer,
// with its offsets looked up and its x8 block zeroed per block, ran the
// repack at ~0.5 GB/s: most of SmolLM2's load).
template <TensorType T>
struct Plain;
template <>
struct Plain<TensorType::Q4_0> {
    using Block = BlockQ4_0;
    static constexpr bool mins = false, qh = false;
    static constexpr size_t m = 0, qh_at = 0, qs = offsetof(BlockQ4_0, qs);
};
template <>
struct Plain<TensorType::Q4_1> {
    using Block = BlockQ4_1;
    static constexpr bool mins = true, qh = false;
    static constexpr size_t m = offsetof(BlockQ4_1, m), qh_at = 0, qs = offsetof(BlockQ4_1, qs);
};
template <>
struct Plain<TensorType::Q5_0> {
    using Block = BlockQ5_0;
    static constexpr bool mins = false, qh = true;
    static constexpr size_t m = 0, qh_at = offsetof(BlockQ5_0, qh), qs = offsetof(BlockQ5_0, qs);
};
template <>
struct Plain<TensorType::Q5_1> {
    using Block = BlockQ5_1;
    static constexpr bool mins = true, qh = true;
    static constexpr size_t m = offsetof(BlockQ5_1, m), qh_at = offsetof(BlockQ5_1, qh), qs = offsetof(BlockQ5_1, qs);
};
template <>
struct Plain<TensorType::Q8_0> {
    using Block = BlockQ8_0;
    static constexpr bool mins = false, qh = false;
    static constexpr size_t m = 0, qh_at = 0, qs = offsetof(BlockQ8_0, qs);
};

// Bits 0..3 of n as bit 0 of bytes 0..3 (the four shifted copies of n never overlap, so nothing carries).
inline uint32_t bits_to_bytes(uint32_t n) { return (n * 0x00204081u) & 0x01010101u; }

// Q5_0/Q5_1: row r's block (its qh, and qs as four 4-byte words, chunk j's and 4 + j's nibbles in word j) into
// the x8 block's five-bit layout (repack.h): word j's byte k = element 4j + k's code (bits 0..4) and element
// 16 + 4j + k's low three bits (5..7); the tops word's byte k = element 16 + 4j + k's top two bits at 2j, 2j + 1.
inline void pack_five_bit_row(uint32_t high, const uint8_t* qs, uint8_t* x8_qh, uint8_t* x8_qs, int r) {
    uint32_t tops = 0;
    for (int j = 0; j < 4; ++j) {
        uint32_t nibbles;
        std::memcpy(&nibbles, qs + 4 * j, 4);
        const uint32_t lo = (nibbles & 0x0F0F0F0Fu) | bits_to_bytes((high >> (4 * j)) & 0xF) << 4;
        const uint32_t hi = ((nibbles >> 4) & 0x0F0F0F0Fu) | bits_to_bytes((high >> (16 + 4 * j)) & 0xF) << 4;
        const uint32_t word = lo | (hi & 0x07070707u) << 5;
        tops |= ((hi >> 3) & 0x03030303u) << (2 * j);
        std::memcpy(x8_qs + 32 * j + 4 * r, &word, 4);
    }
    std::memcpy(x8_qh + 4 * r, &tops, 4);
}

// One x8 block from the eight rows' block b (group: the group in the file's
// layout). Every byte of the x8 block is written.
template <TensorType T>
inline void pack_block(const uint8_t* group, size_t row_bytes, int64_t b, uint8_t* out) {
    using P = Plain<T>;
    constexpr size_t bb = sizeof(typename P::Block);
    constexpr size_t x8_m = 16, x8_qh = P::mins ? 32 : 16, x8_qs = x8_qh + (P::qh ? 32 : 0);
    for (int r = 0; r < 8; ++r) {
        const uint8_t* blk = group + size_t(r) * row_bytes + size_t(b) * bb;
        std::memcpy(out + 2 * r, blk, 2);
        if constexpr (P::mins) std::memcpy(out + x8_m + 2 * r, blk + P::m, 2);
        if constexpr (P::qh) {
            uint32_t high;
            std::memcpy(&high, blk + P::qh_at, 4);
            pack_five_bit_row(high, blk + P::qs, out + x8_qh, out + x8_qs, r);
            continue;
        }
        constexpr int chunks = sizeof(typename P::Block) == sizeof(BlockQ8_0) ? 8 : 4;  // qs_chunks
        for (int j = 0; j < chunks; ++j) std::memcpy(out + x8_qs + 32 * j + 4 * r, blk + P::qs + 4 * j, 4);
    }
}

// Row r's block b (file layout, into out) from its x8 block.
void unpack_block(TensorType t, const uint8_t* x8, int r, uint8_t* out) {
    const PlainOffsets po = plain_offsets(t);
    const X8Offsets xo = x8_offsets(t);
    std::memcpy(out, x8 + 2 * r, 2);
    if (has_mins(t)) std::memcpy(out + po.m, x8 + xo.m + 2 * r, 2);
    if (has_qh(t)) {
        // The five-bit layout (repack.h): element 4j + k's code (chunk j) and element 16 + 4j + k's (chunk 4 + j).
        uint32_t high = 0;
        for (int j = 0; j < 4; ++j) {
            for (int k = 0; k < 4; ++k) {
                const uint8_t v = x8[xo.qs + 32 * j + 4 * r + k], tops = x8[xo.qh + 4 * r + k];
                const uint8_t lo = v & 0x1F, hi = uint8_t((v >> 5) | (((tops >> (2 * j)) & 3) << 3));
                out[po.qs + 4 * j + k] = uint8_t((lo & 0x0F) | ((hi & 0x0F) << 4));
                high |= uint32_t(lo >> 4) << (4 * j + k) | uint32_t(hi >> 4) << (16 + 4 * j + k);
            }
        }
        std::memcpy(out + po.qh, &high, 4);
        return;
    }
    for (int j = 0; j < qs_chunks(t); ++j) std::memcpy(out + po.qs + 4 * j, x8 + xo.qs + 32 * j + 4 * r, 4);
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
constexpr size_t kQ6KScAt = 16, kQ6KCodesAt = 144, kQ6KX8Bytes = 1680;

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

// The code byte of sub-block s, vector v, row r, element k of the chunk (repack.h).
inline size_t q6_k_code_at(int s, int v, int r, int k) { return kQ6KCodesAt + 96 * size_t(s) + 32 * size_t(v) + 4 * size_t(r) + size_t(k); }

void pack_q6_k(const uint8_t* group, size_t row_bytes, int64_t b, uint8_t* out) {
    // No zeroing first: every byte of the x8 block is assigned below.
    for (int r = 0; r < 8; ++r) {
        BlockQ6_K blk;
        std::memcpy(&blk, group + size_t(r) * row_bytes + size_t(b) * sizeof(BlockQ6_K), sizeof blk);
        std::memcpy(out + 2 * r, &blk.d, 2);
        for (int p = 0; p < 8; ++p)
            for (int e = 0; e < 2; ++e) out[kQ6KScAt + 16 * p + 2 * r + e] = uint8_t(blk.scales[2 * p + e]);
        uint8_t codes[QK_K];
        q6_k_codes(blk, codes);
        for (int s = 0; s < 16; ++s)
            for (int v = 0; v < 3; ++v)
                for (int k = 0; k < 4; ++k) {
                    const uint8_t spread = uint8_t(((codes[16 * s + 12 + k] >> (2 * v)) & 3) << 6);
                    out[q6_k_code_at(s, v, r, k)] = uint8_t(codes[16 * s + 4 * v + k] | spread);
                }
    }
}

void unpack_q6_k(const uint8_t* x8, int r, uint8_t* out) {
    BlockQ6_K blk{};
    std::memcpy(&blk.d, x8 + 2 * r, 2);
    for (int p = 0; p < 8; ++p)
        for (int e = 0; e < 2; ++e) blk.scales[2 * p + e] = int8_t(x8[kQ6KScAt + 16 * p + 2 * r + e]);
    uint8_t codes[QK_K] = {};
    for (int s = 0; s < 16; ++s)
        for (int v = 0; v < 3; ++v)
            for (int k = 0; k < 4; ++k) {
                const uint8_t byte = x8[q6_k_code_at(s, v, r, k)];
                codes[16 * s + 4 * v + k] = byte & 0x3F;
                codes[16 * s + 12 + k] |= uint8_t((byte >> 6) << (2 * v));
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
           type == TensorType::Q4_K || type == TensorType::Q6_K || type == TensorType::Q8_0;
}

bool repackable(const WeightView& w) {
    return w.layout == WeightLayout::Rows && repackable_type(w.type) && w.rows > 0 && w.rows % kRows8 == 0;
}

bool repacked_at_load(TensorType type) { return repackable_type(type) && type != TensorType::Q8_0; }

size_t rows8_block_bytes(TensorType type) { return type == TensorType::Q4_K ? kQ4KX8Bytes : 8 * block_bytes(type); }
static_assert(kQ6KX8Bytes == 8 * sizeof(BlockQ6_K));
size_t rows8_group_bytes(const WeightView& w) { return size_t(w.cols / block_size(w.type)) * rows8_block_bytes(w.type); }
size_t rows8_bytes(const WeightView& w) { return size_t(w.rows / kRows8) * rows8_group_bytes(w); }

namespace {

// Byte offsets of a block's fp16 scales in the file's layout (the ones the
// finite-weights check reads: reference/model/finite_weights.py's
// BLOCK_SCALE_OFFSETS). In the Rows8 layout they are the first 16 bytes of
// every x8 block, or 32 with the mins (repack.h).
struct Scales {
    size_t at[2];
    int n;
};
Scales scales_of(TensorType t) {
    switch (t) {
        case TensorType::Q4_0: return {{offsetof(BlockQ4_0, d), 0}, 1};
        case TensorType::Q4_1: return {{offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)}, 2};
        case TensorType::Q5_0: return {{offsetof(BlockQ5_0, d), 0}, 1};
        case TensorType::Q5_1: return {{offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)}, 2};
        case TensorType::Q4_K: return {{offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)}, 2};
        case TensorType::Q6_K: return {{offsetof(BlockQ6_K, d), 0}, 1};
        case TensorType::Q8_0: return {{offsetof(BlockQ8_0, d), 0}, 1};
        default: break;
    }
    throw Error(code::InvalidInput, std::string(type_name(uint32_t(t))) + " has no repacked layout");
}

constexpr uint16_t kHalfExponent = 0x7C00;  // an fp16 is NaN or infinite iff its exponent bits are all ones

// True when one of the n fp16 values at p is NaN or infinite; no early exit, so it vectorizes.
inline bool any_non_finite_half(const uint8_t* p, int n) {
    bool any = false;
    for (int i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        any |= uint16_t(v & kHalfExponent) == kHalfExponent;
    }
    return any;
}

// The byte offset, within the group (file layout), of its first non-finite scale.
int64_t first_non_finite_in_group(const uint8_t* group, size_t row_bytes, int64_t blocks, size_t bb, const Scales& s) {
    for (int r = 0; r < 8; ++r)
        for (int64_t b = 0; b < blocks; ++b)
            for (int i = 0; i < s.n; ++i) {
                const size_t at = size_t(r) * row_bytes + size_t(b) * bb + s.at[i];
                if (any_non_finite_half(group + at, 1)) return int64_t(at);
            }
    return -1;  // not reached when the x8 check saw one
}

template <TensorType T>
constexpr size_t x8_block_bytes() {
    if constexpr (T == TensorType::Q4_K) return kQ4KX8Bytes;
    else if constexpr (T == TensorType::Q6_K) return kQ6KX8Bytes;
    else return 8 * sizeof(typename Plain<T>::Block);
}

template <TensorType T>
void pack_group(const uint8_t* group, size_t row_bytes, int64_t blocks, uint8_t* to) {
    constexpr size_t xb = x8_block_bytes<T>();
    for (int64_t b = 0; b < blocks; ++b) {
        if constexpr (T == TensorType::Q4_K) {
            pack_q4_k(group, row_bytes, b, to + size_t(b) * xb);
        } else if constexpr (T == TensorType::Q6_K) {
            pack_q6_k(group, row_bytes, b, to + size_t(b) * xb);
        } else {
            pack_block<T>(group, row_bytes, b, to + size_t(b) * xb);
        }
    }
}

using PackGroup = void (*)(const uint8_t*, size_t, int64_t, uint8_t*);
PackGroup group_packer(TensorType t) {
    switch (t) {
        case TensorType::Q4_0: return pack_group<TensorType::Q4_0>;
        case TensorType::Q4_1: return pack_group<TensorType::Q4_1>;
        case TensorType::Q5_0: return pack_group<TensorType::Q5_0>;
        case TensorType::Q5_1: return pack_group<TensorType::Q5_1>;
        case TensorType::Q4_K: return pack_group<TensorType::Q4_K>;
        case TensorType::Q6_K: return pack_group<TensorType::Q6_K>;
        case TensorType::Q8_0: return pack_group<TensorType::Q8_0>;
        default: break;
    }
    throw Error(code::InvalidInput, std::string(type_name(uint32_t(t))) + " has no repacked layout");
}

}  // namespace

namespace {

void check_repackable(const WeightView& w) {
    if (!repackable(w)) {
        throw Error(code::InvalidInput, std::string("cannot repack ") + type_name(uint32_t(w.type)) + " weights [" +
                                            std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                                            "]: needs Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q6_K in the file's layout with rows a multiple of 8");
    }
}

// One job's constants, worked out once for all of its groups.
struct Plan {
    const uint8_t* src;
    uint8_t* out;
    size_t row_bytes, group_bytes, packed_group_bytes, x8_bytes, bb;
    int64_t blocks;
    PackGroup pack;
    Scales scales;
    bool overlap;  // dst overlaps the source (the in-place repack of the huge-page copy)
};

Plan plan_of(const Rows8Job& job) {
    const WeightView& w = job.w;
    Plan p;
    p.src = static_cast<const uint8_t*>(w.data);
    p.out = static_cast<uint8_t*>(job.dst);
    p.row_bytes = w.row_bytes;
    p.group_bytes = size_t(kRows8) * w.row_bytes;
    p.packed_group_bytes = rows8_group_bytes(w);
    p.x8_bytes = rows8_block_bytes(w.type);
    p.bb = block_bytes(w.type);
    p.blocks = w.cols / block_size(w.type);
    p.pack = group_packer(w.type);
    p.scales = scales_of(w.type);
    const size_t n_src = size_t(w.rows) * w.row_bytes;
    p.overlap = p.out < p.src + n_src && p.src < p.out + rows8_bytes(w);
    return p;
}

}  // namespace

void repack_rows8_many(std::vector<Rows8Job>& jobs, ThreadPool& pool, const std::function<void(const void*)>& reading) {
    std::vector<Plan> plans;
    std::vector<int64_t> starts;  // the first global group of each job, then the total
    plans.reserve(jobs.size());
    starts.reserve(jobs.size() + 1);
    int64_t total = 0;
    size_t largest_group = 0;
    for (Rows8Job& job : jobs) {
        check_repackable(job.w);
        plans.push_back(plan_of(job));
        starts.push_back(total);
        total += job.w.rows / kRows8;
        if (plans.back().overlap) largest_group = std::max(largest_group, plans.back().group_bytes);
        job.first_non_finite_scale = -1;
    }
    starts.push_back(total);
    std::mutex first_mutex;
    // Chunks of the groups of all the jobs, in order: enough of them that a descheduled thread's
    // share is taken over by the running one.
    constexpr int kChunksPerThread = 16;
    pool.parallel_for(total, [&](int64_t begin, int64_t end, int) {
        std::vector<uint8_t> copy(largest_group);  // a group read whole first where dst overlaps the source
        size_t j = size_t(std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin()) - 1;
        size_t found_in = SIZE_MAX;  // groups come in order within a chunk: only a job's first bad one counts
        if (reading) reading(plans[j].src + size_t(begin - starts[j]) * plans[j].group_bytes);
        for (int64_t at_group = begin; at_group < end; ++at_group) {
            while (at_group >= starts[j + 1]) ++j;
            const Plan& p = plans[j];
            const int64_t g = at_group - starts[j];
            const uint8_t* group = p.src + size_t(g) * p.group_bytes;
            if (p.overlap) {
                std::memcpy(copy.data(), group, p.group_bytes);
                group = copy.data();
            }
            uint8_t* to = p.out + size_t(g) * p.packed_group_bytes;
            p.pack(group, p.row_bytes, p.blocks, to);
            if (!jobs[j].check || found_in == j) continue;
            // The finite check fused into this one read: the scales just written, hot in cache.
            bool bad = false;
            for (int64_t b = 0; b < p.blocks; ++b) bad |= any_non_finite_half(to + size_t(b) * p.x8_bytes, 8 * p.scales.n);
            if (!bad) continue;
            const int64_t at = int64_t(size_t(g) * p.group_bytes) + first_non_finite_in_group(group, p.row_bytes, p.blocks, p.bb, p.scales);
            found_in = j;
            std::lock_guard<std::mutex> lock(first_mutex);
            int64_t& first = jobs[j].first_non_finite_scale;
            if (first < 0 || at < first) first = at;
        }
    }, kChunksPerThread);
}

WeightView repack_rows8(const WeightView& w, void* dst, ThreadPool& pool, int64_t* first_non_finite_scale) {
    std::vector<Rows8Job> jobs = {{w, dst, first_non_finite_scale != nullptr, -1}};
    repack_rows8_many(jobs, pool);
    if (first_non_finite_scale != nullptr) *first_non_finite_scale = jobs[0].first_non_finite_scale;
    return rows8_view(w, dst);
}

WeightView rows8_view(const WeightView& w, void* dst) {
    WeightView packed = w;
    packed.data = dst;
    packed.layout = WeightLayout::Rows8;
    return packed;
}

void dequantize_weight_row(const WeightView& w, int64_t r, float* dst) {
    if (w.layout != WeightLayout::Rows8) {
        dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + size_t(r) * w.row_bytes, dst, w.cols);
        return;
    }
    std::vector<uint8_t> row(w.row_bytes);
    unpack_row8(w, r, row.data());
    dequantize_row(w.type, row.data(), dst, w.cols);
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
