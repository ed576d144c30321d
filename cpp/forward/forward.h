// The fused forward of the llama family: one C++ call per prefill (batched,
// in chunks of n_batch tokens) or decode step.
//
// Two architectures run through it. `llama` (SmolLM2) is the plain block:
//   x += wo . attention(rope(wq . norm(x)), rope(wk . norm(x)), wv . norm(x))
//   x += w_down . (silu(w_gate . norm(x)) * (w_up . norm(x)))
// `gemma3` is the same block with switches, each declared once in
// gguf/architectures.cpp and resolved into gguf::HyperParameters: the
// embedding scaled by sqrt(n_embd), per-head RMSNorm of q and k before RoPE,
// RMSNorm of the attention and feed-forward outputs before they join the
// residual, GELU instead of SiLU, and 5 of every 6 layers attending a sliding
// window with their own RoPE base. reference/architectures/llama.py and
// gemma3.py are the readable numpy versions, tested equal to this one.
//
// LlamaModel is built from a validated file (gguf/model.h) and holds views
// into its memory map (zero copy; the model keeps the file alive), or into one
// huge-page copy of it (WeightPlacement), and the thread pool. LlamaSession
// owns what one sequence needs: KV cache, scratch, logits. One forward pass
// (forward/pass.cpp) runs rows that belong to one sequence (a prefill chunk)
// or to several (DecodeBatch: one decode step of each of several sessions,
// the weights read once for all). All arithmetic is in the kernels
// (kernels/); these files only orchestrate them.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>
#include <memory>
#include <mutex>
#include <vector>

#include "forward/output_repack.h"
#include "gguf/model.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "runtime/huge_page_collapse.h"
#include "runtime/thread_pool.h"

namespace ggufsm {

// The hyperparameters in the forward's own types, from gguf::HyperParameters.
struct LlamaHparams {
    int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0;
    int64_t head_dim = 0, n_ff = 0, n_rot = 0;  // n_rot: leading dims of each head that RoPE turns
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;        // global-attention layers
    float rope_freq_base_local = 10000.0f;  // sliding-window layers
    bool rope_neox = false;                 // pairs (i, i + n_rot/2) instead of (2i, 2i+1)
    float attn_scale = 0.0f;                // multiplies q.k
    float embd_scale = 1.0f;                // multiplies the token embedding
    int64_t sliding_window = 0;             // positions a sliding layer attends; 0: no sliding layers
    int64_t swa_period = 0;                 // layer i slides unless (i + 1) % swa_period == 0; 0: none slide
    gguf::FeedForward ffn = gguf::FeedForward::SwiGLU;
    float final_logit_softcap = 0.0f;       // logits = cap * tanh(logits / cap); 0: none

