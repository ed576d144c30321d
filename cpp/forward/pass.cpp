// One forward pass over rows that belong to one or several sequences
// (forward.h, run_pass): the layers run once over all the rows, so every
// weight matrix is read once per pass; only the KV store and the attention
// go segment by segment, each in its own sequence's cache.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>

#include "forward/forward.h"
#include "kernels/quant.h"
#include "kernels/repack.h"

namespace ggufsm {

namespace {

// Rows below which an op runs inline rather than on the pool: the hand-off costs about 2 us on a
// quiet machine, and up to a descheduled worker's time slice on a busy one (a batched decode step of
// 4 sessions spent 10 of its 93 ms in norms, rope and residual adds handed off, at load 7-9).
// The cheap ops (a norm or add is ~0.2 us a row) stay inline for any decode batch (up to 8 sessions);
// the activations (an exp or tanh per element of n_ff) split once a pass has more than 12288 of them
// (8 SmolLM2 rows, fewer than 2 of Gemma 3's): below, the split saves a few microseconds on a quiet
// machine and its hand-off cost 3.5 of an 82 ms 4-session step at load 12.
constexpr int64_t kSplitCheapRows = 9;
constexpr int64_t kInlineActivationElements = 8 * 1536;

// fn(begin, end) over rows [0, n): on the pool when there are at least min_rows, inline otherwise.
template <typename Fn>
void for_rows(ThreadPool& pool, int64_t n, Fn&& fn, int64_t min_rows = kSplitCheapRows) {
    if (n < min_rows) {
        fn(int64_t(0), n);
    } else {
        pool.parallel_for(n, [&](int64_t begin, int64_t end, int) { fn(begin, end); });
    }
}

void add_into(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

using Clock = std::chrono::steady_clock;

int64_t ns_since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}

std::atomic<bool> layer_walk{true};
// A walked step's products cut into parts of about this many bytes (0: as the dispatched step cuts them,
// one part per thread below 8 MiB): set_walk_part_bytes.
std::atomic<int64_t> walk_part_bytes{0};
// Whether a pass's rotations are computed once (rope_table) or again for every layer's q and k: set_rope_once.
std::atomic<bool> rope_once{true};

// What the members of a team walking one decode step share besides the session's scratch: the store of
// the attention's segment partials (each member makes the same plan, attention.h DecodeAttention).
struct TeamShared {
    std::vector<float> partials;
    std::mutex profile;  // the members' additions to the profile (profiling only)
};

// One pass over the op list below, run one of two ways:
//  * dispatched (team == nullptr): the calling thread walks the ops, and each product, and the
//    attention, is one pool dispatch (parallel_for) with its barrier;
//  * walked by a team (a one-session decode step, run_pass): every pool thread walks the same ops at
//    once (ThreadPool::run_team), each op a Team::phase: a product's parts (its own share first) and
//    the attention's jobs spread over the members, a small op (a norm, rope, the KV store, a
//    quantization, a residual add) run whole by member 0 while the others go on
//    to the next product and read ahead their share of its weights until its input is ready. The
//    products keep the dispatched split (SharedParts) and the attention its plan, and the small ops
//    their order, so every value has the same bits.
class Pass {
public:
    Pass(const LlamaModel& model, ForwardScratch& s, const std::vector<PassSegment>& segments, ForwardProfile* profile,
         Team* team = nullptr, int member = 0, TeamShared* shared = nullptr)
        : model_(model), hp_(model.hparams()), s_(s), segments_(segments), pool_(model.pool()), profile_(profile),
          one_token_each_(segments.size() > 1 && std::all_of(segments.begin(), segments.end(), [](const PassSegment& seg) {
                              return seg.rows == 1;
                          })),
          team_(team), member_(member), shared_(shared) {}

