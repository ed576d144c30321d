// LlamaModel: the forward's hyperparameters and weights, taken from a
// validated model by its architecture's declaration (gguf/architectures.cpp).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "errors.h"
#include "forward/forward.h"
#include "gguf/finite_scan.h"
#include "kernels/repack.h"
#include "runtime/huge_pages.h"

namespace ggufsm {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

std::string tensor_where(const gguf::TensorInfo& info) {
    return "tensor '" + std::string(info.name) + "' (info at offset " + std::to_string(info.info_offset) + ")";
}

// What the forward needs beyond what the validation checked.
void check_hparams(const LlamaHparams& hp) {
    auto positive = [](int64_t v, const char* name) {
        if (v <= 0) throw Error(code::InvalidModel, std::string(name) + " is " + str(v) + ", must be positive");
    };
    positive(hp.n_vocab, "n_vocab");
    positive(hp.n_embd, "embedding_length");
    positive(hp.n_layer, "block_count");
    positive(hp.n_head, "attention.head_count");
    positive(hp.n_head_kv, "attention.head_count_kv");
    positive(hp.head_dim, "attention.key_length");
    positive(hp.n_ff, "feed_forward_length");
    if (hp.n_head % hp.n_head_kv != 0) {
        throw Error(code::InvalidModel, "attention.head_count " + str(hp.n_head) + " is not a multiple of head_count_kv " + str(hp.n_head_kv));
    }
    if (hp.n_rot <= 0 || hp.n_rot % 2 || hp.n_rot > hp.head_dim) {
        throw Error(code::InvalidModel, "rope.dimension_count " + str(hp.n_rot) + " must be even and in (0, head_dim " + str(hp.head_dim) + "]");
    }
    if (!(hp.rms_eps > 0) || !(hp.rope_freq_base > 0) || !(hp.rope_freq_base_local > 0)) {
        throw Error(code::InvalidModel, "layer_norm_rms_epsilon and rope.freq_base must be positive as float32");
    }
}

// The validation has resolved and checked these (equal key and value widths included).
LlamaHparams forward_hparams(const gguf::HyperParameters& h) {
    LlamaHparams hp;
    hp.n_vocab = int64_t(h.n_vocab);
    hp.n_embd = int64_t(h.n_embd);
    hp.n_layer = int64_t(h.n_layer);
    hp.n_head = int64_t(h.n_head);
    hp.n_head_kv = int64_t(h.n_head_kv);
    hp.head_dim = int64_t(h.head_dim_k);
    hp.n_ff = int64_t(h.n_ff);
    hp.n_rot = int64_t(h.n_rot);
    hp.rms_eps = float(h.rms_eps);
    hp.rope_freq_base = float(h.rope_freq_base);
    hp.rope_freq_base_local = float(h.rope_freq_base_local);
    hp.rope_neox = h.rope_style == gguf::RopeStyle::Neox;
    hp.attn_scale = float(h.attn_scale);
    hp.embd_scale = float(h.embd_scale);
    hp.sliding_window = int64_t(h.sliding_window);
    hp.swa_period = int64_t(h.swa_period);
    hp.ffn = h.ffn;
    hp.final_logit_softcap = float(h.final_logit_softcap);
    check_hparams(hp);
    return hp;
}

const float* norm_vector(const gguf::File& file, const gguf::TensorInfo& info) {
    if (info.type != uint32_t(TensorType::F32)) {
        throw Error(code::UnsupportedModel, tensor_where(info) + " has type " + type_name(info.type) + "; norms must be F32");
    }
    return reinterpret_cast<const float*>(file.data() + info.offset);
}

// A matrix [ne[1] rows, ne[0] cols] in place.
WeightView matrix(const gguf::File& file, const gguf::TensorInfo& info) {
    try {
        return make_weight_view(info.type, file.data() + info.offset, int64_t(info.ne[1]), int64_t(info.ne[0]));
    } catch (const Error& e) {
        throw Error(e.code(), tensor_where(info) + ": " + e.what());
    }
}

// Puts tensor `info` where its role says, in the model-wide weights or in `layer`.
void place(const gguf::File& file, const gguf::TensorInfo& info, gguf::TensorRole role, LlamaWeights& w, LlamaLayer& layer) {
    using R = gguf::TensorRole;
    switch (role) {
        case R::TokenEmbd: w.token_embd = matrix(file, info); break;
        case R::OutputNorm: w.output_norm = norm_vector(file, info); break;
        case R::Output: w.output = matrix(file, info); break;
        case R::AttnNorm: layer.attn_norm = norm_vector(file, info); break;
        case R::AttnQ: layer.wq = matrix(file, info); break;
        case R::AttnK: layer.wk = matrix(file, info); break;
        case R::AttnV: layer.wv = matrix(file, info); break;
        case R::AttnQNorm: layer.q_norm = norm_vector(file, info); break;
        case R::AttnKNorm: layer.k_norm = norm_vector(file, info); break;
        case R::AttnOutput: layer.wo = matrix(file, info); break;
        case R::PostAttnNorm: layer.post_attn_norm = norm_vector(file, info); break;
        case R::FfnNorm: layer.ffn_norm = norm_vector(file, info); break;
        case R::FfnGate: layer.w_gate = matrix(file, info); break;
        case R::FfnUp: layer.w_up = matrix(file, info); break;
        case R::FfnDown: layer.w_down = matrix(file, info); break;
        case R::PostFfnNorm: layer.post_ffn_norm = norm_vector(file, info); break;
    }
}

}  // namespace