    bool layer_slides(int64_t layer) const {
        return sliding_window > 0 && swa_period > 0 && (layer + 1) % swa_period != 0;
    }
};

struct LlamaLayer {
    const float* attn_norm = nullptr;       // [n_embd]
    WeightView wq, wk, wv;                  // [n_head*hd, n_embd], [n_head_kv*hd, n_embd] x2
    const float* q_norm = nullptr;          // [hd] (qk_norm)
    const float* k_norm = nullptr;          // [hd] (qk_norm)
    WeightView wo;                          // [n_embd, n_head*hd]
    const float* post_attn_norm = nullptr;  // [n_embd] (post_norms)
    const float* ffn_norm = nullptr;        // [n_embd]
    WeightView w_gate, w_up;                // [n_ff, n_embd] x2
    WeightView w_down;                      // [n_embd, n_ff]
    const float* post_ffn_norm = nullptr;   // [n_embd] (post_norms)
};

struct LlamaWeights {
    WeightView token_embd;               // [n_vocab, n_embd]
    std::vector<LlamaLayer> layers;      // [n_layer]
    const float* output_norm = nullptr;  // [n_embd]
    WeightView output;                   // [n_vocab, n_embd]; token_embd when the file has no output.weight
};

// The declared tensors of a validated model, each where the forward uses it
// (its TensorRole). The validation already checked names and shapes and
// refused any tensor the declaration does not name; this checks what the
// forward itself needs: norms in F32 and matrix types the kernels run
// (UnsupportedModel naming the tensor).
LlamaWeights llama_weights(const gguf::Model& model, const LlamaHparams& hp);

// The one rule for token ids: each in [0, n_vocab). Throws InvalidInput
// naming the first id outside and its index.
void check_token_ids(const int64_t* tokens, int64_t n, int64_t n_vocab);

// Where the forward reads the weights from.
enum class WeightPlacement {
    InPlace,     // views into the file's memory map (zero copy; 4 KiB pages)
    HugePages,   // one anonymous copy at load, advised MADV_HUGEPAGE (2 MiB pages where the kernel grants them):
                 // fewer TLB walks and no prefetcher restart every 4 KiB on a decode step's weight stream,
                 // for a copy's time at load and the copy's memory (docs/benchmarks.md, "Decode at the memory limit")
};

class LlamaModel {
public:
    // InvalidModel or UnsupportedModel for hyperparameters the forward cannot
    // run (naming the first), InvalidInput for n_threads < 0 (0: all cores).
    // repack: the layer matrices that have a Rows8 layout (kernels/repack.h) are
    // repacked once here, into the huge-page copy or else one anonymous copy of
    // just those matrices, for the register-blocked kernels.
    LlamaModel(std::shared_ptr<const gguf::Model> file, int n_threads, WeightPlacement placement = WeightPlacement::InPlace,
               bool repack = true);
    ~LlamaModel();
    WeightPlacement placement() const { return copy_ ? WeightPlacement::HugePages : WeightPlacement::InPlace; }
    // Bytes of the weights' copy (0 in place), and of it the kernel backs with huge pages (AnonHugePages).
    size_t copy_bytes() const { return copy_bytes_; }
    size_t huge_page_bytes() const;
    // Bytes of the matrices repacked at load, and the seconds the repack took (part of the load).
    size_t repacked_bytes() const { return repacked_bytes_; }
    double repack_seconds() const { return repack_seconds_; }
    // Where the repacked matrices' own mapping starts (0 when they have none: in the huge-page copy, or no repack).
    uintptr_t repacked_address() const { return reinterpret_cast<uintptr_t>(packed_); }
    // Bytes of that mapping the kernel backs with 2 MiB pages now (AnonHugePages), and the collapse that
    // moves it onto them after the first pass (runtime/huge_page_collapse.h), or nullptr (no such mapping,
    // or set_layer_page_collapse(false) at load: faulted in as 2 MiB pages).
    size_t repacked_huge_page_bytes() const;
    HugePageCollapse* repacked_collapse() const { return collapse_.get(); }
    // The finite-weights check of the matrices this load read anyway, made in that read: per matrix
    // in the file's layout (by the byte offset of its tensor in the file), the byte offset within
    // it of its first NaN or infinite fp16 block scale, or -1. Filled with repack (not with the
    // huge-page copy); the load's check (reference/model/finite_weights.py) scans only the rest.
    struct ScaleCheck {
        uint64_t tensor_offset;
        int64_t first_non_finite;
    };
    const std::vector<ScaleCheck>& scales_checked() const { return scales_checked_; }
    const LlamaHparams& hparams() const { return hp_; }
    const LlamaWeights& weights() const { return weights_; }
    // The output matrix and the token embedding as a pass reads them (inside a PassReads): weights()'s views
    // until the output's background repack (forward/output_repack.h) swaps in its Rows8 copy; a tied
    // embedding reads that copy too (dequantize_weight_row).
    const WeightView& output() const { return output_repack_ ? output_repack_->current() : weights_.output; }
    const WeightView& token_embd() const { return output_repack_ && tied_ ? output_repack_->current() : weights_.token_embd; }
    // One pass's reads of output() and token_embd(): the views stay the same from construction to
    // destruction (the swap waits for a moment with no pass in flight); the first one's end starts the
    // output's repack and the repacked layers' collapse onto 2 MiB pages.
    class PassReads {
    public:
        explicit PassReads(const LlamaModel& model) : repack_(model.output_repack_.get()), collapse_(model.collapse_.get()) {
            if (repack_) repack_->enter();
        }
        ~PassReads() {
            if (repack_) repack_->leave();
            if (collapse_) collapse_->start();
        }
        PassReads(const PassReads&) = delete;
        PassReads& operator=(const PassReads&) = delete;

