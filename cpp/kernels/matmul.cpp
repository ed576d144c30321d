// matmul(): validation, activation quantization (the kernel set's
// quantize_blocks, bit-identical in every ISA variant, laid out as matmul.h
// says), and the split of weight rows over the thread pool.
#include "kernels/matmul.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "kernels/kernel_set.h"
#include "kernels/repack.h"

namespace ggufsm {

namespace {

constexpr size_t kAlign = 64;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Rows handed out per chunk: a multiple of 16 so two threads never write the
// same cache line of y.
constexpr int64_t kRowTile = 16;

// Chunks per thread for a product whose weights hold `bytes`: one for a layer
// matrix (each chunk start restarts a weight stream whose first pages wait out
// the memory latency, matmul()), but a chunk per 4 MiB or so of a large one (the
// output matrix: 178 MB in Gemma 3), so when one thread is descheduled on a
// busy machine the other streams its share rather than wait out the end of a
// half. A 4 MiB chunk streams for about 350 us at a thread's 12 GB/s; its
// start costs a few.
constexpr int64_t kStreamChunkBytes = int64_t(4) << 20;
int chunks_per_thread_for(int64_t bytes, const ThreadPool& pool) {
    return int(std::clamp<int64_t>(bytes / (kStreamChunkBytes * pool.size()), 1, 64));
}

// Activations of at most this many elements are quantized on the calling thread (see quantize): a
// batched decode step of up to 8 SmolLM2 sessions, the w_down input (n_ff 1536) included (at 4 sessions
// its hand-off to the pool cost 3 of an 82 ms step at load 12), or one Gemma 3 row (n_ff 6912).
constexpr int64_t kInlineQuantizeElements = 8 * 1536;

const char* format_name(ActivationFormat f) {
    switch (f) {
        case ActivationFormat::F32: return "F32";
        case ActivationFormat::Q8_32: return "Q8_32";
        case ActivationFormat::Q8_K: return "Q8_K";
    }
    return "?";
}

}  // namespace

WeightView make_weight_view(uint32_t ggml_type, const void* data, int64_t rows, int64_t cols) {
    if (!kernels_support(ggml_type)) {
        throw Error(code::UnsupportedModel, std::string("weight type ") + type_name(ggml_type) + " is not supported by the kernels");
    }
    if (rows <= 0 || cols <= 0) {
        throw Error(code::InvalidModel, "weight shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "] must be positive");
    }
    if (!data) throw Error(code::InvalidInput, "weight data pointer is null");
    const TensorType type = static_cast<TensorType>(ggml_type);
    return WeightView{type, data, rows, cols, row_bytes(type, cols)};
}

ActivationFormat activation_format_for(TensorType weight_type) {
    switch (weight_type) {
        case TensorType::F32:
        case TensorType::F16:
        case TensorType::BF16: return ActivationFormat::F32;
        case TensorType::Q4_0:
        case TensorType::Q4_1:
        case TensorType::Q5_0:
        case TensorType::Q5_1:
        case TensorType::Q8_0: return ActivationFormat::Q8_32;
        case TensorType::Q2_K:
        case TensorType::Q3_K:
        case TensorType::Q4_K:
        case TensorType::Q5_K:
        case TensorType::Q6_K: return ActivationFormat::Q8_K;
    }
    throw Error(code::UnsupportedModel, std::string("weight type ") + type_name(static_cast<uint32_t>(weight_type)) +
                                            " is not supported by the kernels");
}

QuantizedActivations::QuantizedActivations() = default;
QuantizedActivations::~QuantizedActivations() = default;
QuantizedActivations::QuantizedActivations(QuantizedActivations&&) noexcept = default;
QuantizedActivations& QuantizedActivations::operator=(QuantizedActivations&&) noexcept = default;

void QuantizedActivations::reserve(size_t bytes) {
    if (bytes + kAlign <= capacity_) return;
    storage_.reset(new uint8_t[bytes + kAlign]);
    capacity_ = bytes + kAlign;
    const uintptr_t p = reinterpret_cast<uintptr_t>(storage_.get());
    base_ = storage_.get() + (round_up(p, kAlign) - p);
}

void QuantizedActivations::quantize(const float* x, int64_t n, int64_t cols, TensorType for_weight, ThreadPool& pool) {
    const ActivationFormat format = activation_format_for(for_weight);
    const int64_t block = format == ActivationFormat::Q8_32 ? QK32 : format == ActivationFormat::Q8_K ? QK_K : 1;
    if (n < 0 || cols <= 0 || cols % block != 0) {
        throw Error(code::InvalidInput, "cannot quantize activations [" + std::to_string(n) + ", " + std::to_string(cols) +
                                            "] for " + type_name(static_cast<uint32_t>(for_weight)) + " weights: cols must be a positive multiple of " +
                                            std::to_string(block));
    }
    format_ = format;
    n_ = n;
    cols_ = cols;
    block_ = block;
    const int64_t n_blocks = cols / block;
    if (format == ActivationFormat::F32) {
        row_stride_ = round_up(static_cast<size_t>(cols) * 4, kAlign);
        d_offset_ = sums_offset_ = 0;
    } else if (format == ActivationFormat::Q8_32) {
        const size_t groups = static_cast<size_t>(n_blocks + 3) / 4;  // of four blocks (matmul.h)
        d_offset_ = groups * 128;
        sums_offset_ = d_offset_ + round_up(groups * 8 * 4, kAlign);
        row_stride_ = sums_offset_;
    } else {
        d_offset_ = round_up(static_cast<size_t>(cols), kAlign);
        const size_t scale_floats = n_blocks;
        sums_offset_ = d_offset_ + round_up(scale_floats * 4, kAlign);
        const size_t sums_bytes = (cols / 16) * 2;
        row_stride_ = sums_offset_ + round_up(sums_bytes, kAlign);
    }
    reserve(row_stride_ * static_cast<size_t>(std::max<int64_t>(n, 1)));
    const kernels::QuantizeBlocksFn quantize_blocks = kernels::active().quantize_blocks;
    // A decode step's few rows (a batch of sessions) are quantized inline: a few microseconds,
    // about what a hand-off to the pool costs on a quiet machine, and far less than one costs
    // when a worker is descheduled (11 of a 4-session step's 93 ms at load 7-9).
    const bool inline_rows = n * cols <= kInlineQuantizeElements;
    const auto each_row = [&](int64_t begin, int64_t end, int) {
        // Q8_32 rows are quantized whole here, then dealt into their groups of four blocks.
        std::vector<int8_t> codes(format == ActivationFormat::Q8_32 ? static_cast<size_t>(cols) : 0);
        std::vector<float> scales(format == ActivationFormat::Q8_32 ? static_cast<size_t>(n_blocks) : 0);
        std::vector<int16_t> sums(format == ActivationFormat::Q8_32 ? static_cast<size_t>(cols / 16) : 0);
        for (int64_t i = begin; i < end; ++i) {
            const float* xi = x + i * cols;
            if (format == ActivationFormat::F32) {
                std::memcpy(base_ + i * row_stride_, xi, cols * 4);
                continue;
            }
            int8_t* q = const_cast<int8_t*>(qs(i));
            if (format == ActivationFormat::Q8_32) {
                quantize_blocks(xi, n_blocks, QK32, codes.data(), scales.data(), sums.data());
                float* ds_pairs = const_cast<float*>(ds(i));
                const int64_t padded = (n_blocks + 3) / 4 * 4;
                for (int64_t b = 0; b < padded; ++b) {
                    int8_t* lo = const_cast<int8_t*>(q8_32_half(i, b, 0));
                    int8_t* hi = const_cast<int8_t*>(q8_32_half(i, b, 1));
                    if (b >= n_blocks) {
                        std::memset(lo, 0, 16);
                        std::memset(hi, 0, 16);
                        ds_pairs[2 * b] = ds_pairs[2 * b + 1] = 0.0f;
                        continue;
                    }
                    std::memcpy(lo, codes.data() + b * QK32, 16);
                    std::memcpy(hi, codes.data() + b * QK32 + 16, 16);
                    ds_pairs[2 * b] = scales[b];
                    ds_pairs[2 * b + 1] = scales[b] * static_cast<float>(sums[2 * b] + sums[2 * b + 1]);
                }
            } else {
                quantize_blocks(xi, n_blocks, QK_K, q, const_cast<float*>(d(i)), const_cast<int16_t*>(bsums(i)));
            }
        }
    };
    if (inline_rows) {
        each_row(0, n, 0);
    } else {
        pool.parallel_for(n, each_row);
    }
}

namespace {

// The kernel that runs w against x, after checking x was quantized for w.
kernels::MatmulRowsFn kernel_for(const WeightView& w, const QuantizedActivations& x) {
    const ActivationFormat wanted = activation_format_for(w.type);
    if (x.format() != wanted || x.cols() != w.cols) {
        throw Error(code::InvalidInput, std::string("activations quantized as ") + format_name(x.format()) + " with " +
                                            std::to_string(x.cols()) + " cols do not fit " + type_name(static_cast<uint32_t>(w.type)) +
                                            " weights [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "], which need " +
                                            format_name(wanted) + " with " + std::to_string(w.cols) + " cols");
    }
    const uint32_t id = static_cast<uint32_t>(w.type);
    const kernels::KernelSet& set = kernels::active();
    const kernels::MatmulRowsFn fn = w.layout == WeightLayout::Rows8 ? set.matmul_rows8[id] : set.matmul_rows[id];
    if (!fn) throw Error(code::InvalidInput, std::string("no kernel runs repacked ") + type_name(id) + " weights");
    return fn;
}

}  // namespace