LlamaWeights llama_weights(const gguf::Model& model, const LlamaHparams& hp) {
    const gguf::File& file = *model.file;
    LlamaWeights w;
    w.layers.resize(size_t(hp.n_layer));
    LlamaLayer unused_layer;
    for (const gguf::TensorRule& rule : model.architecture->tensors) {
        for (int64_t i = 0; i < (rule.per_layer ? hp.n_layer : 1); ++i) {
            const std::string name = rule.per_layer ? "blk." + str(i) + "." + rule.name : rule.name;
            const gguf::TensorInfo* info = file.find_tensor(name);
            if (info == nullptr) {
                if (rule.optional) continue;
                throw Error(code::InvalidModel, "tensor '" + name + "' is missing from the model");
            }
            place(file, *info, rule.role, w, rule.per_layer ? w.layers[size_t(i)] : unused_layer);
        }
    }
    if (!w.output.data) w.output = w.token_embd;  // tied: the file has no output.weight
    return w;
}

void check_token_ids(const int64_t* tokens, int64_t n, int64_t n_vocab) {
    for (int64_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            throw Error(code::InvalidInput, "token id " + str(tokens[i]) + " at index " + str(i) + " is outside the vocabulary [0, " +
                                                str(n_vocab) + ")");
        }
    }
}

namespace {

constexpr size_t kHugePage = kHugePageBytes;

// Every pointer of `w` that lies in [from, from + n) moved to the same offset in `to`.
void rebase(LlamaWeights& w, const uint8_t* from, size_t n, uint8_t* to) {
    auto move = [&](const auto*& p) {
        const uint8_t* b = reinterpret_cast<const uint8_t*>(p);
        if (b >= from && b < from + n) p = reinterpret_cast<std::remove_reference_t<decltype(p)>>(to + (b - from));
    };
    auto move_view = [&](WeightView& v) { move(v.data); };
    move_view(w.token_embd);
    move_view(w.output);
    move(w.output_norm);
    for (LlamaLayer& l : w.layers) {
        for (WeightView* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) move_view(*v);
        for (const float** f : {&l.attn_norm, &l.q_norm, &l.k_norm, &l.post_attn_norm, &l.ffn_norm, &l.post_ffn_norm}) move(*f);
    }
}

// The jobs (and the views they replace) sorted by where their source lies: the layers come in the
// file's order (blk.0, blk.1, blk.10, ..., blk.19, blk.2, ...), not in the layers' order, and a cold
// file arrives in its own order. Each job keeps its destination, so the repacked mapping keeps the
// layers' order the decode walks.
void in_file_order(std::vector<Rows8Job>& jobs, std::vector<WeightView*>& targets) {
    std::vector<size_t> order(jobs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return std::less<const void*>()(jobs[a].w.data, jobs[b].w.data);
    });
    std::vector<Rows8Job> sorted_jobs;
    std::vector<WeightView*> sorted_targets;
    for (size_t i : order) {
        sorted_jobs.push_back(jobs[i]);
        sorted_targets.push_back(targets[i]);
    }
    jobs = std::move(sorted_jobs);
    targets = std::move(sorted_targets);
}

}  // namespace