    private:
        OutputRepack* repack_;
        HugePageCollapse* collapse_;
    };
    // The output's background repack, or nullptr (not Q8_0, rows % 8 != 0, no repack, the huge-page copy,
    // or set_output_repack(false) at load).
    OutputRepack* output_repack() const { return output_repack_.get(); }
    const gguf::Model& file() const { return *file_; }
    ThreadPool& pool() const { return *pool_; }

private:
    std::shared_ptr<const gguf::Model> file_;  // the bytes weights_ points into
    LlamaHparams hp_;
    LlamaWeights weights_;
    std::shared_ptr<ThreadPool> pool_;  // shared_pool(n_threads): one per thread count in the process
    uint8_t* copy_ = nullptr;  // WeightPlacement::HugePages: the anonymous mapping weights_ points into
    size_t copy_bytes_ = 0;
    uint8_t* packed_ = nullptr;  // in place with repack: the anonymous mapping the repacked matrices live in
    size_t packed_bytes_ = 0;
    size_t repacked_bytes_ = 0;
    double repack_seconds_ = 0;
    std::vector<ScaleCheck> scales_checked_;
    bool tied_ = false;  // the output matrix is the token embedding
    std::unique_ptr<OutputRepack> output_repack_;
    std::unique_ptr<HugePageCollapse> collapse_;  // packed_ onto 2 MiB pages after the first pass
    void place_in_huge_pages();
    void repack_layers();
    void check_q8_0_scales();
    // Tells the file's read-ahead the load reads from `at` now (gguf/read_ahead.h); a pointer outside the mapping
    // (the huge-page copy) says nothing.
    void read_through(const void* at) const;
    void release();
};

// The KV cache and the scratch are allocated zeroed by calloc rather than
// filled: a cache this large comes from fresh mmap'd pages, which the kernel hands out zeroed on first touch, so
// calloc skips the fill and a session costs only the pages its positions
// reach (an eager fill wrote all of Gemma 3's 2 x 436 MB at the default
// context, ~0.07 s of every load under load). The contents are the same zeros.
template <typename T>
struct ZeroedAllocator {
    static_assert(std::is_trivial_v<T>, "calloc's zero bytes are a value only for trivial types");
    using value_type = T;
    ZeroedAllocator() = default;
    template <typename U>
    ZeroedAllocator(const ZeroedAllocator<U>&) noexcept {}
    T* allocate(size_t n) {
        void* p = std::calloc(n, sizeof(T));
        if (p == nullptr) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, size_t) noexcept { std::free(p); }
    // Value-initialization (resize) leaves calloc's zeros as they are instead of writing them again.
    template <typename U>
    void construct(U*) noexcept {}
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) { ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...); }
    template <typename U>
    bool operator==(const ZeroedAllocator<U>&) const noexcept { return true; }
    template <typename U>
    bool operator!=(const ZeroedAllocator<U>&) const noexcept { return false; }
};

// The scratch rows are sized for a whole n_batch (512) chunk; a short prompt
// and every decode step touch a few of them. Zero-filled vectors wrote all of
// them at every new session (16-22 MB on SmolLM2 and Gemma 3, 9-35 ms under
// load); calloc'd, a session costs the pages its passes reach.
using ScratchFloats = std::vector<float, ZeroedAllocator<float>>;

