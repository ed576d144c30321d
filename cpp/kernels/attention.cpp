// attention(): validation, the split of (token, KV head, segment) units over
// the pool, the ISA choice, and the combination of segment partials.
#include "kernels/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "errors.h"
#include "kernels/kernel_set.h"
#include "kernels/quant.h"

namespace ggufsm {

namespace {

// The active set's kernels, or the scalar set's for a head size they do not take.
const kernels::KernelSet& kernels_for(int64_t hd) {
    const kernels::KernelSet& active = kernels::active();
    return hd % active.attend_hd_multiple == 0 ? active : kernels::scalar_set();
}

kernels::AttendFn<float> pick(const kernels::KernelSet& k, const float*) { return k.attend_f32; }
kernels::AttendFn<uint16_t> pick(const kernels::KernelSet& k, const uint16_t*) { return k.attend_f16; }

template <typename T>
void store_kv_any(const float* k, const float* v, T* k_cache, T* v_cache, int64_t n_ctx, int64_t hd, int64_t kv_head,
                  int64_t pos, T (*convert)(float)) {
    T* tile = k_cache + (kv_head * n_ctx + pos / kKeyTile * kKeyTile) * hd + pos % kKeyTile;
    T* row = v_cache + (kv_head * n_ctx + pos) * hd;
    for (int64_t d = 0; d < hd; ++d) {
        tile[d * kKeyTile] = convert(k[d]);
        row[d] = convert(v[d]);
    }
}

// Fewest positions worth a segment of their own (not tuned): a shorter one
// would spend a fair share of its time writing and combining its partial.
constexpr int64_t kMinSegment = 4 * kernels::kBlock;

// Segments per unit: the count s that minimizes the busiest thread's share,
// ceil(units * s / threads) jobs of 1/s unit each; the fewest on a tie. A
// SmolLM2 decode step (3 units, 2 threads) takes 2 (6 jobs, 3 each, not 2 and
// 1); a prefill's hundreds of units keep 1.
int64_t segments(int64_t units, int64_t longest, int64_t threads) {
    int64_t best = 1;
    double best_share = double((units + threads - 1) / threads);
    for (int64_t s = 2; s <= longest / kMinSegment && s <= 8; ++s) {
        const double share = double((units * s + threads - 1) / threads) / double(s);
        if (share < best_share - 1e-9) best = s, best_share = share;
    }
    return best;
}

// The query heads of KV head kvh at token t, as the kernels read them. Over a
// half cache they are rounded to halves first: llama.cpp's product of an f16
// cache with an f32 query converts the query to f16 (its vec_dot_type), and
// the reference mirrors llama.cpp's arithmetic where it can. Its effect on
// the agreement with llama.cpp is within llama.cpp's own noise
// (docs/fidelity.md).
template <typename T>
const float* query_group(const kernels::KernelSet& k, const float* q, int64_t t, int64_t kvh, int64_t n_head,
                         int64_t group, int64_t hd, std::vector<float>& rounded) {
    const float* src = q + (t * n_head + kvh * group) * hd;
    if constexpr (std::is_same_v<T, float>) {
        return src;
    } else {
        rounded.resize(size_t(group * hd));
        k.round_to_half(src, rounded.data(), group * hd);
        return rounded.data();
    }
}

void check_heads(int64_t n_head, int64_t n_head_kv) {
    if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0) {
        throw Error(code::InvalidInput, "attention: n_head " + std::to_string(n_head) + " is not a positive multiple of n_head_kv " +
                                            std::to_string(n_head_kv));
    }
}

void check_positions(int64_t start_pos, int64_t n_tok, int64_t n_ctx) {
    if (n_ctx % kKeyTile != 0) {
        throw Error(code::InvalidInput, "attention: n_ctx " + std::to_string(n_ctx) + " is not a multiple of the key tile " +
                                            std::to_string(kKeyTile));
    }
    if (start_pos < 0 || n_tok < 0 || start_pos + n_tok > n_ctx) {
        throw Error(code::InvalidInput, "attention: positions [" + std::to_string(start_pos) + ", " +
                                            std::to_string(start_pos + n_tok) + ") do not fit the cache of n_ctx " +
                                            std::to_string(n_ctx));
    }
}

// The positions [begin, end) in blocks of kBlock from begin's key tile on, into a fresh partial
// (o [group][hd], m [group], l [group]): the one sequence of block steps a token's range is attended in.
template <typename T>
void attend_range(kernels::AttendFn<T> attend, const float* q, int64_t group, const T* k_tiles, const T* v_rows, int64_t hd,
                  int64_t begin, int64_t end, float scale, float* o, float* m, float* l) {
    std::fill(o, o + group * hd, 0.0f);
    std::fill(m, m + group, -std::numeric_limits<float>::infinity());
    std::fill(l, l + group, 0.0f);
    for (int64_t b = begin / kKeyTile * kKeyTile; b < end; b += kernels::kBlock) {
        attend(q, group, k_tiles, v_rows, hd, b, std::max(b, begin), std::min(b + kernels::kBlock, end), scale, o, m, l);
    }
}

// Segment seg of n_seg of a token's positions [first, stop) (whole blocks each), into partial
// (o [group][hd], m [group], l [group]); an empty segment leaves o = 0, m = -inf, l = 0.
template <typename T>
void attend_segment(kernels::AttendFn<T> attend, const float* q, int64_t group, const T* k_tiles, const T* v_rows, int64_t hd,
                    int64_t first, int64_t stop, int64_t seg, int64_t n_seg, float scale, float* partial) {
    const int64_t piece = (stop - first + n_seg - 1) / n_seg;
    const int64_t length = (piece + kernels::kBlock - 1) / kernels::kBlock * kernels::kBlock;
    const int64_t lo = first + seg * length, hi = std::min(stop, lo + length);
    float* o = partial;
    float *m = o + group * hd, *l = m + group;
    if (lo >= hi) {
        std::fill(o, o + group * (hd + 2), 0.0f);
        std::fill(m, m + group, -std::numeric_limits<float>::infinity());
        return;
    }
    attend_range(attend, q, group, k_tiles, v_rows, hd, lo, hi, scale, o, m, l);
}

// out [group][hd] of one (token, KV head) from its n_seg segment partials [n_seg][group * (hd + 2)]:
// the one order in which partials combine.
void combine_segments(const float* partials, int64_t n_seg, int64_t group, int64_t hd, float* out) {
    const int64_t stride = group * (hd + 2);
    for (int64_t g = 0; g < group; ++g) {
        float m_max = -std::numeric_limits<float>::infinity();
        for (int64_t seg = 0; seg < n_seg; ++seg) m_max = std::max(m_max, partials[size_t(seg * stride + group * hd + g)]);
        float* o = out + g * hd;
        std::fill(o, o + hd, 0.0f);
        float l_sum = 0;
        for (int64_t seg = 0; seg < n_seg; ++seg) {
            const float* p = &partials[size_t(seg * stride)];
            const float weight = std::exp(p[group * hd + g] - m_max);
            if (weight == 0.0f) continue;
            l_sum += weight * p[group * hd + group + g];
            for (int64_t d = 0; d < hd; ++d) o[d] += weight * p[g * hd + d];
        }
        const float inverse = 1.0f / l_sum;
        for (int64_t d = 0; d < hd; ++d) o[d] *= inverse;
    }
}

// o [group][hd] /= l [group]: a finished partial's output.
void normalize(float* o, const float* l, int64_t group, int64_t hd) {
    for (int64_t g = 0; g < group; ++g) {
        const float inverse = 1.0f / l[g];
        for (int64_t d = 0; d < hd; ++d) o[g * hd + d] *= inverse;
    }
}

// Tokens per query tile of a prefill. A tile's tokens step through their blocks together, position
// order first: the tokens that attend a block attend it one after another while its keys and values
// are in L1/L2 (at 4,096 positions a Gemma 3 layer's cache is 4 MiB: token by token, every token
// streamed it from memory). Each token still runs its own blocks in its own order (attend_range's),
// so tiling changes no bit of any output. 16 tokens of Gemma 3 keep 64 KiB of partials.
constexpr int64_t kQueryTile = 16;

// Tokens per tile: kQueryTile, or fewer when a short prefill would leave the threads fewer than
// two units each (Gemma 3 has one KV head: 16 tokens would be one thread's work).
int64_t query_tile(int64_t n_tok, int64_t n_head_kv, int64_t threads) {
    return std::clamp<int64_t>(n_tok * n_head_kv / (2 * threads), 1, kQueryTile);
}

// Units of (query tile, KV head), the tiles that attend the most positions first (the pool's last
// chunks are then the short ones). A token's partial lives in its rows of `out` (o), m and l.
// on_caller: every unit on the calling thread, one after another (each unit's steps as on the pool).
template <typename T, typename Range>
void attention_tiled(const kernels::KernelSet& isa_kernels, kernels::AttendFn<T> attend, const float* q, const T* k_cache,
                     const T* v_cache, float* out, int64_t n_tok, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t hd,
                     float scale, const Range& range, ThreadPool& pool, bool on_caller) {
    const int64_t group = n_head / n_head_kv, tile_tokens = query_tile(n_tok, n_head_kv, pool.size());
    const int64_t tiles = (n_tok + tile_tokens - 1) / tile_tokens;
    const std::function<void(int64_t, int64_t, int)> units = [&](int64_t begin, int64_t end, int) {
        std::vector<float> m(size_t(tile_tokens * group)), l(m.size()), rounded;
        std::vector<float> tile_q(size_t(tile_tokens * group * hd));
        for (int64_t unit = begin; unit < end; ++unit) {
            const int64_t tile = tiles - 1 - unit / n_head_kv, kvh = unit % n_head_kv;
            const int64_t t0 = tile * tile_tokens, t1 = std::min(n_tok, t0 + tile_tokens);
            const T* k_head = k_cache + kvh * n_ctx * hd;
            const T* v_head = v_cache + kvh * n_ctx * hd;
            int64_t sweep_begin = n_ctx, sweep_end = 0;
            for (int64_t t = t0; t < t1; ++t) {
                const float* src = query_group<T>(isa_kernels, q, t, kvh, n_head, group, hd, rounded);
                std::copy(src, src + group * hd, tile_q.begin() + (t - t0) * group * hd);
                float* o = out + (t * n_head + kvh * group) * hd;
                std::fill(o, o + group * hd, 0.0f);
                const auto [first, stop] = range(t);
                sweep_begin = std::min(sweep_begin, first / kKeyTile * kKeyTile);
                sweep_end = std::max(sweep_end, stop);
            }
            std::fill(m.begin(), m.end(), -std::numeric_limits<float>::infinity());
            std::fill(l.begin(), l.end(), 0.0f);
            // Token t's blocks start at its first key tile and every kBlock after it (attend_range):
            // a cursor over the key tiles meets each token's blocks in its own order.
            for (int64_t c = sweep_begin; c < sweep_end; c += kKeyTile) {
                for (int64_t t = t0; t < t1; ++t) {
                    const auto [first, stop] = range(t);
                    const int64_t grid = first / kKeyTile * kKeyTile;
                    if (c < grid || c >= stop || (c - grid) % kernels::kBlock != 0) continue;
                    const int64_t r = (t - t0) * group;
                    attend(&tile_q[size_t(r * hd)], group, k_head, v_head, hd, c, std::max(c, first),
                           std::min(c + kernels::kBlock, stop), scale, out + (t * n_head + kvh * group) * hd, &m[size_t(r)],
                           &l[size_t(r)]);
                }
            }
            for (int64_t t = t0; t < t1; ++t) normalize(out + (t * n_head + kvh * group) * hd, &l[size_t((t - t0) * group)], group, hd);
        }
    };
    if (on_caller) {
        units(0, tiles * n_head_kv, 0);
    } else {
        pool.parallel_for(tiles * n_head_kv, units);
    }
}

// Positions below which one decode token's attention runs on the calling thread: its few units (as
// many as KV heads: 3 in SmolLM2, 1 in Gemma 3) each read a few KiB of cache per layer, about what a
// hand-off to the pool costs, and 3 units on 2 threads leave one thread a third of the time idle.
// Below kMinSegment * 2 positions a unit is never cut into segments (segments()), so its result is
// the pool's to the last bit, whatever the thread count.
constexpr int64_t kInlineDecodePositions = 256;
static_assert(kInlineDecodePositions <= 2 * kMinSegment, "an inline decode token is never cut into segments");
std::atomic<bool> inline_decode{true};

template <typename T>
void attention_any(const float* q, const T* k_cache, const T* v_cache, float* out, int64_t n_tok, int64_t start_pos,
                   int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale, int64_t sliding_window,
                   ThreadPool& pool) {
    check_heads(n_head, n_head_kv);
    check_positions(start_pos, n_tok, n_ctx);
    if (n_tok == 0 || hd <= 0) return;
    const kernels::KernelSet& isa_kernels = kernels_for(hd);
    const kernels::AttendFn<T> attend = pick(isa_kernels, k_cache);
    const int64_t group = n_head / n_head_kv, units = n_tok * n_head_kv;
    auto range = [&](int64_t t) {  // the positions token t attends: [first, pos + 1)
        const int64_t pos = start_pos + t;
        return std::pair<int64_t, int64_t>{sliding_window > 0 ? std::max<int64_t>(0, pos - sliding_window + 1) : 0, pos + 1};
    };
    const int64_t longest = range(n_tok - 1).second - range(n_tok - 1).first;
    const int64_t n_seg = segments(units, longest, pool.size());

    if (n_seg == 1) {
        const bool on_caller = n_tok == 1 && longest < kInlineDecodePositions && inline_decode.load(std::memory_order_relaxed);
        attention_tiled<T>(isa_kernels, attend, q, k_cache, v_cache, out, n_tok, n_ctx, n_head, n_head_kv, hd, scale, range,
                           pool, on_caller);
        return;
    }

    // Segments: each unit's positions cut into n_seg pieces of whole blocks;
    // partial [unit][seg] = (o [group][hd], m [group], l [group]).
    const int64_t stride = group * (hd + 2);
    std::vector<float> partial(size_t(units * n_seg * stride));
    pool.parallel_for(units * n_seg, [&](int64_t begin, int64_t end, int) {
        std::vector<float> rounded;
        for (int64_t job = begin; job < end; ++job) {
            const int64_t unit = job / n_seg, seg = job % n_seg, t = unit / n_head_kv, kvh = unit % n_head_kv;
            const auto [first, stop] = range(t);
            attend_segment(attend, query_group<T>(isa_kernels, q, t, kvh, n_head, group, hd, rounded), group,
                           k_cache + kvh * n_ctx * hd, v_cache + kvh * n_ctx * hd, hd, first, stop, seg, n_seg, scale,
                           &partial[size_t(job * stride)]);
        }
    });
    for (int64_t unit = 0; unit < units; ++unit) {
        const int64_t t = unit / n_head_kv, kvh = unit % n_head_kv;
        combine_segments(&partial[size_t(unit * n_seg * stride)], n_seg, group, hd, out + (t * n_head + kvh * group) * hd);
    }
}

// The decode tokens of several sequences: attention_any's steps for each token alone (n_tok = 1: its
// segments as segments() picks them for its n_head_kv units, one block sequence per segment, the same
// combination), its units and segments dealt to the pool in one dispatch with every other token's
// (DecodeAttention's plan, jobs and combination).
template <typename T>
void attention_decode_batch_any(const DecodeQuery<T>* queries, int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd,
                                float scale, int64_t sliding_window, ThreadPool& pool) {
    DecodeAttention<T> plan(queries, n, n_head, n_head_kv, hd, scale, sliding_window, pool.size());
    if (plan.jobs() == 0) return;
    pool.parallel_for(plan.jobs(), [&](int64_t begin, int64_t end, int) { plan.run(begin, end); });
    plan.combine();
}

float keep(float x) { return x; }

}  // namespace