    void run(const int64_t* tokens, int64_t n) {
        const Clock::time_point started = profile_ ? Clock::now() : Clock::time_point{};
        if (team_) {
            // While member 0 embeds, norms and quantizes, the others read ahead the first layer's wq/wk/wv.
            const LlamaLayer& first = model_.weights().layers[0];
            read_ahead_next({{&first.wq, s_.q.data()}, {&first.wk, s_.k.data()}, {&first.wv, s_.v.data()}});
        }
        timed(ForwardOp::Embed, [&] {
            for (const PassSegment& seg : segments_) {
                for (int64_t t = 0; t < seg.rows; ++t) s_.positions[size_t(seg.row_begin + t)] = int32_t(seg.start_pos + t);
            }
            embed(tokens, n);
        });
        for (int64_t layer = 0; layer < hp_.n_layer; ++layer) {
            attention_block(layer, n);
            feed_forward_block(layer, n);
        }
        output_logits();
        if (profile_ && !team_) {  // a team's pass: run_pass counts it (its members end apart)
            profile_->passes += 1;
            profile_->rows += n;
            profile_->pass_ns += ns_since(started);
        }
    }

private:
    // fn(), its wall time added to op's (and the weight type's) account when profiling; in a team, a
    // phase of one part: run by member 0 (the others go on).
    template <typename Fn>
    void timed(ForwardOp op, Fn&& fn, TensorType type = TensorType::F32) {
        if (team_) {
            walk(op, 1, [&](int64_t) {
                const Clock::time_point started = profile_ ? Clock::now() : Clock::time_point{};
                fn();
                if (profile_) add_to_profile(op, type, ns_since(started));
            });
            return;
        }
        if (!profile_) {
            fn();
            return;
        }
        const Clock::time_point started = Clock::now();
        fn();
        const size_t o = size_t(op), t = std::min<size_t>(size_t(type), ForwardProfile::kTypes - 1);
        profile_->ns[o][t] += ns_since(started);
        profile_->calls[o][t] += 1;
    }

    void embed(const int64_t* tokens, int64_t n) {
        const WeightView& e = model_.token_embd();
        for (int64_t t = 0; t < n; ++t) {
            float* row = &s_.x[size_t(t * hp_.n_embd)];
            dequantize_weight_row(e, tokens[t], row);  // either layout: a tied embedding is repacked after the first pass
            if (hp_.embd_scale != 1.0f) {
                for (int64_t i = 0; i < hp_.n_embd; ++i) row[i] *= hp_.embd_scale;
            }
        }
    }

    using Outputs = std::initializer_list<std::pair<const WeightView*, float*>>;

    // outputs' products grouped by activation format, in format order: project's dispatches.
    struct Groups {
        std::array<std::array<SharedProduct, kMaxSharedProducts>, 3> products{};
        std::array<size_t, 3> count{};
    };
    static Groups group_by_format(Outputs outputs) {
        Groups g;
        for (const auto& [w, y] : outputs) {
            const size_t format = size_t(activation_format_for(w->type));
            g.products[format][g.count[format]++] = SharedProduct{w, y};
        }
        return g;
    }

    // y_i = x . W_i^T for each (W_i, y_i), quantizing x once per activation format, and the
    // products of one format in one pool dispatch (matmul_shared). next: the products that come
    // after these; while the calling thread works between the two (a norm, the attention), the
    // pool's threads read ahead the first weights of their shares of them (ThreadPool's read-ahead).
    // next's outputs are those its own project() will name: a walking member keeps the parts it cuts
    // for its read-ahead for that project (read_ahead_next), where outputs and all match.
    void project(ForwardOp op, const float* x, int64_t n, Outputs outputs, Outputs next = {}) {
        if (team_) {
            project_in_team(op, x, n, outputs, next);
            return;
        }
        const Groups groups = group_by_format(outputs);
        for (size_t format = 0; format < 3; ++format) {
            const size_t count = groups.count[format];
            if (count == 0) continue;
            const SharedProduct* products = groups.products[format].data();
            // The read-ahead for the next dispatch: this set's next format, else the first of `next`.
            ReadAhead then;
            bool ahead = false;
            for (size_t f = format + 1; f < 3 && !ahead; ++f) {
                if (groups.count[f]) then = read_ahead_for(groups.products[f].data(), groups.count[f], pool_), ahead = true;
            }
            if (!ahead && next.size()) {
                const Groups after = group_by_format(next);
                for (size_t f = 0; f < 3 && !ahead; ++f) {
                    if (after.count[f]) then = read_ahead_for(after.products[f].data(), after.count[f], pool_), ahead = true;
                }
            }
            QuantizedActivations& a = s_.activations[format];
            timed(ForwardOp::Quantize, [&] { a.quantize(x, n, products[0].w->cols, products[0].w->type, pool_); });
            timed_products(op, products, count, [&] { matmul_shared(products, count, a, pool_, ahead ? &then : nullptr); });
        }
    }