// The rows a forward pass computes at once, and scratch for them: residual
// stream, projections, quantized activations. A session holds one sized for
// its n_batch; a DecodeBatch one sized for its largest batch.
struct ForwardScratch {
    void reserve(const LlamaHparams& hp, int64_t rows);  // grows only
    int64_t rows = 0;
    std::vector<int32_t> positions;        // [rows]
    ScratchFloats x;                       // [rows][n_embd] residual stream
    ScratchFloats xb;                      // [rows][n_embd] normed input, then a block's output
    ScratchFloats q;                       // [rows][n_head][hd]
    ScratchFloats k, v;                    // [rows][n_head_kv][hd]
    ScratchFloats att;                     // [rows][n_head][hd] attention mix, before wo
    ScratchFloats gate, up;                // [rows][n_ff]
    ScratchFloats logits;                  // [rows][n_vocab] when a pass wants several rows' logits
    std::array<QuantizedActivations, 3> activations;  // one per ActivationFormat
    size_t bytes(const LlamaHparams& hp) const;
};

// What a pass spends its time on, op kind by op kind, accumulated over the
// passes a session runs while it profiles (LlamaSession::set_profiling;
// `ggufsm bench forward --profile`). Each op is timed around its whole call,
// the pool's hand-off and wait included: on 2 threads a decode step's
// synchronization is part of what each op costs. Matrix products are kept
// per weight type, as a model mixes them. Off (the default), a pass reads
// one null pointer per op.
enum class ForwardOp : int {
    Embed,         // token rows dequantized (and scaled)
    Norm,          // attn_norm, ffn_norm, output_norm, post-norms
    QkNormRope,    // per-head q/k RMSNorm (gemma3) and RoPE
    KvStore,       // k, v rounded to halves into the cache
    Attention,     // softmax(q.k) . v over the cache
    Quantize,      // activations quantized for the products (once per format per input)
    MatmulQkv,     // wq, wk, wv
    MatmulOut,     // wo
    MatmulGateUp,  // w_gate, w_up
    MatmulDown,    // w_down
    MatmulOutput,  // output (lm head)
    Activation,    // SwiGLU / GeGLU
    Residual,      // x += block output
    Softcap,       // final logit softcap (gemma3 files may set it)
    LogitsCopy,    // a batched pass's logits, each session's out of the shared scratch
    Count
};
const char* forward_op_name(ForwardOp op);

struct ForwardProfile {
    static constexpr int kOps = int(ForwardOp::Count);
    static constexpr int kTypes = 40;  // ggml type ids below this (every type the kernels run)
    std::array<std::array<int64_t, kTypes>, kOps> ns{};     // [op][weight type; 0 for ops without one]
    std::array<std::array<int64_t, kTypes>, kOps> calls{};
    int64_t passes = 0, pass_ns = 0, rows = 0;              // whole passes: their count, time and rows
    // A walked step (pass.cpp): the time its members spent in each op's phases not running a part (waiting for
    // the phase before to finish, or finding nothing left to take): [0] member 0 (it runs the small ops), [1] the
    // others, summed. A product's wait is mostly the small ops before it; a small op's, the product's tail.
    std::array<std::array<int64_t, kOps>, 2> wait_ns{};
    // And per member ([0] member 0, [1] the others summed): its time from the pass's start to its leaving the walk
    // (at the end, or resigned to the others on a busy machine), and its time running parts (a product's rows, an
    // attention job, a small op). A worker's member that resigned leaves the rest of the step to member 0.
    std::array<int64_t, 2> walked_ns{}, ran_ns{};
};

// One sequence's KV cache, attention.h's layout per layer over n_ctx rounded
// up to the key tile: k [n_head_kv][n_ctx/16][hd][16], v [n_head_kv][n_ctx][hd].
// IEEE halves (llama.cpp's default): half the memory, and half the bytes a long
// decode step streams; reference/architectures/llama.py rounds the same way.
//
struct KvCache {
    using Element = uint16_t;
    int64_t kv_ctx = 0;
    std::vector<Element, ZeroedAllocator<Element>> k, v;
};