void set_inline_decode_attention(bool on) { inline_decode.store(on); }

void store_kv(const float* k, const float* v, float* k_cache, float* v_cache, int64_t n_ctx, int64_t hd, int64_t kv_head,
              int64_t pos) {
    store_kv_any<float>(k, v, k_cache, v_cache, n_ctx, hd, kv_head, pos, &keep);
}

// The active set's to_half (the same bits as fp32_to_fp16 in every set): the value row straight into
// the cache, the key through a small buffer into its transposed tile.
void store_kv(const float* k, const float* v, uint16_t* k_cache, uint16_t* v_cache, int64_t n_ctx, int64_t hd,
              int64_t kv_head, int64_t pos) {
    const kernels::ToHalfFn to_half = kernels::active().to_half;
    uint16_t* tile = k_cache + (kv_head * n_ctx + pos / kKeyTile * kKeyTile) * hd + pos % kKeyTile;
    to_half(v, v_cache + (kv_head * n_ctx + pos) * hd, hd);
    constexpr int64_t kChunk = 64;
    uint16_t halves[kChunk];
    for (int64_t d0 = 0; d0 < hd; d0 += kChunk) {
        const int64_t m = std::min(kChunk, hd - d0);
        to_half(k + d0, halves, m);
        for (int64_t j = 0; j < m; ++j) tile[(d0 + j) * kKeyTile] = halves[j];
    }
}

