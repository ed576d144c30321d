// Quantized matrix-vector and matrix-matrix products: y[n][rows] = x[n][cols] . W^T.
//
// Numeric contract (tests/kernels/test_matmul.py checks it against float64):
//  * Quantized weights (Q4_0 ... Q6_K): the activations are quantized to 8 bits
//    first, per block of the weight's dot-product granularity, as llama.cpp
//    does: 32-element blocks for the 32-block formats (like q8_0/q8_1),
//    256-element blocks for the k-quants (like q8_K). A block's scale is
//    d = amax / 127 and q = round_to_nearest_even(x * (127 / amax)), so
//    |x - d*q| <= d/2. The weight's integer codes are multiplied by q with
//    exact integer arithmetic; scales and mins are applied in float32.
//    Hence, with w the exactly dequantized weights (quant.h):
//        |y - sum_j w_j x_j| <= sum_j |w_j| * d(block of j) / 2
//                               + 1e-5 * sum_j |w_j x_j| + 1e-30
//    The quantization of x is the same in every ISA variant (bit for bit), so
//    variants differ only by float summation order.
//  * F32, F16, BF16 weights: float32 activations, float32 products and sums:
//        |y - sum_j w_j x_j| <= 1e-5 * sum_j |w_j x_j| + 1e-30.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/quant.h"
#include "runtime/thread_pool.h"

namespace ggufsm {

// How a weight matrix's blocks lie in memory.
//  Rows:  the file's layout: [rows, cols] row-major, each row row_bytes long.
//  Rows8: repacked at load (kernels/repack.h): rows in groups of eight, each
//         group's blocks interleaved so one load feeds the int8 dot products of
//         all eight rows. Same bytes per row; rows % 8 == 0.
enum class WeightLayout { Rows, Rows8 };

// A weight matrix in place (usually inside the model's memory map, or its
// repacked copy).
struct WeightView {
    TensorType type = TensorType::F32;
    const void* data = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
    size_t row_bytes = 0;
    WeightLayout layout = WeightLayout::Rows;
};

// Checks the type is supported (UnsupportedModel otherwise), rows/cols are
// positive and cols is a whole number of blocks (InvalidModel otherwise).
WeightView make_weight_view(uint32_t ggml_type, const void* data, int64_t rows, int64_t cols);

// How activations are laid out for one weight type's dot product.
enum class ActivationFormat { F32, Q8_32, Q8_K };
ActivationFormat activation_format_for(TensorType weight_type);

// Activations quantized once for a weight type's dot product, reusable across
// every weight whose type needs the same format (wq/wk/wv, gate/up, and across
// Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, which all use Q8_32). The buffer is kept between
// calls, so a session can hold one per format and never reallocate.
//
// Layout per activation row, 64-byte aligned:
//   Q8_32: qs int8 in groups of four 32-blocks (128 bytes): the first halves (elements 0..15)
//          of the group's four blocks, then their second halves (16..31), so one 512-bit load
//          meets the low nibbles of four weight blocks and the next the high ones (see
//          q8_32_half); the last group is zero-padded. ds float [blocks rounded up to 4][2]:
//          the block's scale d and s = d * sum of its qs (for the mins of Q4_1/Q5_1 and the
//          offsets of Q4_0/Q5_0), side by side so one load fetches both; zero in the padding.
//   Q8_K:  qs int8 [cols], d float [cols/256], bsums int16 [cols/16] (sum of each 16 qs)
//   F32:   the floats as they are
class QuantizedActivations {
public:
    QuantizedActivations();
    ~QuantizedActivations();
    QuantizedActivations(QuantizedActivations&&) noexcept;
    QuantizedActivations& operator=(QuantizedActivations&&) noexcept;

    // x: [n][cols] f32. Throws InvalidInput if cols is not a whole number of
    // the format's blocks.
    void quantize(const float* x, int64_t n, int64_t cols, TensorType for_weight, ThreadPool& pool);

