#include "ggufsm/forward_llama.h"

#include <cmath>
#include <cstring>
#include <set>

#include "ggufsm/errors.h"
#include "ggufsm/quant.h"

namespace ggufsm {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + str(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

// Takes tensors by name, remembering which were used so that the rest can be refused.
class TensorPicker {
public:
    explicit TensorPicker(const std::map<std::string, TensorRef>& tensors) : tensors_(tensors) {}

    bool has(const std::string& name) const { return tensors_.count(name) != 0; }

    const TensorRef& get(const std::string& name, const std::vector<int64_t>& shape) {
        auto it = tensors_.find(name);
        if (it == tensors_.end()) throw Error(code::InvalidModel, "tensor '" + name + "' is missing from the model");
        if (it->second.shape != shape) {
            throw Error(code::InvalidModel, "tensor '" + name + "' has shape " + shape_str(it->second.shape) + ", expected " +
                                                shape_str(shape));
        }
        used_.insert(name);
        return it->second;
    }

    const float* vector(const std::string& name, int64_t n) {
        const TensorRef& t = get(name, {n});
        if (t.ggml_type != uint32_t(TensorType::F32)) {
            throw Error(code::UnsupportedModel, "tensor '" + name + "' has type " + type_name(t.ggml_type) + "; norms must be F32");
        }
        check_bytes(name, t, size_t(n) * sizeof(float));
        return static_cast<const float*>(t.data);
    }

    WeightView matrix(const std::string& name, int64_t rows, int64_t cols) {
        const TensorRef& t = get(name, {rows, cols});
        WeightView w;
        try {
            w = make_weight_view(t.ggml_type, t.data, rows, cols);
        } catch (const Error& e) {
            throw Error(e.code(), "tensor '" + name + "': " + e.what());
        }
        check_bytes(name, t, size_t(rows) * w.row_bytes);
        return w;
    }

    void refuse_unused() const {
        for (const auto& [name, tensor] : tensors_) {
            if (!used_.count(name)) {
                throw Error(code::UnsupportedModel, "the forward does not use tensor '" + name + "'; refusing rather than ignoring it");
            }
        }
    }

private:
    static void check_bytes(const std::string& name, const TensorRef& t, size_t expected) {
        if (t.n_bytes != expected) {
            throw Error(code::InvalidModel, "tensor '" + name + "' holds " + std::to_string(t.n_bytes) + " bytes, its shape and type need " +
                                                std::to_string(expected));
        }
    }

    const std::map<std::string, TensorRef>& tensors_;
    std::set<std::string> used_;
};

// fn(begin, end) over rows [0, n): on the pool when a prefill chunk has enough rows to pay for the
// hand-off (measured: about 2 us), inline for a decode step.
template <typename Fn>
void for_rows(ThreadPool& pool, int64_t n, Fn&& fn) {
    constexpr int64_t kMinRowsToSplit = 4;
    if (n < kMinRowsToSplit) {
        fn(int64_t(0), n);
    } else {
        pool.parallel_for(n, [&](int64_t begin, int64_t end, int) { fn(begin, end); });
    }
}

void add_into(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

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
        throw Error(code::InvalidModel, "layer_norm_rms_epsilon and rope.freq_base must be positive");
    }
    if (hp.sliding_window < 0 || hp.swa_period < 0 || hp.final_logit_softcap < 0) {
        throw Error(code::InvalidModel, "sliding_window " + str(hp.sliding_window) + ", its period " + str(hp.swa_period) +
                                            " and final_logit_softcapping must not be negative");
    }
}

}  // namespace

// ---------------------------------------------------------------- weights