LlamaModel::LlamaModel(std::shared_ptr<const gguf::Model> file, int n_threads, WeightPlacement placement, bool repack)
    : file_(std::move(file)), hp_(forward_hparams(file_->hp)), weights_(llama_weights(*file_, hp_)) {
    if (n_threads < 0) throw Error(code::InvalidInput, "n_threads is " + str(n_threads) + ", must be >= 0 (0: all cores)");
    pool_ = shared_pool(n_threads);
    if (placement == WeightPlacement::HugePages) place_in_huge_pages();
    if (repack) {
        try {
            repack_layers();
            if (!copy_) check_q8_0_scales();
        } catch (...) {
            release();
            throw;
        }
    }
    if (copy_) mprotect(copy_, copy_bytes_, PROT_READ);  // the weights are read-only, as in the mapping
    // s9-q8order: a Q8_0 output matrix (SmolLM2's and Gemma 3's, tied to the embedding) is read in the Rows8
    // kernels' float order in the file's layout too, so its repack after the first pass, on a thread of
    // its own (forward/output_repack.h), changes no result; at load it would cost the first token (fresh
    // memory's first touch). The huge-page copy already holds it on 2 MiB pages: it stays there.
    tied_ = weights_.output.data == weights_.token_embd.data;
    if (weights_.output.type == TensorType::Q8_0) {
        weights_.output.rows8_order = true;
        if (tied_) weights_.token_embd.rows8_order = true;
        if (repack && !copy_ && repackable(weights_.output) && output_repack_enabled()) {
            output_repack_ = std::make_unique<OutputRepack>(weights_.output, true);
        }
    }
}

void LlamaModel::place_in_huge_pages() {
    {
        // The tensor data section as one span, copied once: the views keep their offsets within it.
        const gguf::File& f = *file_->file;
        uint64_t begin = UINT64_MAX, end = 0;
        for (const gguf::TensorInfo& info : f.tensors) {
            begin = std::min(begin, info.offset);
            end = std::max(end, info.offset + info.n_bytes);
        }
        if (end <= begin) return;
        const size_t n = size_t(end - begin);
        copy_bytes_ = (n + kHugePage - 1) / kHugePage * kHugePage;
        copy_ = map_huge_page_aligned(copy_bytes_);
        if (copy_ == nullptr) {
            copy_bytes_ = 0;
            throw Error(code::ModelUnavailable, "cannot allocate " + std::to_string(n) + " bytes for the weights' huge-page copy");
        }
        // A copy of the file's bytes has no place in a core dump; and the flag keeps the kernel from merging
        // this mapping with a neighbouring anonymous one of the same protection (Gemma 3's repacked Q4_K
        // matrices, mapped right below it): merged, the copy had no smaps entry of its own, and
        // huge_page_bytes() read 0 for a copy wholly on 2 MiB pages.
        madvise(copy_, copy_bytes_, MADV_DONTDUMP);
        const uint8_t* from = f.data() + begin;
        // Threads copy disjoint 2 MiB pieces, so each first touch faults in a huge page near its reader.
        pool_->parallel_for(int64_t(copy_bytes_ / kHugePage), [&](int64_t b, int64_t e, int) {
            const size_t lo = size_t(b) * kHugePage, hi = std::min(size_t(e) * kHugePage, n);
            read_through(from + lo);
            if (lo < hi) std::memcpy(copy_ + lo, from + lo, hi - lo);
        });
        rebase(weights_, from, n, copy_);
    }
}