    // project() walked by a team: a phase quantizes x for every format, then one phase takes every
    // format's product parts (they read different activations), each member setting its read-ahead of
    // the next products' first weights once it has no part left to take.
    void project_in_team(ForwardOp op, const float* x, int64_t n, Outputs outputs, Outputs next) {
        const Groups groups = group_by_format(outputs);
        timed(ForwardOp::Quantize, [&] {
            for (size_t format = 0; format < 3; ++format) {
                const SharedProduct* products = groups.products[format].data();
                if (groups.count[format]) s_.activations[format].quantize(x, n, products[0].w->cols, products[0].w->type, pool_);
            }
        });
        std::array<std::optional<SharedParts>, 3> parts;
        std::array<int64_t, 4> first{};  // part index where each format's parts start
        const int64_t part_bytes = walk_part_bytes.load(std::memory_order_relaxed);
        const bool prepared = prepared_.cut_for(outputs, part_bytes);
        if (prepared) parts = std::move(prepared_.parts);
        prepared_.count = 0;
        for (size_t format = 0; format < 3; ++format) {
            if (groups.count[format] && !prepared) parts[format].emplace(groups.products[format].data(), groups.count[format], pool_, part_bytes);
            first[format + 1] = first[format] + (parts[format] ? parts[format]->parts() : 0);
        }
        const TensorType type = outputs.begin()->first->type;
        walk(op, first[3], [&](int64_t part) {
            const Clock::time_point started = profile_ ? Clock::now() : Clock::time_point{};
            size_t format = 0;
            while (part >= first[format + 1]) ++format;
            parts[format]->run(part - first[format], s_.activations[format]);
            // A part's time over the members: what the product costs the step's wall, the waits aside.
            if (profile_) add_to_profile(op, type, ns_since(started) / team_->size(), part == 0);
        });
        read_ahead_next(next);
    }

    // team_->phase(member_, parts, fn); when profiling, this member's time in it beside fn's counted as op's wait.
    template <typename Fn>
    void walk(ForwardOp op, int64_t parts, Fn&& fn) {
        if (!profile_) {
            team_->phase(member_, parts, fn);
            return;
        }
        const Clock::time_point entered = Clock::now();
        int64_t ran = 0;
        team_->phase(member_, parts, [&](int64_t part) {
            const Clock::time_point started = Clock::now();
            fn(part);
            ran += ns_since(started);
        });
        const int64_t waited = ns_since(entered) - ran;
        std::lock_guard<std::mutex> lock(shared_->profile);
        profile_->wait_ns[member_ == 0 ? 0 : 1][size_t(op)] += waited;
        profile_->ran_ns[member_ == 0 ? 0 : 1] += ran;
    }

    void add_to_profile(ForwardOp op, TensorType type, int64_t ns, bool call = true) {
        std::lock_guard<std::mutex> lock(shared_->profile);
        const size_t o = size_t(op), t = std::min<size_t>(size_t(type), ForwardProfile::kTypes - 1);
        profile_->ns[o][t] += ns;
        profile_->calls[o][t] += call ? 1 : 0;
    }

    // A team member's read-ahead for its next waits: its share of the first format's products of `next`. The
    // parts it cuts for that are kept (prepared_) for the project of `next`: cut here, after the member's share
    // of this project and before its wait, rather than on member 0's way from its small ops into that project.
    void read_ahead_next(Outputs next) {
        prepared_.count = 0;
        for (auto& parts : prepared_.parts) parts.reset();
        if (next.size() == 0) {
            team_->set_read_ahead(member_, ReadAhead{});
            return;
        }
        const Groups after = group_by_format(next);
        const int64_t part_bytes = walk_part_bytes.load(std::memory_order_relaxed);
        for (size_t f = 0; f < 3; ++f) {
            if (after.count[f]) prepared_.parts[f].emplace(after.products[f].data(), after.count[f], pool_, part_bytes);
        }
        if (next.size() <= prepared_.products.size()) {
            std::copy(next.begin(), next.end(), prepared_.products.begin());
            prepared_.count = next.size();
            prepared_.part_bytes = part_bytes;
        }
        for (const auto& parts : prepared_.parts) {
            if (!parts) continue;
            // A member's share of the parts, not part `member`: even the dispatched split cuts a product into
            // several parts a thread (per_thread), and read_ahead_for's part t would be member 0's share.
            team_->set_read_ahead(member_, parts->read_ahead(team_->size()));
            return;
        }
    }