void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t n_tok, int64_t start_pos,
               int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale, int64_t sliding_window,
               ThreadPool& pool) {
    attention_any(q, k_cache, v_cache, out, n_tok, start_pos, n_ctx, n_head, n_head_kv, hd, scale, sliding_window, pool);
}

void attention(const float* q, const uint16_t* k_cache, const uint16_t* v_cache, float* out, int64_t n_tok,
               int64_t start_pos, int64_t n_ctx, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale,
               int64_t sliding_window, ThreadPool& pool) {
    attention_any(q, k_cache, v_cache, out, n_tok, start_pos, n_ctx, n_head, n_head_kv, hd, scale, sliding_window, pool);
}

void attention_decode_batch(const DecodeQuery<float>* queries, int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale,
                            int64_t sliding_window, ThreadPool& pool) {
    attention_decode_batch_any(queries, n, n_head, n_head_kv, hd, scale, sliding_window, pool);
}

void attention_decode_batch(const DecodeQuery<uint16_t>* queries, int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd,
                            float scale, int64_t sliding_window, ThreadPool& pool) {
    attention_decode_batch_any(queries, n, n_head, n_head_kv, hd, scale, sliding_window, pool);
}

template <typename T>
struct DecodeAttention<T>::State {
    struct Plan {
        int64_t first, stop, n_seg, first_job, partial_at;
    };
    const DecodeQuery<T>* queries = nullptr;
    int64_t n = 0, n_head = 0, n_head_kv = 0, hd = 0, group = 0, stride = 0, jobs = 0;
    float scale = 0;
    const kernels::KernelSet* isa_kernels = nullptr;
    kernels::AttendFn<T> attend = nullptr;
    std::vector<Plan> plans;
    std::vector<float> own_partial;
    float* partial = nullptr;
};

