// DecodeBatch: several sessions' decode steps as one forward pass (forward.h).
#include <algorithm>
#include <string>

#include "errors.h"
#include "forward/forward.h"

namespace ggufsm {

DecodeBatch::DecodeBatch(std::shared_ptr<const LlamaModel> model) : model_(std::move(model)) {
    if (!model_) throw Error(code::InvalidInput, "DecodeBatch needs a model");
}

size_t DecodeBatch::scratch_bytes() const { return scratch_.bytes(model_->hparams()); }

void DecodeBatch::set_profiling(bool on) {
    std::lock_guard<std::mutex> lock(running_);
    if (on) profile_ = std::make_unique<ForwardProfile>();
    profiling_ = on;
}

void DecodeBatch::decode(LlamaSession* const* sessions, const int64_t* tokens, const int64_t* positions, int64_t n) {
    if (n <= 0) throw Error(code::InvalidInput, "a batched decode needs at least one session");
    std::vector<LlamaSession*> order(sessions, sessions + n);
    for (int64_t i = 0; i < n; ++i) {
        if (!sessions[i]) throw Error(code::InvalidInput, "session " + std::to_string(i) + " of the batch is null");
        if (&sessions[i]->model() != model_.get()) {
            throw Error(code::InvalidInput, "session " + std::to_string(i) + " of the batch runs another model");
        }
    }
    // Locks taken in one global order (by address), so two batches over overlapping sessions cannot deadlock.
    std::sort(order.begin(), order.end());
    if (std::adjacent_find(order.begin(), order.end()) != order.end()) {
        throw Error(code::InvalidInput, "a session appears twice in one batched decode");
    }
    std::lock_guard<std::mutex> batch_lock(running_);
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(order.size());
    for (LlamaSession* s : order) locks.emplace_back(s->running_);
    // Every check before anything runs: a bad entry evaluates nothing for anyone.
    for (int64_t i = 0; i < n; ++i) {
        try {
            sessions[i]->check(&tokens[i], 1, positions[i]);
        } catch (const Error& e) {
            throw Error(e.code(), "session " + std::to_string(i) + " of the batch: " + e.what());
        }
    }
    // As a session's prefill: a file changed under the mapping is ModelUnavailable before the pass and after it.
    const gguf::ByteSource& bytes = *model_->file().file->bytes();
    bytes.check_intact();
    scratch_.reserve(model_->hparams(), n);
    std::vector<PassSegment> segments;
    segments.reserve(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
        sessions[i]->logits_->forget();
        segments.push_back(PassSegment{&sessions[i]->kv_, i, 1, positions[i], sessions[i]->logits_->values.get()});
    }
    run_pass(*model_, scratch_, tokens, n, segments, profiling_ ? profile_.get() : nullptr);
    bytes.check_intact();
    // Each session's greedy token while its row is in cache (the pass just copied it out), here once for
    // all rather than by each handle's Python after the pass, one after another under the GIL.
    for (int64_t i = 0; i < n; ++i) sessions[i]->logits_->settle();
}

}  // namespace ggufsm
