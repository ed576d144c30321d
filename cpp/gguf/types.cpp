// The GGUF value types and ggml's tensor types as data: one table each.
#include "gguf/gguf.h"

namespace ggufsm::gguf {

namespace {
constexpr uint32_t QK_K = 256;  // elements per k-quant super-block

// ggml.h `enum ggml_type` / gguf.constants GGML_QUANT_SIZES. Ids 4, 5 (Q4_2,
// Q4_3), 31-33 and 36-38 (repacked layouts) were numbered once and removed.
// `supported`: the types the kernels (quant.h, matmul.h) run.
const std::vector<TensorTypeTraits> kTensorTypes = {
    {0, "F32", 1, 4, true},
    {1, "F16", 1, 2, true},
    {2, "Q4_0", 32, 2 + 16, true},
    {3, "Q4_1", 32, 2 + 2 + 16, true},
    {6, "Q5_0", 32, 2 + 4 + 16, true},
    {7, "Q5_1", 32, 2 + 2 + 4 + 16, true},
    {8, "Q8_0", 32, 2 + 32, true},
    {9, "Q8_1", 32, 4 + 4 + 32, false},
    {10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, true},
    {11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, true},
    {12, "Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12, true},
    {13, "Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12, true},
    {14, "Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16, true},
    {15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8, false},
    {16, "IQ2_XXS", QK_K, 2 + QK_K / 4, false},
    {17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, false},
    {18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, false},
    {19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, false},
    {20, "IQ4_NL", 32, 2 + 16, false},
    {21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, false},
    {22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, false},
    {23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, false},
    {24, "I8", 1, 1, false},
    {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},
    {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},
    {29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, false},
    {30, "BF16", 1, 2, true},
    {34, "TQ1_0", QK_K, 2 + 4 * 13, false},
    {35, "TQ2_0", QK_K, 2 + 64, false},
    {39, "MXFP4", 32, 1 + 16, false},
    {40, "NVFP4", 64, 4 + 32, false},
    {41, "Q1_0", 128, 2 + 16, false},
};

constexpr const char* kValueTypeNames[kValueTypeCount] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};
constexpr uint32_t kValueTypeSizes[kValueTypeCount] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
}  // namespace

const std::vector<TensorTypeTraits>& tensor_type_table() { return kTensorTypes; }

const TensorTypeTraits* tensor_type_traits(uint32_t id) {
    for (const TensorTypeTraits& traits : kTensorTypes)
        if (traits.id == id) return &traits;
    return nullptr;
}

const char* value_type_name(ValueType type) {
    const auto index = static_cast<uint32_t>(type);
    return index < kValueTypeCount ? kValueTypeNames[index] : "UNKNOWN";
}

uint32_t value_type_size(ValueType type) {
    const auto index = static_cast<uint32_t>(type);
    return index < kValueTypeCount ? kValueTypeSizes[index] : 0;
}

bool is_integer(ValueType type) {
    switch (type) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
        case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
            return true;
        default:
            return false;
    }
}

bool is_float(ValueType type) { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

}  // namespace ggufsm::gguf