    // fn(), its wall time shared out to the products' weight types by the bytes each holds
    // (Gemma 3's wv is Q8_0 beside Q5_0 wq/wk), so the profile keeps a rate per type.
    template <typename Fn>
    void timed_products(ForwardOp op, const SharedProduct* products, size_t count, Fn&& fn) {
        if (!profile_) {
            fn();
            return;
        }
        const Clock::time_point started = Clock::now();
        fn();
        const int64_t ns = ns_since(started);
        double total = 0;
        for (size_t k = 0; k < count; ++k) total += double(products[k].w->rows) * double(products[k].w->row_bytes);
        const size_t o = size_t(op);
        for (size_t k = 0; k < count; ++k) {
            const size_t t = std::min<size_t>(size_t(products[k].w->type), ForwardProfile::kTypes - 1);
            profile_->ns[o][t] += int64_t(double(ns) * double(products[k].w->rows) * double(products[k].w->row_bytes) / total);
            profile_->calls[o][t] += 1;
        }
    }

    // x += [post_attn_norm] wo . attention(q, k, v) over each segment's cache, with q, k, v from attn_norm(x).
    void attention_block(int64_t layer, int64_t n) {
        const LlamaLayer& l = model_.weights().layers[size_t(layer)];
        const int64_t hd = hp_.head_dim, q_width = hp_.n_head * hd, kv_width = hp_.n_head_kv * hd;
        const bool slides = hp_.layer_slides(layer);
        const int64_t n_embd = hp_.n_embd, n_head = hp_.n_head, n_head_kv = hp_.n_head_kv;
        timed(ForwardOp::Norm, [&] {
            for_rows(pool_, n, [&](int64_t b, int64_t e) {
                rmsnorm(&s_.x[size_t(b * n_embd)], l.attn_norm, &s_.xb[size_t(b * n_embd)], e - b, n_embd, hp_.rms_eps);
            });
        });
        project(ForwardOp::MatmulQkv, s_.xb.data(), n, {{&l.wq, s_.q.data()}, {&l.wk, s_.k.data()}, {&l.wv, s_.v.data()}},
                {{&l.wo, s_.xb.data()}});

        // Per token: q/k norms and RoPE.
        timed(ForwardOp::QkNormRope, [&] {
            const RopeTable& rotations = rope_table(slides, n);
            for_rows(pool_, n, [&](int64_t b, int64_t e) {
                float* q = &s_.q[size_t(b * q_width)];
                float* k = &s_.k[size_t(b * kv_width)];
                if (l.q_norm) {
                    rmsnorm(q, l.q_norm, q, (e - b) * n_head, hd, hp_.rms_eps);
                    rmsnorm(k, l.k_norm, k, (e - b) * n_head_kv, hd, hp_.rms_eps);
                }
                rope(q, e - b, n_head, hd, rotations, b, hp_.rope_neox);
                rope(k, e - b, n_head_kv, hd, rotations, b, hp_.rope_neox);
            });
        });
        if (team_) {
            team_attention(layer, slides);
        } else if (one_token_each_) {
            decode_attention(layer, slides);
        } else {
            segment_attention(layer, slides);
        }
        project(ForwardOp::MatmulOut, s_.att.data(), n, {{&l.wo, s_.xb.data()}}, {{&l.w_gate, s_.gate.data()}, {&l.w_up, s_.up.data()}});
        residual(l.post_attn_norm, n);
    }