void matmul(const WeightView& w, const QuantizedActivations& x, float* y, ThreadPool& pool) {
    const kernels::MatmulRowsFn fn = kernel_for(w, x);
    if (x.n() == 0) return;
    const int64_t tiles = (w.rows + kRowTile - 1) / kRowTile;
    // Few chunks (chunks_per_thread_for): every row costs the same, and each chunk start
    // restarts a weight stream whose first pages wait out the memory latency
    // (the hardware prefetchers start over at every 4 KiB page and need a
    // few misses to ramp up); one per thread gained most on small matrices
    // (docs/benchmarks.md, "Kernel history").
    pool.parallel_for(
        tiles, [&](int64_t begin, int64_t end, int) { fn(w, x, y, begin * kRowTile, std::min(end * kRowTile, w.rows)); },
        chunks_per_thread_for(w.rows * int64_t(w.row_bytes), pool));
}

void matmul(const WeightView& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
    QuantizedActivations q;
    q.quantize(x, n, w.cols, w.type, pool);
    matmul(w, q, y, pool);
}

namespace {

// matmul_shared's split of its products' rows: each product's rows in tiles (as matmul() splits
// them), tiles in the products' order; a tile's cost is the bytes its rows hold. Part p of the
// dispatch takes the tiles whose cost starts in its equal share of the total, so the parts stream
// alike.
class SharedSplit {
public:
    // part_bytes > 0: parts of about that many bytes each instead (at least one per thread, at most 64).
    SharedSplit(const SharedProduct* products, size_t count, const ThreadPool& pool, int64_t part_bytes = 0) : count_(count) {
        if (count > kMaxSharedProducts) {
            throw Error(code::InvalidInput, "matmul_shared takes at most " + std::to_string(kMaxSharedProducts) + " products, got " +
                                                std::to_string(count));
        }
        for (size_t k = 0; k < count; ++k) {
            const WeightView& w = *products[k].w;
            const int64_t n_tiles = (w.rows + kRowTile - 1) / kRowTile, tile_bytes = kRowTile * int64_t(w.row_bytes);
            pieces_[k] = Piece{tiles_, n_tiles, tile_bytes, bytes_};
            tiles_ += n_tiles;
            bytes_ += n_tiles * tile_bytes;
        }
        per_thread_ = chunks_per_thread_for(bytes_, pool);
        parts_ = std::min<int64_t>(int64_t(pool.size()) * per_thread_, tiles_);
        if (part_bytes > 0) {
            parts_ = std::min(std::clamp<int64_t>((bytes_ + part_bytes - 1) / part_bytes, pool.size(), int64_t(64) * pool.size()), tiles_);
        }
    }

