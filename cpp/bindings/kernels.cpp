// ggufsm._core.kernels: the kernels one by one for the tests and the kernel
// benchmark (dequantize, matmul, the ops, attention), the kernel-set choice
// (which ISA runs, force_isa), thread pools and the measurements of
// bench/measure.h. Not used by the product path. Thin: checks shapes and
// buffer sizes, releases the GIL, calls into the core.
//
// Every function that runs on threads takes `threads`: a ThreadPool the
// caller keeps (benchmarks, so that no thread is created per call) or a
// thread count (a pool made for this call alone; 0: one per core). No pool
// outlives its owner.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "bench/int8_peak.h"
#include "bench/measure.h"
#include "bindings.h"
#include "errors.h"
#include "forward/forward.h"
#include "kernels/attention.h"
#include "kernels/kernel_set.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/repack.h"
#include "kernels/quant.h"
#include "runtime/cpu_features.h"
#include "runtime/thread_pool.h"

namespace py = pybind11;

namespace ggufsm::bind {

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Int32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

using Threads = std::variant<int, std::shared_ptr<ThreadPool>>;

ProbeRead parse_probe_read(const std::string& read) {
    if (read == "sum") return ProbeRead::Sum;
    if (read == "prefetch") return ProbeRead::Prefetch;
    throw Error(code::InvalidInput, "ReadBandwidthProbe: read is 'sum' or 'prefetch', not '" + read + "'");
}

// The caller's pool, or one made for this call.
std::shared_ptr<ThreadPool> pool_of(const Threads& threads) {
    if (const auto* pool = std::get_if<std::shared_ptr<ThreadPool>>(&threads)) return *pool;
    return std::make_shared<ThreadPool>(std::get<int>(threads));
}

struct Bytes {
    const void* data;
    size_t size;
};

Bytes bytes_of(const py::buffer& buffer, const char* what) {
    py::buffer_info info = buffer.request();
    if (info.ndim > 0) {
        ssize_t expected = info.itemsize;
        for (ssize_t k = info.ndim - 1; k >= 0; --k) {
            if (info.strides[k] != expected) throw Error(code::InvalidInput, std::string(what) + " must be C-contiguous");
            expected *= info.shape[k];
        }
    }
    return Bytes{info.ptr, static_cast<size_t>(info.size * info.itemsize)};
}

void need_bytes(const Bytes& b, size_t needed, const std::string& what) {
    if (b.size < needed) {
        throw Error(code::InvalidInput, what + ": buffer holds " + std::to_string(b.size) + " bytes, need " + std::to_string(needed));
    }
}

WeightView weight_view(uint32_t type, const py::buffer& weight, int64_t rows, int64_t cols) {
    const Bytes b = bytes_of(weight, "weight");
    WeightView w = make_weight_view(type, b.data, rows, cols);
    need_bytes(b, w.row_bytes * static_cast<size_t>(rows), std::string(type_name(type)) + " weight [" + std::to_string(rows) + ", " +
                                                               std::to_string(cols) + "]");
    return w;
}

// The weights in the Rows8 layout (kernels/repack.h), held in `storage`:
// what the model does at load, for the tests and the benchmark.
WeightView repacked_view(const WeightView& w, std::vector<uint8_t>& storage, ThreadPool& pool) {
    storage.resize(rows8_bytes(w));
    return repack_rows8(w, storage.data(), pool);
}

// x as [n, cols]: a 1-D x is one row.
int64_t rows_of(const FloatArray& x, int64_t cols, const char* what) {
    const int64_t last = x.ndim() == 0 ? 0 : x.shape(x.ndim() - 1);
    if (x.ndim() < 1 || x.ndim() > 2 || last != cols) {
        throw Error(code::InvalidInput, std::string(what) + " must be [cols] or [n, cols] with cols " + std::to_string(cols) +
                                            ", got last dimension " + std::to_string(last));
    }
    return x.ndim() == 1 ? 1 : x.shape(0);
}

py::array_t<float> dequantize(uint32_t type, const py::buffer& data, int64_t n) {
    if (!kernels_support(type)) throw Error(code::UnsupportedModel, std::string("type ") + type_name(type) + " is not supported");
    const TensorType t = static_cast<TensorType>(type);
    if (n < 0 || n % block_size(t) != 0) {
        throw Error(code::InvalidInput, "n " + std::to_string(n) + " is not a whole number of " + type_name(type) + " blocks of " +
                                            std::to_string(block_size(t)));
    }
    const Bytes b = bytes_of(data, "data");
    need_bytes(b, static_cast<size_t>(n / block_size(t)) * block_bytes(t), std::string("dequantize ") + type_name(type));
    py::array_t<float> out(n);
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        dequantize_row(t, b.data, dst, n);
    }
    return out;
}

// The active set's activation quantization of x [blocks * block] (kernel_set.h): (codes, scales, sums of 16).
py::tuple quantize_blocks_py(const FloatArray& x, int64_t block) {
    if (block <= 0 || block % 32 != 0 || x.ndim() != 1 || x.shape(0) % block != 0) {
        throw Error(code::InvalidInput, "quantize_blocks: block " + std::to_string(block) +
                                            " must be a positive multiple of 32 and x a 1-D whole number of blocks, got " +
                                            std::to_string(x.size()) + " elements");
    }
    const int64_t blocks = x.shape(0) / block;
    py::array_t<int8_t> codes(x.shape(0));
    py::array_t<float> scales(blocks);
    py::array_t<int16_t> sums(x.shape(0) / 16);
    const float* src = x.data();
    int8_t* q = codes.mutable_data();
    float* d = scales.mutable_data();
    int16_t* s = sums.mutable_data();
    {
        py::gil_scoped_release release;
        kernels::active().quantize_blocks(src, blocks, block, q, d, s);
    }
    return py::make_tuple(codes, scales, sums);
}