    // The pass's rotations at its rows' positions with a sliding layer's base (Gemma 3's local layers) or
    // the global one, computed on first use and then shared by every layer's q and k: the same floats rope()
    // computes for each. The members of a team each hold their own (a small op runs on member 0 alone, and
    // only member 0's is ever computed); a dispatched pass computes it here, on the calling thread, before
    // any rows are split.
    const RopeTable& rope_table(bool slides, int64_t n) {
        RopeTable& table = rope_tables_[slides ? 1 : 0];
        if (table.n_tok != n || !rope_once.load(std::memory_order_relaxed)) {
            table.compute(s_.positions.data(), n, hp_.n_rot, slides ? hp_.rope_freq_base_local : hp_.rope_freq_base);
        }
        return table;
    }

    // A decode step's queries, one per segment (its one row), over layer's caches: every member of a team
    // makes the same, so each can run any of the attention's jobs.
    const DecodeQuery<KvCache::Element>* decode_queries(int64_t layer) {
        const int64_t q_width = hp_.n_head * hp_.head_dim, kv_width = hp_.n_head_kv * hp_.head_dim;
        queries_.resize(segments_.size());
        for (size_t i = 0; i < segments_.size(); ++i) {
            const PassSegment& seg = segments_[i];
            const size_t layer_offset = size_t(layer * kv_width * seg.kv->kv_ctx);
            queries_[i] = DecodeQuery<KvCache::Element>{&s_.q[size_t(seg.row_begin * q_width)], &seg.kv->k[layer_offset],
                                                        &seg.kv->v[layer_offset], &s_.att[size_t(seg.row_begin * q_width)],
                                                        seg.kv->kv_ctx, seg.start_pos};
        }
        return queries_.data();
    }

    // Every session's k, v of a decode step into its cache at layer (a few hundred halves each), on this thread.
    void store_decode_kv(int64_t layer) {
        const int64_t hd = hp_.head_dim, n_head_kv = hp_.n_head_kv, kv_width = n_head_kv * hd;
        for (const PassSegment& seg : segments_) {
            const size_t layer_offset = size_t(layer * kv_width * seg.kv->kv_ctx);
            const int64_t t = seg.row_begin;
            for (int64_t h = 0; h < n_head_kv; ++h) {
                const size_t from = size_t((t * n_head_kv + h) * hd);
                store_kv(&s_.k[from], &s_.v[from], &seg.kv->k[layer_offset], &seg.kv->v[layer_offset], seg.kv->kv_ctx, hd, h,
                         seg.start_pos);
            }
        }
    }

    // A batched decode step dispatched: the k, v stores, then all the queries in one attention dispatch.
    void decode_attention(int64_t layer, bool slides) {
        const DecodeQuery<KvCache::Element>* queries = decode_queries(layer);
        timed(ForwardOp::KvStore, [&] { store_decode_kv(layer); });
        timed(ForwardOp::Attention, [&] {
            attention_decode_batch(queries, int64_t(segments_.size()), hp_.n_head, hp_.n_head_kv, hp_.head_dim, hp_.attn_scale,
                                   slides ? hp_.sliding_window : 0, pool_);
        });
    }

    // One session's decode step walked by a team: a phase stores the k, v; the attention's plan as attention_decode_batch makes it for these queries (the
    // same bits as the dispatched step), every member making the same plan over one partials store. One token
    // below 256 positions runs in one phase (as attention() runs it on the calling thread); else a phase of
    // the jobs, then one combining them.
    void team_attention(int64_t layer, bool slides) {
        const DecodeQuery<KvCache::Element>* queries = decode_queries(layer);
        timed(ForwardOp::KvStore, [&] { store_decode_kv(layer); });
        DecodeAttention<KvCache::Element> plan(queries, int64_t(segments_.size()), hp_.n_head, hp_.n_head_kv, hp_.head_dim,
                                               hp_.attn_scale, slides ? hp_.sliding_window : 0, pool_.size(),
                                               shared_->partials.data());
        if (plan.inline_on_caller()) {
            timed(ForwardOp::Attention, [&] { plan.run(0, plan.jobs()); });
            return;
        }
        walk(ForwardOp::Attention, plan.jobs(), [&](int64_t job) {
            const Clock::time_point started = profile_ ? Clock::now() : Clock::time_point{};
            plan.run(job, job + 1);
            if (profile_) add_to_profile(ForwardOp::Attention, TensorType::F32, ns_since(started) / team_->size(), job == 0);
        });
        timed(ForwardOp::Attention, [&] { plan.combine(); });
    }

