// The architectures this runtime runs, each declared once as data, and the
// one checker that reads a declaration against a parsed file.
//
// A declaration (architectures.cpp) says everything the runtime knows about
// an architecture: its hyperparameter keys, its tensors and their shapes as
// functions of the hyperparameters, the role each tensor plays in the
// forward, and the forward's switches that no file stores (RoPE style, gated
// activation, embedding scale, which layers attend a sliding window). The
// checker (validate.cpp) turns a file and its declaration into
// HyperParameters; the fused forward (forward/) is built from them and the
// declared tensors; Python's numpy oracle (reference/architectures/) reads the
// same HyperParameters and is tested against the declarations.
//
// Adding an architecture: one declaration in architectures.cpp, plus its
// numpy oracle.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace ggufsm::gguf {

enum class RopeStyle { Normal, Neox };     // rotate pairs (2i, 2i+1) | (i, i + n_rot/2)
enum class FeedForward { SwiGLU, GeGLU };  // silu(gate) * up | gelu(gate) * up
const char* rope_style_name(RopeStyle style);    // "normal" | "neox"
const char* feed_forward_name(FeedForward ffn);  // "swiglu" | "geglu"

// The hyperparameters as the forward uses them: the file's, validated, with
// defaults resolved, and the architecture's switches.
struct HyperParameters {
    // ---- from the file ("{arch}." keys unless noted)
    std::string architecture;     // general.architecture
    uint64_t n_ctx_train = 0;     // context_length
    uint64_t n_embd = 0;          // embedding_length
    uint64_t n_layer = 0;         // block_count
    uint64_t n_ff = 0;            // feed_forward_length
    uint64_t n_head = 0;          // attention.head_count
    uint64_t n_head_kv = 0;       // attention.head_count_kv (default: n_head)
    uint64_t head_dim_k = 0;      // attention.key_length (default: n_embd / n_head)
    uint64_t head_dim_v = 0;      // attention.value_length (default: n_embd / n_head)
    uint64_t n_rot = 0;           // rope.dimension_count (default: head_dim_k)
    uint64_t sliding_window = 0;  // attention.sliding_window: positions a sliding layer attends (0: none)
    uint64_t n_vocab = 0;         // token_embd.weight ne[1] == tokenizer.ggml.tokens length
    double rms_eps = 0;           // attention.layer_norm_rms_epsilon
    double rope_freq_base = 0;    // rope.freq_base (default: the declaration's)
    double final_logit_softcap = 0;  // final_logit_softcapping: logits = cap * tanh(logits / cap); 0: none
    bool output_tied = false;     // no output.weight: the embedding is reused as the output projection
    std::string tokenizer_model;  // tokenizer.ggml.model: "gpt2" (byte-level BPE) | "llama" (SentencePiece)

    // ---- from the declaration (no file stores them)
    RopeStyle rope_style = RopeStyle::Normal;
    FeedForward ffn = FeedForward::SwiGLU;
    bool qk_norm = false;            // attn_q_norm / attn_k_norm [head_dim_k], per head, before RoPE
    bool post_norms = false;         // post_attention_norm / post_ffw_norm [n_embd] before the residual
    double embd_scale = 1.0;         // multiplies the token embedding
    double attn_scale = 0;           // multiplies q.k: 1 / sqrt(head_dim_k)
    uint64_t swa_period = 0;         // with a sliding window, layer i slides unless (i + 1) % swa_period == 0
    double rope_freq_base_local = 0; // RoPE base of the sliding layers

    bool layer_slides(uint64_t layer) const {
        return sliding_window > 0 && swa_period > 0 && (layer + 1) % swa_period != 0;
    }
};

// ------------------------------------------------------------ declarations

// A metadata key "{arch}.<suffix>" and the HyperParameters field it sets:
// a count (integer in 1..2^31, or 0.. when zero_allowed) or a real (finite,
// positive). A real that is absent takes `fallback`; an absent count keeps 0
// and the checker derives it (see HyperParameters).
struct KeyRule {
    const char* suffix;
    bool required;
    uint64_t HyperParameters::*count = nullptr;
    double HyperParameters::*real = nullptr;
    double fallback = 0;
    bool zero_allowed = false;
};

// Where the forward uses a tensor (forward/forward.h's weights).
enum class TensorRole {
    TokenEmbd, OutputNorm, Output,                        // once per model
    AttnNorm, AttnQ, AttnK, AttnV, AttnQNorm, AttnKNorm,  // once per layer
    AttnOutput, PostAttnNorm, FfnNorm, FfnGate, FfnUp, FfnDown, PostFfnNorm,
};

// A tensor and its ggml-order shape as a function of the hyperparameters;
// `formula` is the same shape in words, for messages. Per-layer names get
// "blk.{i}." in front.
struct TensorRule {
    const char* name;
    TensorRole role;
    bool per_layer;
    bool optional;
    std::vector<uint64_t> (*shape)(const HyperParameters&);
    const char* formula;
};

// The forward's switches that files do not store.
struct ForwardSwitches {
    RopeStyle rope_style = RopeStyle::Normal;
    FeedForward ffn = FeedForward::SwiGLU;
    bool scale_embedding = false;      // multiply the token embedding by sqrt(n_embd)
    uint64_t swa_period = 0;           // see HyperParameters; 0: no layer slides
    double rope_freq_base_local = 0;   // RoPE base of the sliding layers
};

struct Architecture {
    const char* name;                  // general.architecture
    std::vector<KeyRule> keys;
    std::vector<TensorRule> tensors;
    ForwardSwitches forward;

    bool has_role(TensorRole role) const;
};

// Every architecture this runtime runs (architectures.cpp).
const std::vector<Architecture>& architectures();
// "llama, gemma3", for messages and `inspect`.
std::string known_architectures();

// ---------------------------------------------------------------- checking

// The file's architecture, hyperparameters, tensors (presence and shape),
// tensor types (ones the kernels run) and tokenizer (a known kind whose
// vocabulary matches the embedding). Throws ggufsm::Error: UnsupportedModel
// for an unknown architecture, tokenizer kind, tensor type, RoPE scaling,
// unequal key and value widths, or a tensor the declaration does not name;
// InvalidModel for a missing or inconsistent hyperparameter, tensor or
// vocabulary. Every message names the key or tensor and a byte offset.
HyperParameters validate_model(const File& file, const Architecture** architecture = nullptr);

}  // namespace ggufsm::gguf