template <typename T>
DecodeAttention<T>::DecodeAttention(const DecodeQuery<T>* queries, int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd, float scale,
                                    int64_t sliding_window, int threads, float* partials) {
    check_heads(n_head, n_head_kv);
    for (int64_t i = 0; i < n; ++i) check_positions(queries[i].pos, 1, queries[i].n_ctx);
    s_ = std::make_unique<State>();
    s_->queries = queries;
    s_->n = std::max<int64_t>(n, 0);
    s_->n_head = n_head;
    s_->n_head_kv = n_head_kv;
    s_->hd = hd;
    s_->group = n_head / n_head_kv;
    s_->stride = s_->group * (hd + 2);
    s_->scale = scale;
    if (n <= 0 || hd <= 0) return;
    s_->isa_kernels = &kernels_for(hd);
    s_->attend = pick(*s_->isa_kernels, queries[0].k_cache);
    s_->plans.resize(size_t(n));
    int64_t partial_floats = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = queries[i].pos, first = sliding_window > 0 ? std::max<int64_t>(0, pos - sliding_window + 1) : 0;
        const int64_t n_seg = segments(n_head_kv, pos + 1 - first, threads);
        s_->plans[size_t(i)] = typename State::Plan{first, pos + 1, n_seg, s_->jobs, partial_floats};
        s_->jobs += n_head_kv * n_seg;
        if (n_seg > 1) partial_floats += n_head_kv * n_seg * s_->stride;
    }
    if (partials) {
        s_->partial = partials;
    } else {
        s_->own_partial.resize(size_t(partial_floats));
        s_->partial = s_->own_partial.data();
    }
}