    // Per segment: its k, v into its cache, then its queries over its cache.
    void segment_attention(int64_t layer, bool slides) {
        const int64_t hd = hp_.head_dim, q_width = hp_.n_head * hd, kv_width = hp_.n_head_kv * hd;
        const int64_t n_head = hp_.n_head, n_head_kv = hp_.n_head_kv;
        for (const PassSegment& seg : segments_) {
            KvCache::Element* k_cache = &seg.kv->k[size_t(layer * kv_width * seg.kv->kv_ctx)];
            KvCache::Element* v_cache = &seg.kv->v[size_t(layer * kv_width * seg.kv->kv_ctx)];
            timed(ForwardOp::KvStore, [&] {
                for_rows(pool_, seg.rows, [&](int64_t b, int64_t e) {
                    for (int64_t t = seg.row_begin + b; t < seg.row_begin + e; ++t) {
                        for (int64_t h = 0; h < n_head_kv; ++h) {
                            const size_t from = size_t((t * n_head_kv + h) * hd);
                            store_kv(&s_.k[from], &s_.v[from], k_cache, v_cache, seg.kv->kv_ctx, hd, h, s_.positions[size_t(t)]);
                        }
                    }
                });
            });
            timed(ForwardOp::Attention, [&] {
                attention(&s_.q[size_t(seg.row_begin * q_width)], k_cache, v_cache, &s_.att[size_t(seg.row_begin * q_width)],
                          seg.rows, seg.start_pos, seg.kv->kv_ctx, n_head, n_head_kv, hd, hp_.attn_scale,
                          slides ? hp_.sliding_window : 0, pool_);
            });
        }
    }

    // x += [post_ffn_norm] w_down . (act(w_gate . h) * (w_up . h)), h = ffn_norm(x).
    void feed_forward_block(int64_t layer, int64_t n) {
        const LlamaLayer& l = model_.weights().layers[size_t(layer)];
        const int64_t n_embd = hp_.n_embd, n_ff = hp_.n_ff;
        timed(ForwardOp::Norm, [&] {
            for_rows(pool_, n, [&](int64_t b, int64_t e) {
                rmsnorm(&s_.x[size_t(b * n_embd)], l.ffn_norm, &s_.xb[size_t(b * n_embd)], e - b, n_embd, hp_.rms_eps);
            });
        });
        project(ForwardOp::MatmulGateUp, s_.xb.data(), n, {{&l.w_gate, s_.gate.data()}, {&l.w_up, s_.up.data()}},
                {{&l.w_down, s_.xb.data()}});
        timed(ForwardOp::Activation, [&] { for_rows(pool_, n, [&](int64_t b, int64_t e) {
            float* gate = &s_.gate[size_t(b * n_ff)];
            const float* up = &s_.up[size_t(b * n_ff)];
            if (hp_.ffn == gguf::FeedForward::SwiGLU) {
                swiglu(gate, up, gate, (e - b) * n_ff);
            } else {
                geglu(gate, up, gate, (e - b) * n_ff);
            }
        }, n * n_ff > kInlineActivationElements ? 1 : n + 1); });
        if (layer + 1 < hp_.n_layer) {
            const LlamaLayer& after = model_.weights().layers[size_t(layer + 1)];
            project(ForwardOp::MatmulDown, s_.gate.data(), n, {{&l.w_down, s_.xb.data()}},
                    {{&after.wq, s_.q.data()}, {&after.wk, s_.k.data()}, {&after.wv, s_.v.data()}});
        } else {
            // The output's product writes one wanting segment's logits straight into its buffer (output_logits).
            float* logits = segments_.size() == 1 ? segments_[0].logits : nullptr;
            project(ForwardOp::MatmulDown, s_.gate.data(), n, {{&l.w_down, s_.xb.data()}}, {{&model_.output(), logits}});
        }
        residual(l.post_ffn_norm, n);
    }