    int per_thread() const { return per_thread_; }
    int64_t parts() const { return parts_; }
    // Part p's tiles of the concatenation: [first, second).
    std::pair<int64_t, int64_t> part_tiles(int64_t p) const { return {tile_at(bytes_ * p / parts_), tile_at(bytes_ * (p + 1) / parts_)}; }
    // fn(k, begin_row, end_row) for each product k's rows among tiles [begin, end).
    template <typename Fn>
    void for_rows(const SharedProduct* products, int64_t begin, int64_t end, Fn&& fn) const {
        for (size_t k = 0; k < count_; ++k) {
            const Piece& p = pieces_[k];
            const int64_t b = std::max(begin, p.first_tile) - p.first_tile, e = std::min(end, p.first_tile + p.tiles) - p.first_tile;
            if (b < e) fn(k, b * kRowTile, std::min(e * kRowTile, products[k].w->rows));
        }
    }

private:
    struct Piece {
        int64_t first_tile;  // of the concatenation
        int64_t tiles;
        int64_t tile_bytes;
        int64_t bytes_before;  // of the products before this one
    };
    // The first tile whose cost starts at or after byte `at`.
    int64_t tile_at(int64_t at) const {
        for (size_t k = 0; k < count_; ++k) {
            const Piece& p = pieces_[k];
            if (at < p.bytes_before + p.tiles * p.tile_bytes) {
                return p.first_tile + std::max<int64_t>(0, (at - p.bytes_before + p.tile_bytes - 1) / p.tile_bytes);
            }
        }
        return tiles_;
    }