// Rows [row_begin, row_begin + rows) of a pass belong to one sequence, at its
// positions start_pos.., in its cache; logits (nullptr: not wanted) receives
// the [n_vocab] logits of the segment's last row.
struct PassSegment {
    KvCache* kv = nullptr;
    int64_t row_begin = 0, rows = 0, start_pos = 0;
    float* logits = nullptr;
};

// The process's pool of `n_threads` workers (0: one per core), shared by every
// model asking for that count while any holds it: 100 handles cost one pool,
// not 100 (their parallel_for calls take turns, as calls on one pool do).
std::shared_ptr<ThreadPool> shared_pool(int n_threads);
// Pools alive in the process (diagnostics, tests).
size_t shared_pool_count();

// Whether a call settles the greedy token of the logits it writes (SessionLogits; on by default): off
// only for the benches' A/B within one process (_core.set_settled_greedy, `ggufsm bench batch
// --settled-ab`), every greedy choice then reading its row again. Either way the same tokens.
void set_settled_greedy(bool on);
bool settled_greedy();

// A session's logits buffer [n_vocab], and the greedy token of the values in it (greedy_token: the
// argmax, or -1 - the first non-finite index) as the call that wrote them computed it while they were
// in cache, kUnknown while none has. The sampler's greedy choice then reads one integer instead of
// the 196 KB row (a SmolLM2 handle's Python after a batched pass, when everything it touches is cold;
// bindings/forward.cpp greedy_token). Shared, as the buffer: a view handed out outlives the session.
struct SessionLogits {
    static constexpr int64_t kUnknown = INT64_MIN;
    explicit SessionLogits(int64_t n_vocab) : values(new float[size_t(n_vocab)]()), n(n_vocab) {}
    // Values about to be overwritten: no greedy token until the call writing them has finished.
    void forget() { greedy.store(kUnknown, std::memory_order_relaxed); }
    // The values are final (the call succeeded): their greedy token, read while they are in cache.
    void settle() { greedy.store(settled_greedy() ? greedy_token(values.get(), n) : kUnknown, std::memory_order_relaxed); }
    const std::unique_ptr<float[]> values;
    const int64_t n;
    std::atomic<int64_t> greedy{kUnknown};
};

class LlamaSession {
public:
    // Throws InvalidInput unless n_ctx and n_batch are positive.
    LlamaSession(std::shared_ptr<const LlamaModel> model, int64_t n_ctx, int64_t n_batch);

    // Tokens [n] at positions start_pos..start_pos+n-1, in chunks of n_batch;
    // leaves the logits [n_vocab] of the last in logits(). Calls from several
    // threads are serialized (one sequence cannot interleave). Throws
    // InvalidInput for an empty call, a negative start or a token id outside
    // [0, n_vocab) (check_token_ids), ContextOverflow past n_ctx; nothing is
    // evaluated then and logits() keeps the previous call's. Throws
    // ModelUnavailable when the model file changed under its mapping, before
    // or during the call (the logits and the positions just written are then
    // garbage; gguf/fault_guard.h).
    void prefill(const int64_t* tokens, int64_t n, int64_t start_pos);
    void decode(int64_t token, int64_t pos) { prefill(&token, 1, pos); }

    // The logits [n_vocab] of the last evaluated token (and their greedy token): one buffer for the
    // session's life, overwritten by every prefill and decode. Shared, so a
    // view handed out (Python's read-only array) outlives the session safely.
    const std::shared_ptr<SessionLogits>& logits() const { return logits_; }