LlamaWeights llama_weights(const LlamaHparams& hp, const std::map<std::string, TensorRef>& tensors) {
    check_hparams(hp);
    TensorPicker pick(tensors);
    const int64_t q_width = hp.n_head * hp.head_dim, kv_width = hp.n_head_kv * hp.head_dim;
    LlamaWeights w;
    w.token_embd = pick.matrix("token_embd.weight", hp.n_vocab, hp.n_embd);
    w.output_norm = pick.vector("output_norm.weight", hp.n_embd);
    w.output = pick.has("output.weight") ? pick.matrix("output.weight", hp.n_vocab, hp.n_embd) : w.token_embd;
    for (int64_t i = 0; i < hp.n_layer; ++i) {
        const std::string blk = "blk." + str(i) + ".";
        LlamaLayer l;
        l.attn_norm = pick.vector(blk + "attn_norm.weight", hp.n_embd);
        l.wq = pick.matrix(blk + "attn_q.weight", q_width, hp.n_embd);
        l.wk = pick.matrix(blk + "attn_k.weight", kv_width, hp.n_embd);
        l.wv = pick.matrix(blk + "attn_v.weight", kv_width, hp.n_embd);
        l.wo = pick.matrix(blk + "attn_output.weight", hp.n_embd, q_width);
        l.ffn_norm = pick.vector(blk + "ffn_norm.weight", hp.n_embd);
        l.w_gate = pick.matrix(blk + "ffn_gate.weight", hp.n_ff, hp.n_embd);
        l.w_up = pick.matrix(blk + "ffn_up.weight", hp.n_ff, hp.n_embd);
        l.w_down = pick.matrix(blk + "ffn_down.weight", hp.n_embd, hp.n_ff);
        if (hp.qk_norm) {
            l.q_norm = pick.vector(blk + "attn_q_norm.weight", hp.head_dim);
            l.k_norm = pick.vector(blk + "attn_k_norm.weight", hp.head_dim);
        }
        if (hp.post_norms) {
            l.post_attn_norm = pick.vector(blk + "post_attention_norm.weight", hp.n_embd);
            l.post_ffn_norm = pick.vector(blk + "post_ffw_norm.weight", hp.n_embd);
        }
        w.layers.push_back(l);
    }
    pick.refuse_unused();
    return w;
}

// ---------------------------------------------------------------- model

LlamaModel::LlamaModel(const LlamaHparams& hp, LlamaWeights weights, int n_threads)
    : hp_(hp), weights_(std::move(weights)) {
    check_hparams(hp_);
    if (int64_t(weights_.layers.size()) != hp_.n_layer) {
        throw Error(code::InvalidModel, "the weights have " + str(int64_t(weights_.layers.size())) + " layers, block_count is " + str(hp_.n_layer));
    }
    if (hp_.attn_scale == 0.0f) hp_.attn_scale = 1.0f / std::sqrt(float(hp_.head_dim));
    if (n_threads < 0) throw Error(code::InvalidInput, "n_threads is " + str(n_threads) + ", must be >= 0 (0: all cores)");
    pool_ = std::make_unique<ThreadPool>(n_threads);
}

// ---------------------------------------------------------------- session

LlamaSession::LlamaSession(std::shared_ptr<const LlamaModel> model, int64_t n_ctx, int64_t n_batch)
    : model_(std::move(model)), hp_(model_->hparams()), n_ctx_(n_ctx), n_batch_(std::min(n_batch, n_ctx)), kv_ctx_(0) {
    if (n_ctx <= 0 || n_batch <= 0) {
        throw Error(code::InvalidInput, "n_ctx " + str(n_ctx) + " and n_batch " + str(n_batch) + " must be positive");
    }
    const int64_t q_width = hp_.n_head * hp_.head_dim, kv_width = hp_.n_head_kv * hp_.head_dim;
    kv_ctx_ = round_up_to_key_tile(n_ctx);
    k_cache_.assign(size_t(hp_.n_layer) * kv_layer_elements(hp_.n_head_kv, kv_ctx_, hp_.head_dim), KvElement(0));
    v_cache_.assign(k_cache_.size(), KvElement(0));
    positions_.resize(size_t(n_batch_));
    x_.resize(size_t(n_batch_ * hp_.n_embd));
    xb_.resize(x_.size());
    q_.resize(size_t(n_batch_ * q_width));
    att_.resize(q_.size());
    k_.resize(size_t(n_batch_ * kv_width));
    v_.resize(k_.size());
    gate_.resize(size_t(n_batch_ * hp_.n_ff));
    up_.resize(gate_.size());
    logits_.resize(size_t(hp_.n_vocab));
}

size_t LlamaSession::kv_bytes() const { return (k_cache_.size() + v_cache_.size()) * sizeof(KvElement); }

