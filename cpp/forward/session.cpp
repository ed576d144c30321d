// LlamaSession: one sequence through the fused forward (forward.h).
#include <cmath>
#include <string>

#include "errors.h"
#include "forward/forward.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "kernels/quant.h"

namespace ggufsm {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

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

}  // namespace

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
    logits_ = std::shared_ptr<float[]>(new float[size_t(hp_.n_vocab)]());
}

LlamaSession::ReturnMemoryOnDestroy::~ReturnMemoryOnDestroy() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
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
    check_token_ids(tokens, n, hp_.n_vocab);
}

void LlamaSession::prefill(const int64_t* tokens, int64_t n, int64_t start_pos) {
    std::lock_guard<std::mutex> lock(running_);
    check(tokens, n, start_pos);
    // A file changed under the mapping (gguf/fault_guard.h) is ModelUnavailable before the forward,
    // and after it too: a forward that ran over zero pages left garbage logits, never to be sampled.
    const gguf::ByteSource& bytes = *model_->file().file->bytes();
    bytes.check_intact();
    for (int64_t done = 0; done < n; done += n_batch_) {
        const int64_t m = std::min(n_batch_, n - done);
        run_chunk(tokens + done, m, start_pos + done, done + m == n);
    }
    bytes.check_intact();
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
        if (hp_.ffn == gguf::FeedForward::SwiGLU) {
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
    float* logits = logits_.get();
    project(xb_.data(), 1, {{&w.output, logits}});
    if (hp_.final_logit_softcap > 0.0f) {
        const float cap = hp_.final_logit_softcap;
        for (int64_t i = 0; i < hp_.n_vocab; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
    }
}

}  // namespace ggufsm
