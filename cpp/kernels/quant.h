// Quantized block formats (the ggml ones, byte for byte) and their
// dequantization. The layouts match ggml-common.h; the dequantizers are
// bit-exact against gguf.quants.dequantize (tests/kernels/test_dequantize.py).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ggufsm {

// ggml type ids, as stored in a GGUF tensor info.
enum class TensorType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
};

// True for the ggml types the kernels below handle.
bool kernels_support(uint32_t ggml_type);
// "Q4_K", ...; "type#N" for an unknown id.
const char* type_name(uint32_t ggml_type);

// Elements per block (1 for F32/F16/BF16, 32 for the 32-blocks, 256 for the k-quants).
int64_t block_size(TensorType type);
// Bytes per block.
size_t block_bytes(TensorType type);
// Bytes of one row of n_cols elements; throws InvalidModel if n_cols is not a
// multiple of the block size or n_cols <= 0.
size_t row_bytes(TensorType type, int64_t n_cols);

// dst[0..n) = the n elements encoded at src; n must be a multiple of the block
// size (throws InvalidInput otherwise). Scalar; exact (every value is the same
// float32 gguf-py computes).
void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);

// ---- block layouts (ggml-common.h); fp16 fields are raw IEEE half bits ----
constexpr int QK32 = 32;   // elements per block of the 32-block formats
constexpr int QK_K = 256;  // elements per super-block of the k-quants
constexpr int K_SCALE_SIZE = 12;

struct BlockQ4_0 { uint16_t d; uint8_t qs[QK32 / 2]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[QK32 / 2]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK32 / 2]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK32 / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[QK32]; };
struct BlockQ2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block.
inline void k_scale_min(const uint8_t* scales, int j, int& sc, int& m) {
    if (j < 4) {
        sc = scales[j] & 63;
        m = scales[j + 4] & 63;
    } else {
        sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
        m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

// The 16 signed scales of a Q3_K super-block.
inline void q3_k_scales(const uint8_t* packed, int out[16]) {
    for (int j = 0; j < 16; ++j) {
        const int low = (packed[j % 8] >> (4 * (j / 8))) & 0xF;
        const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (low | (high << 4)) - 32;
    }
}

// IEEE half / bfloat16 bits to float (exact).
float fp16_to_fp32(uint16_t h);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even

}  // namespace ggufsm