size_t LlamaSession::scratch_bytes() const {
    size_t floats = x_.size() + xb_.size() + q_.size() + att_.size() + k_.size() + v_.size() + gate_.size() + up_.size();
    size_t bytes = floats * sizeof(float) + positions_.size() * sizeof(int32_t);
    // Quantized activations: at most one int8 code, a scale per 32 and a sum per 16 per float of the widest input.
    const int64_t widest = std::max(std::max(hp_.n_embd, hp_.n_ff), hp_.n_head * hp_.head_dim);
    return bytes + activations_.size() * size_t(n_batch_ * widest) * 2;
}

void LlamaSession::check(const int64_t* tokens, int64_t n, int64_t start_pos) const {
    if (n <= 0) throw Error(code::InvalidInput, "no tokens to evaluate");
    if (start_pos < 0) throw Error(code::InvalidInput, "start position " + str(start_pos) + " is negative");
    if (start_pos + n > n_ctx_) {
        throw Error(code::ContextOverflow, "positions " + str(start_pos) + ".." + str(start_pos + n - 1) + " do not fit the context of " +
                                               str(n_ctx_));
    }
    for (int64_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= hp_.n_vocab) {
            throw Error(code::InvalidInput, "token id " + str(tokens[i]) + " at index " + str(i) + " is outside the vocabulary [0, " +
                                                str(hp_.n_vocab) + ")");
        }
    }
}

void LlamaSession::prefill(const int64_t* tokens, int64_t n, int64_t start_pos, float* logits) {
    std::lock_guard<std::mutex> lock(running_);
    check(tokens, n, start_pos);
    for (int64_t done = 0; done < n; done += n_batch_) {
        const int64_t m = std::min(n_batch_, n - done);
        run_chunk(tokens + done, m, start_pos + done, done + m == n);
    }
    std::memcpy(logits, logits_.data(), logits_.size() * sizeof(float));
}

void LlamaSession::run_chunk(const int64_t* tokens, int64_t n, int64_t start_pos, bool want_logits) {
    for (int64_t t = 0; t < n; ++t) positions_[size_t(t)] = int32_t(start_pos + t);
    embed(tokens, n);
    for (int64_t layer = 0; layer < hp_.n_layer; ++layer) {
        attention_block(layer, n);
        feed_forward_block(layer, n);
    }
    if (want_logits) output_logits(n);
}

void LlamaSession::embed(const int64_t* tokens, int64_t n) {
    const WeightView& e = model_->weights().token_embd;
    for (int64_t t = 0; t < n; ++t) {
        float* row = &x_[size_t(t * hp_.n_embd)];
        dequantize_row(e.type, static_cast<const uint8_t*>(e.data) + size_t(tokens[t]) * e.row_bytes, row, hp_.n_embd);
        if (hp_.embd_scale != 1.0f) {
            for (int64_t i = 0; i < hp_.n_embd; ++i) row[i] *= hp_.embd_scale;
        }
    }
}

void LlamaSession::project(const float* x, int64_t n, std::initializer_list<std::pair<const WeightView*, float*>> outputs) {
    std::array<bool, 3> quantized{};
    ThreadPool& pool = model_->pool();
    for (const auto& [w, y] : outputs) {
        const int format = int(activation_format_for(w->type));
        if (!quantized[size_t(format)]) {
            activations_[size_t(format)].quantize(x, n, w->cols, w->type, pool);
            quantized[size_t(format)] = true;
        }
        matmul(*w, activations_[size_t(format)], y, pool);
    }
}

