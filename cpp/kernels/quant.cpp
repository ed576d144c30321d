// Block formats and exact dequantization. Every expression below does the
// float32 operations gguf-py's numpy dequantizers do, in the same order and
// without fused multiply-adds (this file is built for baseline x86-64, which
// has no FMA), so the results are bit-identical.
#include "kernels/quant.h"

#include <cstddef>
#include <cstring>
#include <string>

#include "errors.h"

namespace ggufsm {

namespace {

struct TypeTraits {
    const char* name;
    int64_t block_size;
    size_t block_bytes;
};

// Indexed by ggml type id; block_size 0 marks an id the kernels do not handle.
const TypeTraits* traits_of(uint32_t id) {
    static const TypeTraits table[31] = {
        {"F32", 1, 4}, {"F16", 1, 2}, {"Q4_0", 32, 18}, {"Q4_1", 32, 20}, {"type#4", 0, 0}, {"type#5", 0, 0},
        {"Q5_0", 32, 22}, {"Q5_1", 32, 24}, {"Q8_0", 32, 34}, {"type#9", 0, 0}, {"Q2_K", 256, 84},
        {"Q3_K", 256, 110}, {"Q4_K", 256, 144}, {"Q5_K", 256, 176}, {"Q6_K", 256, 210}, {"type#15", 0, 0},
        {"type#16", 0, 0}, {"type#17", 0, 0}, {"type#18", 0, 0}, {"type#19", 0, 0}, {"type#20", 0, 0},
        {"type#21", 0, 0}, {"type#22", 0, 0}, {"type#23", 0, 0}, {"type#24", 0, 0}, {"type#25", 0, 0},
        {"type#26", 0, 0}, {"type#27", 0, 0}, {"type#28", 0, 0}, {"type#29", 0, 0}, {"BF16", 1, 2},
    };
    if (id >= 31 || table[id].block_size == 0) return nullptr;
    return &table[id];
}

const TypeTraits& checked_traits(TensorType type) {
    const TypeTraits* t = traits_of(static_cast<uint32_t>(type));
    if (!t) {
        throw Error(code::UnsupportedModel,
                    "tensor type " + std::string(type_name(static_cast<uint32_t>(type))) + " is not supported by the kernels");
    }
    return *t;
}

uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

void dequantize_q4_0(const uint8_t* b, float* y) {
    const float d = fp16_to_fp32(load_u16(b));
    for (int i = 0; i < 16; ++i) {
        y[i] = d * static_cast<float>((b[2 + i] & 0xF) - 8);
        y[i + 16] = d * static_cast<float>((b[2 + i] >> 4) - 8);
    }
}

void dequantize_q4_1(const uint8_t* b, float* y) {
    const float d = fp16_to_fp32(load_u16(b)), m = fp16_to_fp32(load_u16(b + 2));
    for (int i = 0; i < 16; ++i) {
        y[i] = d * static_cast<float>(b[4 + i] & 0xF) + m;
        y[i + 16] = d * static_cast<float>(b[4 + i] >> 4) + m;
    }
}

void dequantize_q5_0(const uint8_t* b, float* y) {
    const float d = fp16_to_fp32(load_u16(b));
    const uint32_t qh = load_u32(b + 2);
    for (int i = 0; i < 16; ++i) {
        const int lo = (b[6 + i] & 0xF) | (((qh >> i) & 1) << 4);
        const int hi = (b[6 + i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
        y[i] = d * static_cast<float>(lo - 16);
        y[i + 16] = d * static_cast<float>(hi - 16);
    }
}

void dequantize_q5_1(const uint8_t* b, float* y) {
    const float d = fp16_to_fp32(load_u16(b)), m = fp16_to_fp32(load_u16(b + 2));
    const uint32_t qh = load_u32(b + 4);
    for (int i = 0; i < 16; ++i) {
        const int lo = (b[8 + i] & 0xF) | (((qh >> i) & 1) << 4);
        const int hi = (b[8 + i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
        y[i] = d * static_cast<float>(lo) + m;
        y[i + 16] = d * static_cast<float>(hi) + m;
    }
}

void dequantize_q8_0(const uint8_t* b, float* y) {
    const float d = fp16_to_fp32(load_u16(b));
    for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(static_cast<int8_t>(b[2 + i])) * d;
}

// Element j*128 + s*32 + l holds bits 2s..2s+1 of qs[j*32 + l]; 16 sub-blocks of 16.
void dequantize_q2_k(const uint8_t* b, float* y) {
    const BlockQ2_K* blk = reinterpret_cast<const BlockQ2_K*>(b);
    const float d = fp16_to_fp32(load_u16(b + offsetof(BlockQ2_K, d)));
    const float dmin = fp16_to_fp32(load_u16(b + offsetof(BlockQ2_K, dmin)));
    for (int i = 0; i < QK_K; ++i) {
        const int j = i / 128, s = (i / 32) % 4, l = i % 32, sub = i / 16;
        const float dl = d * static_cast<float>(blk->scales[sub] & 0xF);
        const float ml = dmin * static_cast<float>(blk->scales[sub] >> 4);
        const int q = (blk->qs[j * 32 + l] >> (2 * s)) & 3;
        y[i] = dl * static_cast<float>(q) - ml;
    }
}

// Like Q2_K for the low bits; bit (i / 32) of hmask[i % 32] clear means subtract 4.
void dequantize_q3_k(const uint8_t* b, float* y) {
    const BlockQ3_K* blk = reinterpret_cast<const BlockQ3_K*>(b);
    const float d = fp16_to_fp32(load_u16(b + offsetof(BlockQ3_K, d)));
    int scales[16];
    q3_k_scales(blk->scales, scales);
    for (int i = 0; i < QK_K; ++i) {
        const int j = i / 128, s = (i / 32) % 4, l = i % 32;
        const float dl = d * static_cast<float>(scales[i / 16]);
        const int low = (blk->qs[j * 32 + l] >> (2 * s)) & 3;
        const int high = (blk->hmask[l] >> (i / 32)) & 1;
        y[i] = dl * static_cast<float>(low - (high ? 0 : 4));
    }
}

// Element j*64 + s*32 + l is nibble s of qs[j*32 + l]; sub-block j*2 + s.
void dequantize_q4_k(const uint8_t* b, float* y) {
    const BlockQ4_K* blk = reinterpret_cast<const BlockQ4_K*>(b);
    const float d = fp16_to_fp32(blk->d), dmin = fp16_to_fp32(blk->dmin);
    for (int sub = 0; sub < 8; ++sub) {
        int sc, m;
        k_scale_min(blk->scales, sub, sc, m);
        const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
        const int j = sub / 2, s = sub % 2;
        for (int l = 0; l < 32; ++l) {
            const int q = (blk->qs[j * 32 + l] >> (4 * s)) & 0xF;
            y[sub * 32 + l] = dl * static_cast<float>(q) - ml;
        }
    }
}

// As Q4_K, with bit `sub` of qh[l] as the fifth bit.
void dequantize_q5_k(const uint8_t* b, float* y) {
    const BlockQ5_K* blk = reinterpret_cast<const BlockQ5_K*>(b);
    const float d = fp16_to_fp32(blk->d), dmin = fp16_to_fp32(blk->dmin);
    for (int sub = 0; sub < 8; ++sub) {
        int sc, m;
        k_scale_min(blk->scales, sub, sc, m);
        const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
        const int j = sub / 2, s = sub % 2;
        for (int l = 0; l < 32; ++l) {
            const int q = ((blk->qs[j * 32 + l] >> (4 * s)) & 0xF) | (((blk->qh[l] >> sub) & 1) << 4);
            y[sub * 32 + l] = dl * static_cast<float>(q) - ml;
        }
    }
}

// Element j*128 + t*32 + l: low nibble (t < 2) or high nibble (t >= 2) of
// ql[j*64 + (t%2)*32 + l], high bits 2t..2t+1 of qh[j*32 + l]; 16 sub-blocks of 16.
void dequantize_q6_k(const uint8_t* b, float* y) {
    const BlockQ6_K* blk = reinterpret_cast<const BlockQ6_K*>(b);
    const float d = fp16_to_fp32(load_u16(b + offsetof(BlockQ6_K, d)));
    for (int i = 0; i < QK_K; ++i) {
        const int j = i / 128, t = (i / 32) % 4, l = i % 32;
        const int low = (blk->ql[j * 64 + (t % 2) * 32 + l] >> (4 * (t / 2))) & 0xF;
        const int high = (blk->qh[j * 32 + l] >> (2 * t)) & 3;
        const float dl = d * static_cast<float>(blk->scales[i / 16]);
        y[i] = dl * static_cast<float>((low | (high << 4)) - 32);
    }
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {  // subnormal half: normalize
        int shift = 0;
        while (!(mantissa & 0x400)) {
            mantissa <<= 1;
            ++shift;
        }
        bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((mantissa & 0x3FF) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

float bf16_to_fp32(uint16_t h) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
    const uint32_t abs = x & 0x7FFFFFFF;
    if (abs > 0x7F800000) return sign | 0x7E00;  // NaN
    if (abs >= 0x477FF000) return sign | 0x7C00;  // rounds to infinity
    if (abs < 0x38800000) {                       // subnormal or zero half
        if (abs < 0x33000000) return sign;
        const uint32_t mantissa = (abs & 0x7FFFFF) | 0x800000;
        // The half's units are 2^-24: f = mantissa * 2^(exponent - 150), so the half is mantissa >> (126 - exponent).
        const int shift = 126 - static_cast<int>(abs >> 23);
        uint32_t half = mantissa >> shift;
        const uint32_t rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1))) ++half;
        return sign | static_cast<uint16_t>(half);
    }
    uint32_t half = ((abs >> 23) - 112) << 10 | ((abs >> 13) & 0x3FF);
    const uint32_t rest = abs & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;
    return sign | static_cast<uint16_t>(half);
}

bool kernels_support(uint32_t ggml_type) { return traits_of(ggml_type) != nullptr; }

const char* type_name(uint32_t ggml_type) {
    static thread_local std::string unknown;
    const TypeTraits* t = traits_of(ggml_type);
    if (t) return t->name;
    unknown = "type#" + std::to_string(ggml_type);
    return unknown.c_str();
}

int64_t block_size(TensorType type) { return checked_traits(type).block_size; }

size_t block_bytes(TensorType type) { return checked_traits(type).block_bytes; }

size_t row_bytes(TensorType type, int64_t n_cols) {
    const TypeTraits& t = checked_traits(type);
    if (n_cols <= 0 || n_cols % t.block_size != 0) {
        throw Error(code::InvalidModel, std::string("row of ") + std::to_string(n_cols) + " elements is not a whole number of " +
                                            t.name + " blocks (block size " + std::to_string(t.block_size) + ")");
    }
    return static_cast<size_t>(n_cols / t.block_size) * t.block_bytes;
}

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
    const TypeTraits& t = checked_traits(type);
    if (n < 0 || n % t.block_size != 0) {
        throw Error(code::InvalidInput, std::string("cannot dequantize ") + std::to_string(n) + " elements of " + t.name +
                                            ": not a whole number of blocks of " + std::to_string(t.block_size));
    }
    const uint8_t* b = static_cast<const uint8_t*>(src);
    const int64_t n_blocks = n / t.block_size;
    using BlockFn = void (*)(const uint8_t*, float*);
    BlockFn block_fn = nullptr;
    switch (type) {
        case TensorType::F32:
            std::memcpy(dst, src, static_cast<size_t>(n) * 4);
            return;
        case TensorType::F16:
            for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(b + 2 * i));
            return;
        case TensorType::BF16:
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(b + 2 * i));
            return;
        case TensorType::Q4_0: block_fn = dequantize_q4_0; break;
        case TensorType::Q4_1: block_fn = dequantize_q4_1; break;
        case TensorType::Q5_0: block_fn = dequantize_q5_0; break;
        case TensorType::Q5_1: block_fn = dequantize_q5_1; break;
        case TensorType::Q8_0: block_fn = dequantize_q8_0; break;
        case TensorType::Q2_K: block_fn = dequantize_q2_k; break;
        case TensorType::Q3_K: block_fn = dequantize_q3_k; break;
        case TensorType::Q4_K: block_fn = dequantize_q4_k; break;
        case TensorType::Q5_K: block_fn = dequantize_q5_k; break;
        case TensorType::Q6_K: block_fn = dequantize_q6_k; break;
    }
    for (int64_t i = 0; i < n_blocks; ++i) block_fn(b + i * t.block_bytes, dst + i * t.block_size);
}

}  // namespace ggufsm
