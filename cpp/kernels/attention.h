// Causal grouped-query attention over a KV cache, and the cache's layout.
//
// The cache of one layer holds, per KV head, the keys in tiles of 16
// positions stored transposed, [n_ctx / 16][hd][16], and the values in rows,
// [n_ctx][hd]. Transposed keys let a kernel score 16 positions with one
// fused multiply-add per dimension (q[d] broadcast times 16 keys' dim d), no
// horizontal sums; value rows are what the weighted sum over positions reads.
// The element type is float or IEEE half (uint16_t bits, as llama.cpp keeps
// its cache: half the memory, and half the bytes a long decode step streams).
// Halves are rounded to nearest even on store, once, by the kernel set's
// to_half, which writes fp32_to_fp16's bits in every set, so every ISA
// variant reads identical caches.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "runtime/thread_pool.h"

namespace ggufsm {

// Positions per transposed key tile; a cache's n_ctx must be a multiple of it.
constexpr int64_t kKeyTile = 16;

inline int64_t round_up_to_key_tile(int64_t n) { return (n + kKeyTile - 1) / kKeyTile * kKeyTile; }

// Elements of one layer's K (or V) cache: n_head_kv * n_ctx * hd.
inline size_t kv_layer_elements(int64_t n_head_kv, int64_t n_ctx, int64_t hd) { return size_t(n_head_kv * n_ctx * hd); }

// Writes the key k [hd] and value v [hd] of KV head `kv_head` at position pos
// into one layer's caches (float: copied; uint16_t: rounded to half).
void store_kv(const float* k, const float* v, float* k_cache, float* v_cache, int64_t n_ctx, int64_t hd, int64_t kv_head,
              int64_t pos);
void store_kv(const float* k, const float* v, uint16_t* k_cache, uint16_t* v_cache, int64_t n_ctx, int64_t hd,
              int64_t kv_head, int64_t pos);

// Query token t sits at position start_pos + t and attends the cached
// positions p <= start_pos + t, and with sliding_window w > 0 only those with
// start_pos + t - p < w (llama.cpp's standard SWA). Head h reads KV head
// h / (n_head / n_head_kv). The cache must already hold positions up to
// start_pos + n_tok - 1.
//   q, out: [n_tok][n_head][hd];  k_cache, v_cache: one layer, laid out as above
// out = softmax(scale * q.k) . v per (token, head), by an online softmax over
// blocks of 64 positions (flash attention's rescaling), so no score row is
// ever materialized. The pool splits (query tile, KV head) units: a tile's
// tokens step through the positions together, so each block of keys and
// values is fetched from memory once per tile, and each token's query heads
// of the KV head run together, sharing every key and value load. A token's
// blocks and their order are its own whatever its tile (its output is the
// same to the last bit as when it is attended alone). When the units do not
// spread evenly over the threads (a decode step: as few units as KV heads)
// and positions are many, each unit's positions are split into segments
// whose partial softmaxes are then combined. One token attending fewer than
// 256 positions (an early decode step) runs on the calling thread, to the
// same bits as on the pool: below 512 positions no unit is ever segmented.
// Throws InvalidInput if n_head % n_head_kv != 0, n_ctx is not a multiple of
// kKeyTile, or start_pos + n_tok > n_ctx.
void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t n_tok, int64_t start_pos,
               int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale, int64_t sliding_window,
               ThreadPool& pool);
void attention(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, float* out, int64_t n_tok,
               int64_t start_pos, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale,
               int64_t sliding_window, ThreadPool& pool);

// Whether one decode token below 256 positions runs on the calling thread (on by default): off only for
// the benches' A/B within one process (kernels.set_step_shape). Either way the same bits.
void set_inline_decode_attention(bool on);

// One decode token of one sequence, for attention_decode_batch: its query heads q [n_head][hd], its
// output out [n_head][hd], one layer of its cache (n_ctx positions, laid out as above) and its position.
template <typename T>
struct DecodeQuery {
    const float* q = nullptr;
    const T* k_cache = nullptr;
    const T* v_cache = nullptr;
    float* out = nullptr;
    int64_t n_ctx = 0, pos = 0;
};

// The decode tokens of several sequences (a batched decode step), each in its own cache at its own
// position, in one pool dispatch over all their (KV head, segment) units instead of one dispatch per
// sequence (a SmolLM2 step of 4 sessions: 120 hand-offs and barriers, each a few units of work).
// Each token runs exactly the steps attention(query.q, ..., n_tok = 1, query.pos) runs for it alone
// (the same blocks, the same segments, combined in the same order), so its output is the same to the
// last bit. The same checks as attention(), query by query, before anything runs.
void attention_decode_batch(const DecodeQuery<float>* queries, int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale,
                            int64_t sliding_window, ThreadPool& pool);
void attention_decode_batch(const DecodeQuery<uint16_t>* queries, int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd,
                            float scale, int64_t sliding_window, ThreadPool& pool);

// attention_decode_batch in three steps, for a team of threads walking a decode step (forward/pass.cpp):
// the plan (the same checks, the same segments for `threads` threads as the pool's dispatch picks),
// its jobs run in any split over threads (run(begin, end) on disjoint ranges at once), then combine()
// once every job has run. attention_decode_batch is exactly these three on the pool, so the bits are
// the same whichever runs them.
template <typename T>
class DecodeAttention {
public:
    // partials: where the segments' partials go, at least max_partial_floats(n, ...) floats (the team's
    // members each make the same plan and share one store); nullptr: the plan's own.
    DecodeAttention(const DecodeQuery<T>* queries, int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale,
                    int64_t sliding_window, int threads, float* partials = nullptr);
    static size_t max_partial_floats(int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd);
    ~DecodeAttention();
    DecodeAttention(const DecodeAttention&) = delete;
    DecodeAttention& operator=(const DecodeAttention&) = delete;
    int64_t jobs() const;
    // Whether one token below 256 positions, cut into no segments: what attention() runs on the
    // calling thread (set_inline_decode_attention).
    bool inline_on_caller() const;
    void run(int64_t begin, int64_t end);
    void combine();

private:
    struct State;
    std::unique_ptr<State> s_;
};
extern template class DecodeAttention<float>;
extern template class DecodeAttention<uint16_t>;

}  // namespace ggufsm