    ActivationFormat format() const { return format_; }
    int64_t n() const { return n_; }
    int64_t cols() const { return cols_; }
    int64_t block() const { return block_; }
    // Row i's parts (see the layout above).
    const int8_t* qs(int64_t i) const { return reinterpret_cast<const int8_t*>(base_ + i * row_stride_); }
    // Q8_32: the 16 codes of half h (0: elements 0..15, 1: 16..31) of block b of row i.
    const int8_t* q8_32_half(int64_t i, int64_t b, int h) const { return qs(i) + (b >> 2) * 128 + h * 64 + (b & 3) * 16; }
    const float* ds(int64_t i) const { return reinterpret_cast<const float*>(base_ + i * row_stride_ + d_offset_); }  // Q8_32
    const float* d(int64_t i) const { return reinterpret_cast<const float*>(base_ + i * row_stride_ + d_offset_); }   // Q8_K
    const int16_t* bsums(int64_t i) const { return reinterpret_cast<const int16_t*>(base_ + i * row_stride_ + sums_offset_); }
    const float* f32(int64_t i) const { return reinterpret_cast<const float*>(base_ + i * row_stride_); }

private:
    void reserve(size_t bytes);

    ActivationFormat format_ = ActivationFormat::F32;
    int64_t n_ = 0, cols_ = 0, block_ = 1;
    size_t row_stride_ = 0, d_offset_ = 0, sums_offset_ = 0;
    std::unique_ptr<uint8_t[]> storage_;
    size_t capacity_ = 0;
    uint8_t* base_ = nullptr;  // storage_ rounded up to 64 bytes
};

// y[n][rows] = x . W^T. x must have been quantized for w.type (InvalidInput
// otherwise, naming both) with x.cols() == w.cols. Rows are split over the pool.
void matmul(const WeightView& w, const QuantizedActivations& x, float* y /*[n][rows]*/, ThreadPool& pool);
// Convenience: quantizes x into a temporary and calls the above.
void matmul(const WeightView& w, const float* x /*[n][cols]*/, int64_t n, float* y /*[n][rows]*/, ThreadPool& pool);

// One product of a set that shares its activations (matmul_shared): y = x . W^T.
struct SharedProduct {
    const WeightView* w = nullptr;
    float* y = nullptr;  // [n][w->rows]
};
// y_k = x . W_k^T for every product, in one pool dispatch over all their rows
// (wq/wk/wv, gate/up): one hand-off and one barrier instead of one per matrix,
// which a decode step pays about two hundred times. The rows are split by the
// bytes their weights hold, so each thread streams an equal share when the
// matrices' types differ. Each product as matmul() computes it, bit for bit.
// Same checks as matmul(), for each product; at most kMaxSharedProducts
// (InvalidInput otherwise).
//
// then: the pool's read-ahead once the threads' rows are done (thread_pool.h),
// usually read_ahead_for the products that come next.
constexpr size_t kMaxSharedProducts = 4;
void matmul_shared(const SharedProduct* products, size_t count, const QuantizedActivations& x, ThreadPool& pool,
                   const ReadAhead* then = nullptr);

// matmul_shared's products cut into the same parts as matmul_shared cuts them on `pool`, for a team
// walking a decode step (ThreadPool::run_team, Team::phase): run(p, x) computes part p's rows, each
// row by the same kernel call as matmul_shared's, so every output element keeps its bits whichever
// thread runs which part. Part t of the first pool.size() parts is the one read_ahead_for reads
// ahead for thread t. The parts are known before x is quantized (a team counts them before the
// phase that quantizes x is done); run makes matmul_shared's checks of x.
//
// part_bytes > 0 cuts them instead into parts of about that many bytes (at least one per thread, at
// most 64 per thread, whole row tiles as ever, so every row keeps its bits): a team's member that
// finishes its share early takes the others' last parts rather than waiting for them.
class SharedParts {
public:
    SharedParts(const SharedProduct* products, size_t count, const ThreadPool& pool, int64_t part_bytes = 0);
    ~SharedParts();
    SharedParts(SharedParts&&) noexcept;
    SharedParts& operator=(SharedParts&&) noexcept;
    int64_t parts() const;
    void run(int64_t part, const QuantizedActivations& x) const;
    // What member m of a team of `members` streams first (Team::phase: its own share of the parts,
    // [m * parts / members, (m + 1) * parts / members), in order): the weights of that share, to read
    // ahead (the budget stops it at the first bytes).
    ReadAhead read_ahead(int members) const;

private:
    struct State;
    std::unique_ptr<State> s_;
};

// The weights matmul_shared(products, count, ..., pool) will stream first on
// each thread, as read-ahead for the pool: part t of its split, which thread t
// claims first on a quiet machine (the caller its first part, worker t the
// t-th; a thread that claims another part finds these lines in a cache near
// it). Only the weights' own bytes; no check of the products (matmul_shared
// makes them).
ReadAhead read_ahead_for(const SharedProduct* products, size_t count, const ThreadPool& pool);

}  // namespace ggufsm