    const LlamaModel& model() const { return *model_; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t n_batch() const { return n_batch_; }
    size_t kv_bytes() const;
    size_t scratch_bytes() const;
    size_t logits_bytes() const { return size_t(hp_.n_vocab) * sizeof(float); }

    // Profiling on clears the profile and times every later pass into it; off stops (the figures stay).
    void set_profiling(bool on);
    const ForwardProfile* profile() const { return profile_.get(); }

private:
    friend class DecodeBatch;  // runs this session's decode steps together with others'
    void check(const int64_t* tokens, int64_t n, int64_t start_pos) const;

    // Declared first, so destroyed last: once the buffers below are freed, hands the allocator's free
    // pages back to the system (glibc keeps freed heap memory otherwise; 100 dropped handles left
    // RSS 26% above where it started).
    struct ReturnMemoryOnDestroy {
        ReturnMemoryOnDestroy() = default;
        ReturnMemoryOnDestroy(const ReturnMemoryOnDestroy&) = delete;
        ReturnMemoryOnDestroy& operator=(const ReturnMemoryOnDestroy&) = delete;
        ~ReturnMemoryOnDestroy();
    } return_memory_;
    std::mutex running_;
    std::shared_ptr<const LlamaModel> model_;
    const LlamaHparams& hp_;
    int64_t n_ctx_, n_batch_;
    KvCache kv_;
    ForwardScratch scratch_;
    std::shared_ptr<SessionLogits> logits_;
    std::unique_ptr<ForwardProfile> profile_;
    bool profiling_ = false;
};

// Several sessions' decode steps as one forward pass: every weight matrix is
// streamed once for all of them (a decode step is bound by that stream), while
// each session's token attends its own KV cache at its own position. The
// logits each session receives are those its own decode() would leave
// (tests/inference: equal to the last bit on the real models); each session
// keeps its own state, cancel, reset and errors, and a session that decodes
// alone pays nothing for this class existing.
class DecodeBatch {
public:
    explicit DecodeBatch(std::shared_ptr<const LlamaModel> model);

    // tokens[i] at positions[i] in sessions[i], for i < n, as one pass. The
    // sessions must be distinct and on this batch's model (InvalidInput
    // otherwise); each is checked as its decode() checks it (InvalidInput,
    // ContextOverflow) before anything runs, so a bad entry evaluates nothing
    // for any session; ModelUnavailable as a session's prefill (the file
    // changed under its mapping). Holds every session's lock while it runs;
    // calls on one DecodeBatch are serialized.
    void decode(LlamaSession* const* sessions, const int64_t* tokens, const int64_t* positions, int64_t n);

    size_t scratch_bytes() const;

    // As LlamaSession's: on clears the profile and times every later pass into it (where a
    // batched step's time goes: the weights pass against each session's attention).
    void set_profiling(bool on);
    const ForwardProfile* profile() const { return profile_.get(); }

private:
    std::mutex running_;
    std::shared_ptr<const LlamaModel> model_;
    ForwardScratch scratch_;
    bool profiling_ = false;
    std::unique_ptr<ForwardProfile> profile_;
};

// One forward pass of `n` rows (tokens[n]) over the segments (which cover
// [0, n) in order), in scratch (reserved for n rows or more). Internal to
// forward/: LlamaSession and DecodeBatch call it.
// profile: nullptr, or where the pass adds its time per op (ForwardProfile).
void run_pass(const LlamaModel& model, ForwardScratch& scratch, const int64_t* tokens, int64_t n,
              const std::vector<PassSegment>& segments, ForwardProfile* profile = nullptr);

// Whether one session's decode step is walked by the pool's threads as a team (pass.cpp; on by
// default): off only for the benches' A/B within one process (kernels.set_step_shape). Either way the
// same bits.
void set_layer_walk(bool on);
// A walked step's products cut into parts of about `bytes` each (a member done with its share takes the
// others' last parts); 0: as the dispatched step cuts them. No bit changes (kernels.set_step_shape).
void set_walk_part_bytes(int64_t bytes);
// A pass's RoPE rotations computed once and shared by its layers (on), or again for each layer's q and k
// (off: the step before), for the benches' A/B; the same floats either way.
void set_rope_once(bool on);

}  // namespace ggufsm