// At most 8 segments per unit (segments()).
template <typename T>
size_t DecodeAttention<T>::max_partial_floats(int64_t n, int64_t n_head, int64_t n_head_kv, int64_t hd) {
    return size_t(std::max<int64_t>(n, 0) * n_head_kv * 8 * (n_head / std::max<int64_t>(n_head_kv, 1)) * (hd + 2));
}

template <typename T>
DecodeAttention<T>::~DecodeAttention() = default;

template <typename T>
int64_t DecodeAttention<T>::jobs() const {
    return s_->jobs;
}

template <typename T>
bool DecodeAttention<T>::inline_on_caller() const {
    if (s_->n != 1 || s_->plans.empty()) return false;
    const auto& plan = s_->plans[0];
    return plan.n_seg == 1 && plan.stop - plan.first < kInlineDecodePositions && inline_decode.load(std::memory_order_relaxed);
}

template <typename T>
void DecodeAttention<T>::run(int64_t begin, int64_t end) {
    State& s = *s_;
    const int64_t group = s.group, hd = s.hd, n_head_kv = s.n_head_kv;
    std::vector<float> rounded, m(static_cast<size_t>(group)), l(static_cast<size_t>(group));
    int64_t i = 0;
    for (int64_t job = begin; job < end; ++job) {
        while (job >= s.plans[size_t(i)].first_job + n_head_kv * s.plans[size_t(i)].n_seg) ++i;
        const auto& plan = s.plans[size_t(i)];
        const DecodeQuery<T>& query = s.queries[i];
        const int64_t local = job - plan.first_job, kvh = local / plan.n_seg, seg = local % plan.n_seg;
        const float* q = query_group<T>(*s.isa_kernels, query.q, 0, kvh, s.n_head, group, hd, rounded);
        const T* k_head = query.k_cache + kvh * query.n_ctx * hd;
        const T* v_head = query.v_cache + kvh * query.n_ctx * hd;
        if (plan.n_seg == 1) {
            float* o = query.out + kvh * group * hd;
            attend_range(s.attend, q, group, k_head, v_head, hd, plan.first, plan.stop, s.scale, o, m.data(), l.data());
            normalize(o, l.data(), group, hd);
        } else {
            attend_segment(s.attend, q, group, k_head, v_head, hd, plan.first, plan.stop, seg, plan.n_seg, s.scale,
                           s.partial + plan.partial_at + local * s.stride);
        }
    }
}

template <typename T>
void DecodeAttention<T>::combine() {
    State& s = *s_;
    for (int64_t i = 0; i < s.n; ++i) {
        const auto& plan = s.plans[size_t(i)];
        if (plan.n_seg == 1) continue;
        for (int64_t kvh = 0; kvh < s.n_head_kv; ++kvh) {
            combine_segments(s.partial + plan.partial_at + kvh * plan.n_seg * s.stride, plan.n_seg, s.group, s.hd,
                             s.queries[i].out + kvh * s.group * s.hd);
        }
    }
}

template class DecodeAttention<float>;
template class DecodeAttention<uint16_t>;

}  // namespace ggufsm