    size_t count_;
    std::array<Piece, kMaxSharedProducts> pieces_{};
    int64_t tiles_ = 0, bytes_ = 0, parts_ = 0;
    int per_thread_ = 1;
};

// Byte offset of row r (a multiple of kRowTile) in w's layout: Rows8 keeps groups of eight rows, each
// rows8_group_bytes long (Q4_K's repacked rows are longer than the file's).
size_t row_offset(const WeightView& w, int64_t r) {
    return w.layout == WeightLayout::Rows8 ? size_t(r / 8) * rows8_group_bytes(w) : size_t(r) * w.row_bytes;
}

}  // namespace

ReadAhead read_ahead_for(const SharedProduct* products, size_t count, const ThreadPool& pool) {
    ReadAhead ahead;
    if (count == 0 || count > kMaxSharedProducts) return ahead;
    const SharedSplit split(products, count, pool);
    for (int64_t t = 0; t < std::min<int64_t>({split.parts(), pool.size(), ReadAhead::kThreads}); ++t) {
        const auto [begin, end] = split.part_tiles(t);
        split.for_rows(products, begin, end, [&](size_t k, int64_t row_begin, int64_t row_end) {
            const WeightView& w = *products[k].w;
            const uint8_t* data = static_cast<const uint8_t*>(w.data);
            ahead.add(int(t), data + row_offset(w, row_begin), row_offset(w, row_end) - row_offset(w, row_begin));
        });
    }
    return ahead;
}

void matmul_shared(const SharedProduct* products, size_t count, const QuantizedActivations& x, ThreadPool& pool,
                   const ReadAhead* then) {
    const SharedSplit split(products, count, pool);
    std::array<kernels::MatmulRowsFn, kMaxSharedProducts> fns{};
    for (size_t k = 0; k < count; ++k) fns[k] = kernel_for(*products[k].w, x);
    if (x.n() == 0 || count == 0) return;
    pool.parallel_for(
        split.parts(),
        [&](int64_t part_begin, int64_t part_end, int) {
            const int64_t begin = split.part_tiles(part_begin).first, end = split.part_tiles(part_end - 1).second;
            split.for_rows(products, begin, end, [&](size_t k, int64_t row_begin, int64_t row_end) {
                fns[k](*products[k].w, x, products[k].y, row_begin, row_end);
            });
        },
        split.per_thread(), then);
}

struct SharedParts::State {
    State(const SharedProduct* p, size_t c, const ThreadPool& pool, int64_t part_bytes)
        : split(p, c, pool, part_bytes), count(c) {
        std::copy(p, p + c, products.begin());
    }
    SharedSplit split;
    std::array<SharedProduct, kMaxSharedProducts> products{};
    size_t count;
};

SharedParts::SharedParts(const SharedProduct* products, size_t count, const ThreadPool& pool, int64_t part_bytes)
    : s_(std::make_unique<State>(products, count, pool, part_bytes)) {}
SharedParts::~SharedParts() = default;
SharedParts::SharedParts(SharedParts&&) noexcept = default;
SharedParts& SharedParts::operator=(SharedParts&&) noexcept = default;

int64_t SharedParts::parts() const { return s_->count == 0 ? 0 : s_->split.parts(); }

ReadAhead SharedParts::read_ahead(int members) const {
    ReadAhead ahead;
    const State& s = *s_;
    const int64_t parts = s.split.parts();
    for (int m = 0; m < std::min(members, ReadAhead::kThreads); ++m) {
        const int64_t first = parts * m / members, last = parts * (m + 1) / members;
        if (first >= last) continue;
        const int64_t begin = s.split.part_tiles(first).first, end = s.split.part_tiles(last - 1).second;
        s.split.for_rows(s.products.data(), begin, end, [&](size_t k, int64_t row_begin, int64_t row_end) {
            const WeightView& w = *s.products[k].w;
            const uint8_t* data = static_cast<const uint8_t*>(w.data);
            ahead.add(m, data + row_offset(w, row_begin), row_offset(w, row_end) - row_offset(w, row_begin));
        });
    }
    return ahead;
}

void SharedParts::run(int64_t part, const QuantizedActivations& x) const {
    const State& s = *s_;
    if (x.n() == 0) return;
    const auto [begin, end] = s.split.part_tiles(part);
    s.split.for_rows(s.products.data(), begin, end, [&](size_t k, int64_t row_begin, int64_t row_end) {
        kernel_for(*s.products[k].w, x)(*s.products[k].w, x, s.products[k].y, row_begin, row_end);
    });
}

}  // namespace ggufsm
