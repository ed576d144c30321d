// LlamaSession: one sequence through the fused forward (forward.h); the pass
// itself is forward/pass.cpp.
#include <atomic>
#include <string>

#include "errors.h"
#include "forward/forward.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ggufsm {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

std::atomic<bool> settle_greedy{true};

}  // namespace

void set_settled_greedy(bool on) { settle_greedy.store(on); }
bool settled_greedy() { return settle_greedy.load(std::memory_order_relaxed); }

LlamaSession::LlamaSession(std::shared_ptr<const LlamaModel> model, int64_t n_ctx, int64_t n_batch)
    : model_(std::move(model)), hp_(model_->hparams()), n_ctx_(n_ctx), n_batch_(std::min(n_batch, n_ctx)) {
    if (n_ctx <= 0 || n_batch <= 0) {
        throw Error(code::InvalidInput, "n_ctx " + str(n_ctx) + " and n_batch " + str(n_batch) + " must be positive");
    }
    kv_.kv_ctx = round_up_to_key_tile(n_ctx);
    // resize, not assign: zeros by calloc, not a fill (KvCache).
    kv_.k.resize(size_t(hp_.n_layer) * kv_layer_elements(hp_.n_head_kv, kv_.kv_ctx, hp_.head_dim));
    kv_.v.resize(kv_.k.size());
    scratch_.reserve(hp_, n_batch_);
    logits_ = std::make_shared<SessionLogits>(hp_.n_vocab);
}

LlamaSession::ReturnMemoryOnDestroy::~ReturnMemoryOnDestroy() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

void LlamaSession::set_profiling(bool on) {
    std::lock_guard<std::mutex> lock(running_);
    if (on) profile_ = std::make_unique<ForwardProfile>();
    profiling_ = on;
}

size_t LlamaSession::kv_bytes() const { return (kv_.k.size() + kv_.v.size()) * sizeof(KvCache::Element); }

size_t LlamaSession::scratch_bytes() const { return scratch_.bytes(hp_); }

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
    logits_->forget();
    for (int64_t done = 0; done < n; done += n_batch_) {
        const int64_t m = std::min(n_batch_, n - done);
        const bool last = done + m == n;
        run_pass(*model_, scratch_, tokens + done, m, {PassSegment{&kv_, 0, m, start_pos + done, last ? logits_->values.get() : nullptr}},
                 profiling_ ? profile_.get() : nullptr);
    }
    bytes.check_intact();
    logits_->settle();
}

}  // namespace ggufsm