py::array_t<float> matmul_py(uint32_t type, const py::buffer& weight, int64_t rows, int64_t cols, const FloatArray& x, const Threads& threads,
                             bool repacked, bool rows8_order) {
    WeightView w = weight_view(type, weight, rows, cols);
    w.rows8_order = rows8_order;
    const int64_t n = rows_of(x, cols, "x");
    py::array_t<float> y = x.ndim() == 1 ? py::array_t<float>(rows) : py::array_t<float>({n, rows});
    const float* src = x.data();
    float* dst = y.mutable_data();
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    ThreadPool& pool = *owned;
    std::vector<uint8_t> storage;
    if (repacked) w = repacked_view(w, storage, pool);
    {
        py::gil_scoped_release release;
        matmul(w, src, n, dst, pool);
    }
    return y;
}

// s8-q8lanes: the product over weights already in the Rows8 layout, read in place (the PROT_NONE tests
// place them before a guard page), and row r of a matrix in either layout as floats (the embedding lookup).
// The buffer holds rows8_bytes: Q4_K's x8 blocks are longer than the file's (repack.h).
WeightView packed_view(uint32_t type, const py::buffer& packed, int64_t rows, int64_t cols) {
    const Bytes b = bytes_of(packed, "packed");
    const WeightView w = make_weight_view(type, b.data, rows, cols);
    if (!repackable(w)) {
        throw Error(code::InvalidInput, std::string("no Rows8 layout of ") + type_name(type) + " [" + std::to_string(rows) + ", " +
                                            std::to_string(cols) + "] is read in place");
    }
    need_bytes(b, rows8_bytes(w), std::string(type_name(type)) + " Rows8 weight [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    return rows8_view(w, const_cast<void*>(w.data));
}

py::array_t<float> matmul_packed_py(uint32_t type, const py::buffer& packed, int64_t rows, int64_t cols, const FloatArray& x,
                                    const Threads& threads) {
    const WeightView w = packed_view(type, packed, rows, cols);
    const int64_t n = rows_of(x, cols, "x");
    py::array_t<float> y({n, rows});
    const float* src = x.data();
    float* dst = y.mutable_data();
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    py::gil_scoped_release release;
    matmul(w, src, n, dst, *owned);
    return y;
}

py::array_t<float> weight_row_py(uint32_t type, const py::buffer& weight, int64_t rows, int64_t cols, int64_t r, bool packed) {
    const WeightView w = packed ? packed_view(type, weight, rows, cols) : weight_view(type, weight, rows, cols);
    if (r < 0 || r >= rows) throw Error(code::InvalidInput, "row " + std::to_string(r) + " is outside [0, " + std::to_string(rows) + ")");
    py::array_t<float> out(cols);
    dequantize_weight_row(w, r, out.mutable_data());
    return out;
}

using ProductSpec = std::tuple<uint32_t, py::buffer, int64_t, bool>;

// The read-ahead matmul.h's read_ahead_for gives products (ProductSpec tuples, not repacked): per thread,
// its ranges as (product index, byte offset in that weight, bytes).
std::vector<std::vector<std::tuple<size_t, int64_t, int64_t>>> read_ahead_ranges(const std::vector<ProductSpec>& products, int64_t cols,
                                                                                  const Threads& threads) {
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    std::vector<WeightView> views;
    for (const auto& [type, weight, rows, repacked] : products) views.push_back(weight_view(type, weight, rows, cols));
    std::vector<SharedProduct> shared;
    for (const WeightView& v : views) shared.push_back(SharedProduct{&v, nullptr});
    const ReadAhead ahead = read_ahead_for(shared.data(), shared.size(), *owned);
    std::vector<std::vector<std::tuple<size_t, int64_t, int64_t>>> out(size_t(std::min(owned->size(), ReadAhead::kThreads)));
    for (size_t t = 0; t < out.size(); ++t) {
        for (const ReadAheadRange& r : ahead.ranges[t]) {
            if (r.bytes == 0) continue;
            for (size_t k = 0; k < views.size(); ++k) {
                const uint8_t* base = static_cast<const uint8_t*>(views[k].data);
                const uint8_t* at = static_cast<const uint8_t*>(r.begin);
                if (at >= base && at < base + size_t(views[k].rows) * views[k].row_bytes) {
                    out[t].emplace_back(k, int64_t(at - base), int64_t(r.bytes));
                    break;
                }
            }
        }
    }
    return out;
}

// products: (ggml_type, weight, rows, repacked) tuples sharing x's format; y of each, as matmul_py gives it.
// then: products (not repacked) whose weights the pool reads ahead once its rows are done (read_ahead_for).
std::vector<py::array_t<float>> matmul_shared_py(const std::vector<ProductSpec>& products, int64_t cols,
                                                 const FloatArray& x, const Threads& threads, const std::vector<ProductSpec>& then) {
    const int64_t n = rows_of(x, cols, "x");
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    ThreadPool& pool = *owned;
    std::vector<WeightView> views;
    std::vector<std::vector<uint8_t>> storage(products.size());
    std::vector<py::array_t<float>> ys;
    for (size_t k = 0; k < products.size(); ++k) {
        const auto& [type, weight, rows, repacked] = products[k];
        views.push_back(weight_view(type, weight, rows, cols));
        if (repacked) views.back() = repacked_view(views.back(), storage[k], pool);
        ys.push_back(x.ndim() == 1 ? py::array_t<float>(rows) : py::array_t<float>({n, rows}));
    }
    std::vector<SharedProduct> shared;
    for (size_t k = 0; k < views.size(); ++k) shared.push_back(SharedProduct{&views[k], ys[k].mutable_data()});
    const TensorType first = views.empty() ? TensorType::F32 : views[0].type;
    std::vector<WeightView> next;
    for (const auto& [type, weight, rows, repacked] : then) next.push_back(weight_view(type, weight, rows, cols));
    std::vector<SharedProduct> next_shared;
    for (const WeightView& v : next) next_shared.push_back(SharedProduct{&v, nullptr});
    const ReadAhead ahead = read_ahead_for(next_shared.data(), next_shared.size(), pool);
    {
        py::gil_scoped_release release;
        QuantizedActivations q;
        q.quantize(x.data(), n, cols, first, pool);
        matmul_shared(shared.data(), shared.size(), q, pool, next.empty() ? nullptr : &ahead);
    }
    return ys;
}

py::array_t<float> copy_of(const FloatArray& x) {
    py::array_t<float> out(std::vector<ssize_t>(x.shape(), x.shape() + x.ndim()));
    std::memcpy(out.mutable_data(), x.data(), static_cast<size_t>(x.size()) * 4);
    return out;
}

py::array_t<float> rmsnorm_py(const FloatArray& x, const std::optional<FloatArray>& weight, float eps) {
    const int64_t dim = x.ndim() == 0 ? 0 : x.shape(x.ndim() - 1);
    const int64_t n = rows_of(x, dim, "x");
    if (weight && (weight->ndim() != 1 || weight->shape(0) != dim)) {
        throw Error(code::InvalidInput, "rmsnorm weight must be [" + std::to_string(dim) + "]");
    }
    py::array_t<float> out = copy_of(x);
    float* dst = out.mutable_data();
    const float* w = weight ? weight->data() : nullptr;
    py::gil_scoped_release release;
    rmsnorm(dst, w, dst, n, dim, eps);
    return out;
}

py::array_t<float> rope_py(const FloatArray& x, int64_t n_rot, const Int32Array& positions, float freq_base, bool neox) {
    if (x.ndim() != 3 || positions.ndim() != 1 || positions.shape(0) != x.shape(0)) {
        throw Error(code::InvalidInput, "rope: x must be [n_tok, n_head, head_dim] and positions [n_tok]");
    }
    py::array_t<float> out = copy_of(x);
    float* dst = out.mutable_data();
    const int32_t* pos = positions.data();
    const int64_t n_tok = x.shape(0), n_head = x.shape(1), hd = x.shape(2);
    py::gil_scoped_release release;
    rope(dst, n_tok, n_head, hd, n_rot, pos, freq_base, neox);
    return out;
}

template <void (*Op)(float*, int64_t)>
py::array_t<float> elementwise(const FloatArray& x) {
    py::array_t<float> out = copy_of(x);
    float* dst = out.mutable_data();
    const int64_t n = out.size();
    py::gil_scoped_release release;
    Op(dst, n);
    return out;
}

py::array_t<float> softmax_rows(const FloatArray& x) {
    py::array_t<float> out = copy_of(x);
    float* dst = out.mutable_data();
    const int64_t dim = x.ndim() == 0 ? 1 : x.shape(x.ndim() - 1);
    const int64_t n = dim == 0 ? 0 : out.size() / dim;
    py::gil_scoped_release release;
    for (int64_t r = 0; r < n; ++r) softmax(dst + r * dim, dim);
    return out;
}

template <void (*Op)(const float*, const float*, float*, int64_t)>
py::array_t<float> gated(const FloatArray& gate, const FloatArray& up) {
    if (gate.size() != up.size()) throw Error(code::InvalidInput, "gate and up must have the same size");
    py::array_t<float> out = copy_of(gate);
    float* dst = out.mutable_data();
    const float* u = up.data();
    const int64_t n = out.size();
    py::gil_scoped_release release;
    Op(dst, u, dst, n);
    return out;
}

// Caches come in as [n_head_kv, n_ctx, hd] float32 and are stored position by
// position into the kernel's layout (attention.h), as halves when half is true
// (rounded to nearest even), n_ctx padded to the key tile.
template <typename T>
void attention_over(const float* q, const float* k, const float* v, float* out, int64_t n_tok, int64_t start_pos, int64_t n_ctx,
                    int64_t n_head, int64_t n_head_kv, int64_t hd, float scale, int64_t sliding_window, ThreadPool& pool) {
    const int64_t padded = round_up_to_key_tile(n_ctx);
    std::vector<T> k_cache(kv_layer_elements(n_head_kv, padded, hd)), v_cache(k_cache.size());
    for (int64_t h = 0; h < n_head_kv; ++h) {
        for (int64_t p = 0; p < n_ctx; ++p) {
            const size_t at = size_t((h * n_ctx + p) * hd);
            store_kv(k + at, v + at, k_cache.data(), v_cache.data(), padded, hd, h, p);
        }
    }
    if (start_pos + n_tok > n_ctx) {
        throw Error(code::InvalidInput, "attention: positions [" + std::to_string(start_pos) + ", " + std::to_string(start_pos + n_tok) +
                                            ") do not fit the cache of n_ctx " + std::to_string(n_ctx));
    }
    attention(q, k_cache.data(), v_cache.data(), out, n_tok, start_pos, padded, n_head, n_head_kv, hd, scale, sliding_window, pool);
}

py::array_t<float> attention_py(const FloatArray& q, const FloatArray& k_cache, const FloatArray& v_cache, int64_t start_pos,
                                float scale, int64_t sliding_window, const Threads& threads, bool half) {
    if (q.ndim() != 3 || k_cache.ndim() != 3 || v_cache.ndim() != 3) {
        throw Error(code::InvalidInput, "attention: q must be [n_tok, n_head, hd], caches [n_head_kv, n_ctx, hd]");
    }
    const int64_t n_tok = q.shape(0), n_head = q.shape(1), hd = q.shape(2);
    const int64_t n_head_kv = k_cache.shape(0), n_ctx = k_cache.shape(1);
    for (const FloatArray* c : {&k_cache, &v_cache}) {
        if (c->shape(0) != n_head_kv || c->shape(1) != n_ctx || c->shape(2) != hd) {
            throw Error(code::InvalidInput, "attention: k_cache and v_cache must both be [n_head_kv, n_ctx, " + std::to_string(hd) + "]");
        }
    }
    py::array_t<float> out({n_tok, n_head, hd});
    float* dst = out.mutable_data();
    const float *qp = q.data(), *kp = k_cache.data(), *vp = v_cache.data();
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    ThreadPool& pool = *owned;
    py::gil_scoped_release release;
    if (half) {
        attention_over<uint16_t>(qp, kp, vp, dst, n_tok, start_pos, n_ctx, n_head, n_head_kv, hd, scale, sliding_window, pool);
    } else {
        attention_over<float>(qp, kp, vp, dst, n_tok, start_pos, n_ctx, n_head, n_head_kv, hd, scale, sliding_window, pool);
    }
    return out;
}

// Several sequences' decode tokens (attention_decode_batch): queries[i] = (q [n_head, hd], k_cache and
// v_cache [n_head_kv, n_ctx_i, hd], pos_i), each cache stored as attention_over stores it. Returns
// each token's [n_head, hd].
py::list attention_decode_batch_py(const std::vector<std::tuple<FloatArray, FloatArray, FloatArray, int64_t>>& queries,
                                   float scale, int64_t sliding_window, const Threads& threads, bool half) {
    if (queries.empty()) return py::list();
    const int64_t n_head = std::get<0>(queries[0]).ndim() == 2 ? std::get<0>(queries[0]).shape(0) : 0;
    const int64_t hd = n_head > 0 ? std::get<0>(queries[0]).shape(1) : 0;
    const int64_t n_head_kv = std::get<1>(queries[0]).ndim() == 3 ? std::get<1>(queries[0]).shape(0) : 0;
    std::vector<py::array_t<float>> outs;
    struct Caches {
        std::vector<float> kf, vf;
        std::vector<uint16_t> kh, vh;
    };
    std::vector<Caches> caches(queries.size());
    std::vector<DecodeQuery<float>> qf(queries.size());
    std::vector<DecodeQuery<uint16_t>> qh(queries.size());
    for (size_t i = 0; i < queries.size(); ++i) {
        const auto& [q, k, v, pos] = queries[i];
        if (q.ndim() != 2 || q.shape(0) != n_head || q.shape(1) != hd || k.ndim() != 3 || v.ndim() != 3 || k.shape(0) != n_head_kv ||
            k.shape(2) != hd || v.shape(0) != n_head_kv || v.shape(1) != k.shape(1) || v.shape(2) != hd) {
            throw Error(code::InvalidInput, "attention_decode_batch: query " + std::to_string(i) + " must be q [" + std::to_string(n_head) +
                                                ", " + std::to_string(hd) + "] with caches [" + std::to_string(n_head_kv) + ", n_ctx, " +
                                                std::to_string(hd) + "]");
        }
        const int64_t n_ctx = k.shape(1), padded = round_up_to_key_tile(n_ctx);
        Caches& c = caches[i];
        const size_t elements = kv_layer_elements(n_head_kv, padded, hd);
        if (half) {
            c.kh.resize(elements);
            c.vh.resize(elements);
        } else {
            c.kf.resize(elements);
            c.vf.resize(elements);
        }
        for (int64_t h = 0; h < n_head_kv; ++h) {
            for (int64_t p = 0; p < n_ctx; ++p) {
                const size_t at = size_t((h * n_ctx + p) * hd);
                if (half) {
                    store_kv(k.data() + at, v.data() + at, c.kh.data(), c.vh.data(), padded, hd, h, p);
                } else {
                    store_kv(k.data() + at, v.data() + at, c.kf.data(), c.vf.data(), padded, hd, h, p);
                }
            }
        }
        outs.emplace_back(std::vector<py::ssize_t>{n_head, hd});
        float* out = outs.back().mutable_data();
        if (pos >= n_ctx) {  // inside the padding the kernel would accept it: refused as attention_over refuses it
            throw Error(code::InvalidInput, "attention: positions [" + std::to_string(pos) + ", " + std::to_string(pos + 1) +
                                                ") do not fit the cache of n_ctx " + std::to_string(n_ctx));
        }
        qf[i] = DecodeQuery<float>{q.data(), c.kf.data(), c.vf.data(), out, padded, pos};
        qh[i] = DecodeQuery<uint16_t>{q.data(), c.kh.data(), c.vh.data(), out, padded, pos};
    }
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    {
        py::gil_scoped_release release;
        if (half) {
            attention_decode_batch(qh.data(), int64_t(qh.size()), n_head, n_head_kv, hd, scale, sliding_window, *owned);
        } else {
            attention_decode_batch(qf.data(), int64_t(qf.size()), n_head, n_head_kv, hd, scale, sliding_window, *owned);
        }
    }
    py::list result;
    for (auto& o : outs) result.append(o);
    return result;
}

py::array_t<uint16_t> to_half_py(const FloatArray& x) {
    py::array_t<uint16_t> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    const kernels::ToHalfFn to_half = kernels::active().to_half;
    const float* src = x.data();
    uint16_t* dst = out.mutable_data();
    const int64_t n = x.size();
    py::gil_scoped_release release;
    to_half(src, dst, n);
    return out;
}

double matvec_seconds_py(uint32_t type, const std::vector<py::buffer>& weights, int64_t rows, int64_t cols, const FloatArray& x,
                         int repeats, const Threads& threads, bool repacked, bool rows8_order) {
    std::vector<WeightView> views;
    for (const py::buffer& w : weights) views.push_back(weight_view(type, w, rows, cols));
    for (WeightView& v : views) v.rows8_order = rows8_order;
    const int64_t n = rows_of(x, cols, "x");
    const float* src = x.data();
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    ThreadPool& pool = *owned;
    std::vector<std::vector<uint8_t>> storage(views.size());
    if (repacked) {
        for (size_t k = 0; k < views.size(); ++k) views[k] = repacked_view(views[k], storage[k], pool);
    }
    py::gil_scoped_release release;
    return matvec_seconds(views, src, n, repeats, pool);
}

double matmul_seconds_py(uint32_t type, const py::buffer& weight, int64_t rows, int64_t cols, const FloatArray& x, int repeats,
                         const Threads& threads, bool repacked, bool rows8_order) {
    WeightView w = weight_view(type, weight, rows, cols);
    w.rows8_order = rows8_order;
    const int64_t n = rows_of(x, cols, "x");
    const float* src = x.data();
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    std::vector<uint8_t> storage;
    if (repacked) w = repacked_view(w, storage, *owned);
    py::gil_scoped_release release;
    return matmul_seconds(w, src, n, repeats, *owned);
}

// For the pool's tests: runs one parallel_for per entry of `sizes`, back to
// back (pausing `pause_us` between jobs, so idle workers fall asleep; with
// `caller_waits_for_a_worker`, a chunk on the caller does not end until a worker
// has started one of the same job: no clock, so a busy machine only makes it
// slower), and returns how many times each item of each
// job ran, jobs concatenated, and per item the index of the thread that last
// ran it. An item equal to `fail_at` throws InvalidInput from inside its chunk.
// With `worker_waits_for_caller_to_block`,
// a chunk on a worker does not end until the caller has blocked waiting for it
// (ThreadPool::blocked_waits), so the job ends only if the blocked caller is woken.
std::pair<py::array_t<int32_t>, py::array_t<int32_t>> parallel_for_items(const std::vector<int64_t>& sizes, const Threads& threads,
                                                                           int pause_us, bool caller_waits_for_a_worker, int64_t fail_at,
                                                                           int chunks_per_thread,
                                                                           bool worker_waits_for_caller_to_block) {
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    ThreadPool& pool = *owned;
    int64_t total = 0;
    for (int64_t n : sizes) total += std::max<int64_t>(n, 0);
    py::array_t<int32_t> counts(total), ran_by(total);
    int32_t* count_out = counts.mutable_data();
    int32_t* thread_out = ran_by.mutable_data();
    py::gil_scoped_release release;
    for (int64_t n : sizes) {
        std::vector<std::atomic<int32_t>> runs(static_cast<size_t>(std::max<int64_t>(n, 0)));
        std::vector<std::atomic<int32_t>> ran_on(runs.size());
        std::atomic<bool> a_worker_started{false};
        const int64_t blocked_before = pool.blocked_waits();
        pool.parallel_for(n, [&](int64_t begin, int64_t end, int thread_index) {
            if (thread_index != 0) {
                a_worker_started.store(true);
                if (worker_waits_for_caller_to_block)
                    while (pool.blocked_waits() == blocked_before) std::this_thread::yield();
            } else if (caller_waits_for_a_worker) {
                while (!a_worker_started.load()) std::this_thread::yield();
            }
            for (int64_t i = begin; i < end; ++i) {
                if (i == fail_at) throw Error(code::InvalidInput, "item " + std::to_string(i) + " failed on purpose");
                runs[i].fetch_add(1);
                ran_on[i].store(thread_index);
            }
        }, chunks_per_thread);
        for (size_t i = 0; i < runs.size(); ++i) {
            *count_out++ = runs[i].load();
            *thread_out++ = ran_on[i].load();
        }
        if (pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
    }
    return {counts, ran_by};
}

// ThreadPool::run_team over a chain of phases (Team::phase of phases[i] parts each): each part's run
// count, phase after phase, and how many parts ran before the phase before theirs was done.
// fail_member throws a named error when it comes to phase fail_at (before it); pause_member sleeps
// pause_us in each of its parts (a descheduled thread); nested: each part runs a parallel_for of 4
// items inside the team (which must run them on the member) and counts them.
std::pair<py::array_t<int32_t>, int64_t> team_phases(const std::vector<int64_t>& phases, const Threads& threads, int fail_member,
                                                     int64_t fail_at, bool nested, int pause_member, int pause_us) {
    const std::shared_ptr<ThreadPool> owned = pool_of(threads);
    ThreadPool& pool = *owned;
    int64_t total = 0;
    for (int64_t n : phases) total += std::max<int64_t>(n, 0);
    std::vector<std::atomic<int32_t>> runs(static_cast<size_t>(total));
    std::vector<std::atomic<int64_t>> done(phases.size());
    std::atomic<int64_t> early{0};
    {
        py::gil_scoped_release release;
        pool.run_team([&](Team& team, int member) {
            int64_t at = 0;
            for (size_t c = 0; c < phases.size(); ++c) {
                if (member == fail_member && int64_t(c) == fail_at) {
                    throw Error(code::InvalidInput, "member " + std::to_string(member) + " failed on purpose at phase " + std::to_string(c));
                }
                team.phase(member, phases[c], [&](int64_t part) {
                    if (c > 0 && done[c - 1].load() != std::max<int64_t>(phases[c - 1], 0)) early.fetch_add(1);
                    if (member == pause_member && pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
                    if (nested) {
                        std::atomic<int32_t> items{0};
                        pool.parallel_for(4, [&](int64_t b, int64_t e, int) { items.fetch_add(int32_t(e - b)); });
                        runs[size_t(at + part)].fetch_add(items.load() == 4 ? 1 : 100);
                    } else {
                        runs[size_t(at + part)].fetch_add(1);
                    }
                    done[c].fetch_add(1);
                });
                at += std::max<int64_t>(phases[c], 0);
            }
        });
    }
    py::array_t<int32_t> counts(total);
    for (int64_t i = 0; i < total; ++i) counts.mutable_data()[i] = runs[size_t(i)].load();
    return {counts, early.load()};
}

// Entry -> the variant whose kernel fills it in the active set: the set's own
// ISA, or "scalar" where the set keeps the scalar kernel.
py::dict active_set() {
    const kernels::KernelSet& set = kernels::active();
    const kernels::KernelSet& scalar = kernels::scalar_set();
    auto owner = [&](bool same_as_scalar) { return same_as_scalar ? "scalar" : isa_name(set.isa); };
    py::dict entries;
    for (uint32_t id = 0; id < uint32_t(kernels::kTypeSlots); ++id) {
        if (set.matmul_rows[id]) entries[py::str(std::string("matmul ") + type_name(id))] = owner(set.matmul_rows[id] == scalar.matmul_rows[id]);
    }
    entries["attend f32"] = owner(set.attend_f32 == scalar.attend_f32);
    entries["attend f16"] = owner(set.attend_f16 == scalar.attend_f16);
    entries["round_to_half"] = owner(set.round_to_half == scalar.round_to_half);
    entries["to_half"] = owner(set.to_half == scalar.to_half);
    entries["quantize_blocks"] = owner(set.quantize_blocks == scalar.quantize_blocks);
    entries["silu"] = owner(set.silu == scalar.silu);
    entries["gelu"] = owner(set.gelu == scalar.gelu);
    return entries;
}

}  // namespace

void kernels(py::module_& m) {
    py::class_<ThreadPool, std::shared_ptr<ThreadPool>>(m, "ThreadPool", "persistent worker threads, for a caller that makes many calls")
        .def(py::init<int>(), py::arg("n_threads") = 0, "n_threads = 0: one per core")
        .def_property_readonly("size", &ThreadPool::size, "threads that run chunks, the calling one included");

    // ---- type table and the kernels
    m.def("kernels_support", &kernels_support, py::arg("ggml_type"), "True if the kernels handle this ggml type id");
    m.def("type_name", &type_name, py::arg("ggml_type"));
    m.def("block_size", [](uint32_t t) { return block_size(static_cast<TensorType>(t)); }, py::arg("ggml_type"));
    m.def("block_bytes", [](uint32_t t) { return block_bytes(static_cast<TensorType>(t)); }, py::arg("ggml_type"));
    m.def("row_bytes", [](uint32_t t, int64_t cols) { return row_bytes(static_cast<TensorType>(t), cols); }, py::arg("ggml_type"),
          py::arg("cols"));
    m.def("dequantize", &dequantize, py::arg("ggml_type"), py::arg("data"), py::arg("n"),
          "The first n elements encoded in data, as float32 (exact)");
    m.def("matmul", &matmul_py, py::arg("ggml_type"), py::arg("weight"), py::arg("rows"), py::arg("cols"), py::arg("x"),
          py::arg("threads") = 0, py::arg("repacked") = false, py::arg("rows8_order") = false,
          "y[n, rows] = x[n, cols] . W^T (the numeric contract is in matmul.h); repacked: through the Rows8 layout the model loads "
          "(kernels/repack.h); rows8_order: the file's layout summed in the Rows8 kernels' float order (matmul.h, WeightView)");
    m.def("matmul_packed", &matmul_packed_py, py::arg("ggml_type"), py::arg("packed"), py::arg("rows"), py::arg("cols"), py::arg("x"),
          py::arg("threads") = 0, "y[n, rows] = x[n, cols] . W^T over weights already in the Rows8 layout (kernels.repack's bytes), read in place");
    m.def("weight_row", &weight_row_py, py::arg("ggml_type"), py::arg("weight"), py::arg("rows"), py::arg("cols"), py::arg("row"),
          py::arg("packed") = false, "row `row` of the matrix as float32 (the embedding lookup); packed: the weight is in the Rows8 layout");
    m.def("quantize_blocks", &quantize_blocks_py, py::arg("x"), py::arg("block"),
          "the active set's activation quantization of x [blocks * block] -> (codes int8, scales f32, sums of each 16 codes int16)");
    m.def("matmul_shared", &matmul_shared_py, py::arg("products"), py::arg("cols"), py::arg("x"), py::arg("threads") = 0,
          py::arg("then") = std::vector<ProductSpec>{},
          "[x . W_k^T for each (ggml_type, weight, rows, repacked) in products], in one pool dispatch over all their rows "
          "(matmul.h, matmul_shared); x is quantized for the first product's type; the pool then reads ahead the weights "
          "of the products `then` (same tuples, not repacked, same cols) as read_ahead_for splits them");
    m.def("read_ahead_ranges", &read_ahead_ranges, py::arg("products"), py::arg("cols"), py::arg("threads") = 0,
          "matmul.h's read_ahead_for(products): per thread, its ranges as (product index, byte offset, bytes)");
    m.def("repackable", [](uint32_t t, int64_t rows) { return kernels_support(t) && repacked_at_load(static_cast<TensorType>(t)) &&
                                                              rows > 0 && rows % kRows8 == 0; },
          py::arg("ggml_type"), py::arg("rows"), "True when a [rows, cols] matrix of this type is repacked at load (kernels/repack.h)");
    m.def("repack", [](uint32_t type, const py::buffer& weight, int64_t rows, int64_t cols, const Threads& threads) {
        const WeightView w = weight_view(type, weight, rows, cols);
        if (!repackable(w)) repack_rows8(w, nullptr, *pool_of(threads));  // raises the named error
        py::array_t<uint8_t> out(static_cast<ssize_t>(rows8_bytes(w)));
        const std::shared_ptr<ThreadPool> owned = pool_of(threads);
        repack_rows8(w, out.mutable_data(), *owned);
        return out;
    }, py::arg("ggml_type"), py::arg("weight"), py::arg("rows"), py::arg("cols"), py::arg("threads") = 1,
          "the weights' bytes in the Rows8 layout (kernels/repack.h)");
    m.def("rmsnorm", &rmsnorm_py, py::arg("x"), py::arg("weight") = py::none(), py::arg("eps") = 1e-5f);
    m.def("rope", &rope_py, py::arg("x"), py::arg("n_rot"), py::arg("positions"), py::arg("freq_base"), py::arg("neox"));
    m.def("softmax", &softmax_rows, py::arg("x"), "softmax over the last axis");
    m.def("silu", &elementwise<silu>, py::arg("x"));
    m.def("gelu", &elementwise<gelu>, py::arg("x"));
    m.def("swiglu", &gated<swiglu>, py::arg("gate"), py::arg("up"));
    m.def("geglu", &gated<geglu>, py::arg("gate"), py::arg("up"));
    m.def("attention", &attention_py, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("start_pos"),
          py::arg("scale"), py::arg("sliding_window") = 0, py::arg("threads") = 0, py::arg("half") = false);
    m.def("attention_decode_batch", &attention_decode_batch_py, py::arg("queries"), py::arg("scale"), py::arg("sliding_window") = 0,
          py::arg("threads") = 0, py::arg("half") = false,
          "queries: [(q [n_head, hd], k_cache [n_head_kv, n_ctx, hd], v_cache, pos)]: each token attended in one dispatch "
          "(attention.h's attention_decode_batch); returns each token's [n_head, hd]");
    m.def("to_half", &to_half_py, py::arg("x"), "the half bits nearest each float (the active set's to_half, as the KV store writes)");

    // ---- the kernel set (kernels/kernel_set.h)
    m.def("supported_isas", [] {
        std::vector<std::string> names;
        for (Isa isa : supported_isas()) names.emplace_back(isa_name(isa));
        return names;
    }, "kernel variants this CPU runs, scalar first");
    m.def("active_isa", [] { return std::string(isa_name(kernels::active().isa)); },
          "the variant whose kernel set runs (chosen once: the best the CPU runs, or GGUFSM_ISA)");
    m.def("set_step_shape", [](bool read_ahead, bool inline_attention, bool layer_walk, int64_t walk_part_bytes,
                               int small_op_read_ahead, bool rope_once, int64_t worker_spin_us) {
        // Checked before any is set: a refused shape leaves the step as it was.
        for (const auto& [name, value] : {std::pair<const char*, int64_t>{"walk_part_bytes", walk_part_bytes},
                                          {"small_op_read_ahead", small_op_read_ahead}, {"worker_spin_us", worker_spin_us}}) {
            if (value < 0) throw Error(code::InvalidInput, std::string("set_step_shape: ") + name + " is " + std::to_string(value) + ", must be >= 0");
        }
        set_read_ahead_enabled(read_ahead);
        set_worker_spin(std::chrono::microseconds(worker_spin_us));
        set_rope_once(rope_once);
        set_small_op_read_ahead(small_op_read_ahead);
        set_inline_decode_attention(inline_attention);
        set_layer_walk(layer_walk);
        set_walk_part_bytes(walk_part_bytes);
    }, py::arg("read_ahead") = true, py::arg("inline_attention") = true, py::arg("layer_walk") = true,
          py::arg("walk_part_bytes") = 0, py::arg("small_op_read_ahead") = 0, py::arg("rope_once") = true,
          py::arg("worker_spin_us") = kDefaultWorkerSpinUs,
          "For the benches' A/B within one process: the pool's read-ahead between products (thread_pool.h), one decode "
          "token's attention on the calling thread below 256 positions (attention.h), and one session's decode step "
          "walked by the pool's threads as a team rather than a dispatch per product (forward/pass.cpp), and the walk's "
          "products cut into parts of about walk_part_bytes (0: the dispatched step's cut), and the lines of its next share "
          "a walk's member 0 asks for before each small op (small_op_read_ahead), and a pass's RoPE rotations computed "
          "once for all its layers (rope_once), and how long an idle pool worker spins for the next job before it sleeps "
          "(worker_spin_us); none changes a bit");
    m.def("force_isa", [](const std::string& name) { kernels::force(parse_isa(name)); }, py::arg("isa"),
          "swap in the whole kernel set of `isa`");
    m.def("active_set", &active_set, "entry of the active kernel set -> the variant whose kernel it is");

    // ---- thread pool and measurements (bench/measure.h)
    m.def("stream_sum", [](py::array_t<uint8_t, py::array::c_style> data, bool non_temporal) {
        const uint8_t* p = data.data();
        const size_t bytes = size_t(data.size());
        py::gil_scoped_release release;
        return stream_sum(p, bytes, non_temporal);
    }, py::arg("data"), py::arg("non_temporal"),
          "one thread's streaming sum of a uint8 buffer, each line prefetched 4 KiB ahead with the NTA hint or T0 "
          "(bench/measure.h): whether a non-temporal weight stream leaves the cache's other lines in place");
    m.def("read_bandwidth_gbs", [](size_t bytes, int repeats, const Threads& threads) {
        const std::shared_ptr<ThreadPool> pool = pool_of(threads);
        py::gil_scoped_release release;
        return read_bandwidth_gbs(bytes, repeats, *pool);
    }, py::arg("bytes"), py::arg("repeats") = 5, py::arg("threads") = 0);
    py::class_<ReadBandwidthProbe>(m, "ReadBandwidthProbe",
                                   "a buffer whose streaming sum measures the read bandwidth, on demand (bench/measure.h)")
        .def(py::init([](size_t bytes, const Threads& threads, bool huge_pages) {
            const std::shared_ptr<ThreadPool> pool = pool_of(threads);
            py::gil_scoped_release release;
            return std::make_unique<ReadBandwidthProbe>(bytes, *pool, huge_pages);
        }), py::arg("bytes"), py::arg("threads") = 0, py::arg("huge_pages") = true,
            "`threads` first touch the pages (so they land near the readers); huge_pages: advise MADV_HUGEPAGE, "
            "else MADV_NOHUGEPAGE")
        .def("pass_gbs", [](const ReadBandwidthProbe& probe, const std::string& read, const Threads& threads) {
            const ProbeRead how = parse_probe_read(read);
            const std::shared_ptr<ThreadPool> pool = pool_of(threads);
            py::gil_scoped_release release;
            return probe.pass_gbs(how, *pool);
        }, py::arg("read"), py::arg("threads") = 0, "GB/s of one pass: 'sum' (hardware prefetch only) or 'prefetch' "
            "(software prefetch 4 KiB ahead, as the m=1 kernels)")
        .def("short_streams", [](const ReadBandwidthProbe& probe, int threads, size_t bytes, const std::string& read, int rounds,
                                 size_t lead_bytes, int64_t lead_ns, const std::string& lead) {
            const ProbeRead how = parse_probe_read(read);
            using Lead = ReadBandwidthProbe::Lead;
            if (lead != "l1" && lead != "l2" && lead != "load") {
                throw Error(code::InvalidInput, "short_streams: lead is 'l1', 'l2' or 'load', not '" + lead + "'");
            }
            const Lead asked = lead == "l1" ? Lead::PrefetchL1 : lead == "l2" ? Lead::PrefetchL2 : Lead::Load;
            ReadBandwidthProbe::ShortStreams run;
            {
                py::gil_scoped_release release;
                run = probe.short_streams(threads, bytes, how, rounds, lead_bytes, lead_ns, asked);
            }
            return std::make_pair(run.wall_s, run.thread_s);
        }, py::arg("threads"), py::arg("bytes"), py::arg("read"), py::arg("rounds"), py::arg("lead_bytes") = 0,
            py::arg("lead_ns") = 0, py::arg("lead") = "l1",
            "(per round: wall seconds, per round and thread: seconds) of `threads` threads each reading `bytes` of cold "
            "data right after a barrier (bench/measure.h, short_streams)")
        .def("sample_gbs", [](const ReadBandwidthProbe& probe, const Threads& threads) {
            const std::shared_ptr<ThreadPool> pool = pool_of(threads);
            py::gil_scoped_release release;
            return probe.sample_gbs(*pool);
        }, py::arg("threads") = 0, "one sample of the limit: one pass each way, the fastest")
        .def("best_gbs", [](const ReadBandwidthProbe& probe, int repeats, const Threads& threads) {
            const std::shared_ptr<ThreadPool> pool = pool_of(threads);
            py::gil_scoped_release release;
            return probe.best_gbs(repeats, *pool);
        }, py::arg("repeats") = 1, py::arg("threads") = 0, "best of `repeats` samples")
        .def_property_readonly("huge_pages", &ReadBandwidthProbe::huge_pages)
        .def_property_readonly("huge_page_bytes", &ReadBandwidthProbe::huge_page_bytes,
                               "bytes of the buffer backed by 2 MiB pages now (AnonHugePages)");
    m.def("parallel_for_overhead_seconds", [](int64_t n, int calls, int repeats, const Threads& threads) {
        const std::shared_ptr<ThreadPool> pool = pool_of(threads);
        py::gil_scoped_release release;
        return parallel_for_overhead_seconds(n, calls, repeats, *pool);
    }, py::arg("n"), py::arg("calls") = 1000, py::arg("repeats") = 5, py::arg("threads") = 0);
    m.def("parallel_for_items", &parallel_for_items, py::arg("sizes"), py::arg("threads"), py::arg("pause_us") = 0,
          py::arg("caller_waits_for_a_worker") = false, py::arg("fail_at") = -1,
          py::arg("chunks_per_thread") = int(ThreadPool::kDefaultChunksPerThread), 
          py::arg("worker_waits_for_caller_to_block") = false);
    m.def("team_phases", &team_phases, py::arg("phases"), py::arg("threads"), py::arg("fail_member") = -1, py::arg("fail_at") = -1,
          py::arg("nested") = false, py::arg("pause_member") = -1, py::arg("pause_us") = 0,
          "ThreadPool::run_team over a chain of phases (Team::phase of each count): (each part's run count, parts run "
          "before the phase before theirs was done)");
    m.def("matvec_seconds", &matvec_seconds_py, py::arg("ggml_type"), py::arg("weights"), py::arg("rows"), py::arg("cols"),
          py::arg("x"), py::arg("repeats") = 5, py::arg("threads") = 0, py::arg("repacked") = false, py::arg("rows8_order") = false);
    m.def("matmul_seconds", &matmul_seconds_py, py::arg("ggml_type"), py::arg("weight"), py::arg("rows"), py::arg("cols"),
          py::arg("x"), py::arg("repeats") = 5, py::arg("threads") = 0, py::arg("repacked") = false, py::arg("rows8_order") = false,
          "best-of-repeats seconds of y[n, rows] = x[n, cols] . W^T (a prefill's product; x quantized outside the timing)");

    // ---- the int8 compute peak (bench/int8_peak.h)
    m.def("int8_peak_isas", &int8_peak_isas, "the int8 dot-product loops this CPU runs: avx2, avx_vnni, avx512_vnni");
    m.def("int8_peak", [](const std::string& isa, int64_t iterations, int repeats, const Threads& threads) {
        const std::shared_ptr<ThreadPool> pool = pool_of(threads);
        py::gil_scoped_release release;
        const Int8PeakRun run = int8_peak(isa, iterations, repeats, *pool);
        return std::make_pair(run.gops, run.checksum);
    }, py::arg("isa"), py::arg("iterations") = int64_t(1) << 22, py::arg("repeats") = 3, py::arg("threads") = 0,
          "(best GOP/s, checksum) of the isa's register-only int8 dot-product loop on every thread at once");
    m.def("int8_peak_expected_checksum", &int8_peak_expected_checksum, py::arg("isa"), py::arg("iterations"), py::arg("threads"));
    m.def("int8_peak_macs_per_step", &int8_peak_macs_per_step, py::arg("isa"));
}

}  // namespace ggufsm::bind