// Every layer matrix with a Rows8 layout, repacked: in the huge-page copy
// (ours to write), or else into one anonymous mapping of just those matrices,
// after which this process drops its pages of them from the file map (they
// stay in the page cache, and are never read through the map again).
void LlamaModel::repack_layers() {
    const auto start = std::chrono::steady_clock::now();
    std::vector<WeightView*> todo;
    for (LlamaLayer& l : weights_.layers) {
        for (WeightView* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
            if (repackable(*v) && repacked_at_load(v->type)) todo.push_back(v);
        }
    }
    if (todo.empty()) return;
    auto bytes_of = [](const WeightView& v) { return v.row_bytes * size_t(v.rows); };
    // In the huge-page copy where the layout keeps the size; the rest (all of
    // them in place, Q4_K's larger layout always) into one anonymous mapping.
    std::vector<Rows8Job> jobs;
    std::vector<WeightView*> targets;  // the view each job replaces
    std::vector<WeightView*> apart;
    for (WeightView* v : todo) {
        if (copy_ && rows8_bytes(*v) == bytes_of(*v)) {
            jobs.push_back({*v, const_cast<void*>(v->data)});
            targets.push_back(v);
        } else {
            apart.push_back(v);
        }
    }
    if (!apart.empty()) {
        constexpr size_t kAlign = 64;
        size_t total = 0;
        for (WeightView* v : apart) total += (rows8_bytes(*v) + kAlign - 1) / kAlign * kAlign;
        // 2 MiB pages in the end (a decode step streams these matrices: 15.7 GB/s on 4 KiB pages, 21.3
        // on 2 MiB, one thread), but written on 4 KiB pages and collapsed after the first pass, off the
        // first token's path (runtime/huge_page_collapse.h: a fresh 2 MiB page's first touch is the one a
        // host taking free memory back makes slowest); with the collapse off, faulted in as 2 MiB pages by
        // the repack's first touch.
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        packed_bytes_ = (total + page - 1) / page * page;  // a partial last 2 MiB stays on 4 KiB pages (not a huge page's RSS)
        const bool collapse_later = layer_page_collapse_enabled();
        packed_ = map_huge_page_aligned(packed_bytes_, !collapse_later);
        if (packed_ == nullptr) {
            packed_bytes_ = 0;
            throw Error(code::ModelUnavailable, "cannot allocate " + std::to_string(total) + " bytes for the repacked weights");
        }
        if (collapse_later) collapse_ = std::make_unique<HugePageCollapse>(packed_, packed_bytes_);
        size_t at = 0;
        for (WeightView* v : apart) {
            // From the file map (not the huge-page copy) the matrix's offset in the file names its tensor:
            // the finite check is fused in there.
            jobs.push_back({*v, packed_ + at, !copy_});
            targets.push_back(v);
            at += (rows8_bytes(*v) + kAlign - 1) / kAlign * kAlign;
        }
    }
    in_file_order(jobs, targets);
    repack_rows8_many(jobs, *pool_, [this](const void* at) { read_through(at); });
    // The read-ahead maps the file's pages; ended before the pages the repack copied are dropped below,
    // so that it maps none of them again behind the drop.
    file_->file->bytes()->finish_read_ahead(true);
    const uint8_t* file_bytes = file_->file->data();
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    for (size_t i = 0; i < jobs.size(); ++i) {
        const WeightView& from = jobs[i].w;
        *targets[i] = rows8_view(from, jobs[i].dst);
        repacked_bytes_ += rows8_bytes(from);
        if (!jobs[i].check) continue;
        const uint8_t* bytes = static_cast<const uint8_t*>(from.data);
        scales_checked_.push_back({uint64_t(bytes - file_bytes), jobs[i].first_non_finite_scale});
        // The whole pages of the file map inside this matrix: advice only (the huge-page copy's stay).
        const uintptr_t lo = (reinterpret_cast<uintptr_t>(bytes) + page - 1) / page * page;
        const uintptr_t hi = (reinterpret_cast<uintptr_t>(bytes) + bytes_of(from)) / page * page;
        if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    }
    if (packed_) mprotect(packed_, packed_bytes_, PROT_READ);
    repack_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The Q8_0 matrices left in the file's layout (the embedding, and with it
// Gemma 3's tied output: 178 MB) have their block scales checked here across
// the pool, rather than by the load's check on one thread afterwards.
void LlamaModel::check_q8_0_scales() {
    const uint8_t* file_bytes = file_->file->data();
    std::vector<const WeightView*> views = {&weights_.token_embd};
    if (weights_.output.data != weights_.token_embd.data) views.push_back(&weights_.output);
    for (const LlamaLayer& l : weights_.layers)
        for (const WeightView* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) views.push_back(v);
    constexpr int64_t kStride = sizeof(BlockQ8_0);
    static_assert(offsetof(BlockQ8_0, d) == 0, "the scale leads the block");
    for (const WeightView* v : views) {
        if (v->data == nullptr || v->type != TensorType::Q8_0 || v->layout != WeightLayout::Rows) continue;
        const uint8_t* data = static_cast<const uint8_t*>(v->data);
        const int64_t blocks_per_row = v->cols / block_size(TensorType::Q8_0);
        std::mutex first_mutex;
        int64_t first = -1;
        pool_->parallel_for(v->rows, [&](int64_t begin, int64_t end, int) {
            read_through(data + size_t(begin) * v->row_bytes);
            const std::optional<int64_t> found = gguf::first_masked(data + size_t(begin) * v->row_bytes, 2, 0x7C00, kStride,
                                                                    (end - begin) * blocks_per_row);
            if (!found) return;
            const int64_t at = begin * int64_t(v->row_bytes) + *found * kStride;
            std::lock_guard<std::mutex> lock(first_mutex);
            if (first < 0 || at < first) first = at;
        });
        scales_checked_.push_back({uint64_t(data - file_bytes), first});
    }
}

void LlamaModel::read_through(const void* at) const {
    const gguf::ByteSource& bytes = *file_->file->bytes();
    const uint8_t* p = static_cast<const uint8_t*>(at);
    if (p >= bytes.data() && p < bytes.data() + bytes.size()) bytes.read_through(uint64_t(p - bytes.data()));
}

void LlamaModel::release() {
    collapse_.reset();
    if (copy_) munmap(copy_, copy_bytes_);
    if (packed_) munmap(packed_, packed_bytes_);
    copy_ = packed_ = nullptr;
}

LlamaModel::~LlamaModel() {
    output_repack_.reset();  // cancels a repack under way and waits for its thread
    collapse_.reset();       // likewise the collapse, before its mapping goes
    release();
}

size_t LlamaModel::huge_page_bytes() const { return copy_ ? anon_huge_page_bytes(copy_) : 0; }

size_t LlamaModel::repacked_huge_page_bytes() const { return packed_ ? anon_huge_page_bytes(packed_) : 0; }

namespace {
std::mutex pools_mutex;
std::map<int, std::weak_ptr<ThreadPool>> pools;  // guarded by pools_mutex
}  // namespace

std::shared_ptr<ThreadPool> shared_pool(int n_threads) {
    if (n_threads == 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::lock_guard<std::mutex> lock(pools_mutex);
    std::weak_ptr<ThreadPool>& slot = pools[n_threads];
    std::shared_ptr<ThreadPool> pool = slot.lock();
    if (!pool) {
        pool = std::make_shared<ThreadPool>(n_threads);
        slot = pool;
    }
    return pool;
}

size_t shared_pool_count() {
    std::lock_guard<std::mutex> lock(pools_mutex);
    size_t alive = 0;
    for (auto it = pools.begin(); it != pools.end();) {
        if (it->second.expired()) {
            it = pools.erase(it);
        } else {
            ++alive;
            ++it;
        }
    }
    return alive;
}

}  // namespace ggufsm