    // x += [post_norm] xb: a block's output joins the residual stream.
    void residual(const float* post_norm, int64_t n) {
        const int64_t n_embd = hp_.n_embd;
        if (post_norm) {
            timed(ForwardOp::Norm, [&] {
                for_rows(pool_, n, [&](int64_t b, int64_t e) {
                    float* out = &s_.xb[size_t(b * n_embd)];
                    rmsnorm(out, post_norm, out, e - b, n_embd, hp_.rms_eps);
                });
            });
        }
        timed(ForwardOp::Residual, [&] {
            for_rows(pool_, n, [&](int64_t b, int64_t e) { add_into(&s_.x[size_t(b * n_embd)], &s_.xb[size_t(b * n_embd)], (e - b) * n_embd); });
        });
    }

    // logits = output . output_norm(x of each wanting segment's last row), in one product
    // over all of them (the output matrix is the largest one a decode step reads).
    void output_logits() {
        const LlamaWeights& w = model_.weights();
        std::vector<const PassSegment*> wanting;
        for (const PassSegment& seg : segments_) {
            if (seg.logits) wanting.push_back(&seg);
        }
        if (wanting.empty()) return;
        const int64_t m = int64_t(wanting.size()), n_embd = hp_.n_embd, n_vocab = hp_.n_vocab;
        timed(ForwardOp::Norm, [&] {
            for (int64_t j = 0; j < m; ++j) {
                const int64_t row = wanting[size_t(j)]->row_begin + wanting[size_t(j)]->rows - 1;
                rmsnorm(&s_.x[size_t(row * n_embd)], w.output_norm, &s_.xb[size_t(j * n_embd)], 1, n_embd, hp_.rms_eps);
            }
        });
        // One segment: straight into its buffer; several: through the scratch.
        float* out = m == 1 ? wanting[0]->logits : s_.logits.data();
        project(ForwardOp::MatmulOutput, s_.xb.data(), m, {{&model_.output(), out}});
        // Timed apart: a batched step's copy (4 x 49,152 floats on SmolLM2) is no softcap, and a model without
        // a softcap shows no softcap row.
        if (m > 1) {
            timed(ForwardOp::LogitsCopy, [&] {
                for (int64_t j = 0; j < m; ++j) {
                    std::memcpy(wanting[size_t(j)]->logits, out + j * n_vocab, size_t(n_vocab) * sizeof(float));
                }
            });
        }
        if (hp_.final_logit_softcap > 0.0f) {
            timed(ForwardOp::Softcap, [&] {
                const float cap = hp_.final_logit_softcap;
                for (int64_t j = 0; j < m; ++j) {
                    float* logits = wanting[size_t(j)]->logits;
                    for (int64_t i = 0; i < n_vocab; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
                }
            });
        }
    }

    const LlamaModel& model_;
    const LlamaHparams& hp_;
    ForwardScratch& s_;
    const std::vector<PassSegment>& segments_;
    ThreadPool& pool_;
    ForwardProfile* profile_;
    const bool one_token_each_;  // a batched decode step: several segments of one row each
    Team* team_;                 // the team walking this pass, or nullptr (dispatched)
    const int member_;           // this walker's member index in team_
    TeamShared* shared_;
    std::array<RopeTable, 2> rope_tables_;  // [0] the global base's rotations, [1] a sliding layer's (rope_table)
    std::vector<DecodeQuery<KvCache::Element>> queries_;  // a decode step's, one per segment (decode_queries)
    // A walking member's parts of its next product, cut by read_ahead_next: for `count` products (weights and
    // outputs, in order) at part_bytes.
    struct Prepared {
        std::array<std::optional<SharedParts>, 3> parts;  // per activation format
        std::array<std::pair<const WeightView*, float*>, 4> products{};
        size_t count = 0;
        int64_t part_bytes = 0;
        bool cut_for(Outputs outputs, int64_t bytes) const {
            return count == outputs.size() && part_bytes == bytes && std::equal(outputs.begin(), outputs.end(), products.begin());
        }
    } prepared_;
};

}  // namespace


const char* forward_op_name(ForwardOp op) {
    switch (op) {
        case ForwardOp::Embed: return "embed";
        case ForwardOp::Norm: return "norms";
        case ForwardOp::QkNormRope: return "q/k norm + rope";
        case ForwardOp::KvStore: return "kv store";
        case ForwardOp::Attention: return "attention";
        case ForwardOp::Quantize: return "quantize activations";
        case ForwardOp::MatmulQkv: return "matmul wq/wk/wv";
        case ForwardOp::MatmulOut: return "matmul wo";
        case ForwardOp::MatmulGateUp: return "matmul gate/up";
        case ForwardOp::MatmulDown: return "matmul down";
        case ForwardOp::MatmulOutput: return "matmul output (lm head)";
        case ForwardOp::Activation: return "swiglu/geglu";
        case ForwardOp::Residual: return "residual add";
        case ForwardOp::Softcap: return "logit softcap";
        case ForwardOp::LogitsCopy: return "logits copy (batched)";
        case ForwardOp::Count: break;
    }
    return "?";
}

void ForwardScratch::reserve(const LlamaHparams& hp, int64_t n) {
    if (n <= rows) return;
    rows = n;
    const int64_t q_width = hp.n_head * hp.head_dim, kv_width = hp.n_head_kv * hp.head_dim;
    positions.resize(size_t(n));
    x.resize(size_t(n * hp.n_embd));
    xb.resize(x.size());
    q.resize(size_t(n * q_width));
    att.resize(q.size());
    k.resize(size_t(n * kv_width));
    v.resize(k.size());
    gate.resize(size_t(n * hp.n_ff));
    up.resize(gate.size());
}

size_t ForwardScratch::bytes(const LlamaHparams& hp) const {
    const size_t floats = x.size() + xb.size() + q.size() + att.size() + k.size() + v.size() + gate.size() + up.size() + logits.size();
    // Quantized activations: at most one int8 code, a scale per 32 and a sum per 16 per float of the widest input.
    const int64_t widest = std::max(std::max(hp.n_embd, hp.n_ff), hp.n_head * hp.head_dim);
    return floats * sizeof(float) + positions.size() * sizeof(int32_t) + activations.size() * size_t(rows * widest) * 2;
}

void run_pass(const LlamaModel& model, ForwardScratch& scratch, const int64_t* tokens, int64_t n,
              const std::vector<PassSegment>& segments, ForwardProfile* profile) {
    int64_t wanting = 0;
    for (const PassSegment& seg : segments) wanting += seg.logits ? 1 : 0;
    if (wanting > 1) scratch.logits.resize(size_t(wanting * model.hparams().n_vocab));
    const LlamaModel::PassReads reads(model);  // model.output() stays one view for the whole pass
    ThreadPool& pool = model.pool();
    // One session's decode token: the layers walked by the pool's threads as a team (Pass), one dispatch a
    // step instead of ~120 (30 SmolLM2 layers of 4 products each, and the attention). A batched decode step
    // (one token of each of several sessions) is dispatched op by op: walked, it measured 0.985x and 0.92x on a
    // quiet machine (sessions 10 and 11) and 0.60-1.26x under load, member 1 leaving the walk and member 0 running most of it.
    if (n == 1 && segments.size() == 1 && layer_walk.load(std::memory_order_relaxed) && pool.size() > 1) {
        const LlamaHparams& hp = model.hparams();
        TeamShared shared;
        shared.partials.resize(DecodeAttention<KvCache::Element>::max_partial_floats(n, hp.n_head, hp.n_head_kv, hp.head_dim));
        const Clock::time_point started = profile ? Clock::now() : Clock::time_point{};
        pool.run_team([&](Team& team, int member) {
            // The member's walk timed to its leaving, however it leaves (returned, resigned or aborted).
            struct Walked {
                ForwardProfile* profile;
                TeamShared& shared;
                int member;
                Clock::time_point started;
                ~Walked() {
                    if (!profile) return;
                    std::lock_guard<std::mutex> lock(shared.profile);
                    profile->walked_ns[member == 0 ? 0 : 1] += ns_since(started);
                }
            } walked{profile, shared, member, started};
            Pass(model, scratch, segments, profile, &team, member, &shared).run(tokens, n);
        });
        if (profile) {
            profile->passes += 1;
            profile->rows += n;
            profile->pass_ns += ns_since(started);
        }
        return;
    }
    Pass(model, scratch, segments, profile).run(tokens, n);
}

void set_layer_walk(bool on) { layer_walk.store(on); }

void set_walk_part_bytes(int64_t bytes) { walk_part_bytes.store(std::max<int64_t>(0, bytes)); }

void set_rope_once(bool on) { rope_once.store(on); }

}  // namespace ggufsm