// x += [post_attn_norm] wo . attention(q, k, v) over the cache, with q, k, v from attn_norm(x).
void LlamaSession::attention_block(int64_t layer, int64_t n) {
    const LlamaLayer& l = model_->weights().layers[size_t(layer)];
    const int64_t hd = hp_.head_dim, kv_width = hp_.n_head_kv * hd, start_pos = positions_[0];
    const bool slides = hp_.layer_slides(layer);
    const int64_t n_embd = hp_.n_embd, n_head = hp_.n_head, n_head_kv = hp_.n_head_kv;
    ThreadPool& pool = model_->pool();
    for_rows(pool, n, [&](int64_t b, int64_t e) {
        rmsnorm(&x_[size_t(b * n_embd)], l.attn_norm, &xb_[size_t(b * n_embd)], e - b, n_embd, hp_.rms_eps);
    });
    project(xb_.data(), n, {{&l.wq, q_.data()}, {&l.wk, k_.data()}, {&l.wv, v_.data()}});

    // Per token: q/k norms, RoPE, and k, v into the cache.
    const float freq_base = slides ? hp_.rope_freq_base_local : hp_.rope_freq_base;
    KvElement* k_cache = &k_cache_[size_t(layer * kv_width * kv_ctx_)];
    KvElement* v_cache = &v_cache_[size_t(layer * kv_width * kv_ctx_)];
    for_rows(pool, n, [&](int64_t b, int64_t e) {
        float* q = &q_[size_t(b * n_head * hd)];
        float* k = &k_[size_t(b * kv_width)];
        if (l.q_norm) {
            rmsnorm(q, l.q_norm, q, (e - b) * n_head, hd, hp_.rms_eps);
            rmsnorm(k, l.k_norm, k, (e - b) * n_head_kv, hd, hp_.rms_eps);
        }
        rope(q, e - b, n_head, hd, hp_.n_rot, &positions_[size_t(b)], freq_base, hp_.rope_neox);
        rope(k, e - b, n_head_kv, hd, hp_.n_rot, &positions_[size_t(b)], freq_base, hp_.rope_neox);
        for (int64_t t = b; t < e; ++t) {
            for (int64_t h = 0; h < n_head_kv; ++h) {
                const size_t from = size_t((t * n_head_kv + h) * hd);
                store_kv(&k_[from], &v_[from], k_cache, v_cache, kv_ctx_, hd, h, start_pos + t);
            }
        }
    });
    attention(q_.data(), k_cache, v_cache, att_.data(), n, start_pos, kv_ctx_, n_head, n_head_kv, hd, hp_.attn_scale,
              slides ? hp_.sliding_window : 0, pool);
    project(att_.data(), n, {{&l.wo, xb_.data()}});
    for_rows(pool, n, [&](int64_t b, int64_t e) {
        float* out = &xb_[size_t(b * n_embd)];
        if (l.post_attn_norm) rmsnorm(out, l.post_attn_norm, out, e - b, n_embd, hp_.rms_eps);
        add_into(&x_[size_t(b * n_embd)], out, (e - b) * n_embd);
    });
}

// x += [post_ffn_norm] w_down . (act(w_gate . h) * (w_up . h)), h = ffn_norm(x).
void LlamaSession::feed_forward_block(int64_t layer, int64_t n) {
    const LlamaLayer& l = model_->weights().layers[size_t(layer)];
    const int64_t n_embd = hp_.n_embd, n_ff = hp_.n_ff;
    ThreadPool& pool = model_->pool();
    for_rows(pool, n, [&](int64_t b, int64_t e) {
        rmsnorm(&x_[size_t(b * n_embd)], l.ffn_norm, &xb_[size_t(b * n_embd)], e - b, n_embd, hp_.rms_eps);
    });
    project(xb_.data(), n, {{&l.w_gate, gate_.data()}, {&l.w_up, up_.data()}});
    for_rows(pool, n, [&](int64_t b, int64_t e) {
        float* gate = &gate_[size_t(b * n_ff)];
        const float* up = &up_[size_t(b * n_ff)];
        if (hp_.ffn == FeedForward::SwiGLU) {
            swiglu(gate, up, gate, (e - b) * n_ff);
        } else {
            geglu(gate, up, gate, (e - b) * n_ff);
        }
    });
    project(gate_.data(), n, {{&l.w_down, xb_.data()}});
    for_rows(pool, n, [&](int64_t b, int64_t e) {
        float* out = &xb_[size_t(b * n_embd)];
        if (l.post_ffn_norm) rmsnorm(out, l.post_ffn_norm, out, e - b, n_embd, hp_.rms_eps);
        add_into(&x_[size_t(b * n_embd)], out, (e - b) * n_embd);
    });
}

// logits = output . output_norm(x of the chunk's last token).
void LlamaSession::output_logits(int64_t n) {
    const LlamaWeights& w = model_->weights();
    rmsnorm(&x_[size_t((n - 1) * hp_.n_embd)], w.output_norm, xb_.data(), 1, hp_.n_embd, hp_.rms_eps);
    project(xb_.data(), 1, {{&w.output, logits_.data()}});
    if (hp_.final_logit_softcap > 0.0f) {
        const float cap = hp_.final_logit_softcap;
        for (float& logit : logits_) logit = cap * std::tanh(logit / cap);
    }
}

}  // namespace ggufsm
