// The architectures, one declaration each (architecture.h). The numpy oracle
// of each lives in reference/architectures/ (llama.py, gemma3.py) and is
// tested against these declarations (tests/inference/test_declarations.py).
#include <cmath>

#include "gguf/architecture.h"

namespace ggufsm::gguf {

namespace {

using HP = HyperParameters;
using Shape = std::vector<uint64_t>;
using R = TensorRole;

// ------------------------------------------------------------------- llama
//
// SmolLM2 and the llama family: x += wo . attention(rope(wq . norm(x)), ...),
// x += w_down . (silu(w_gate . norm(x)) * (w_up . norm(x))).

const std::vector<KeyRule> kLlamaKeys = {
    {"context_length", true, &HP::n_ctx_train},
    {"embedding_length", true, &HP::n_embd},
    {"block_count", true, &HP::n_layer},
    {"feed_forward_length", true, &HP::n_ff},
    {"attention.head_count", true, &HP::n_head},
    {"attention.head_count_kv", false, &HP::n_head_kv},
    {"attention.key_length", false, &HP::head_dim_k},
    {"attention.value_length", false, &HP::head_dim_v},
    {"attention.layer_norm_rms_epsilon", true, nullptr, &HP::rms_eps},
    {"rope.dimension_count", false, &HP::n_rot},
    {"rope.freq_base", false, nullptr, &HP::rope_freq_base, 10000.0},
};

const std::vector<TensorRule> kLlamaTensors = {
    {"token_embd.weight", R::TokenEmbd, false, false, [](const HP& h) { return Shape{h.n_embd, h.n_vocab}; }, "[embedding_length, n_vocab]"},
    {"output_norm.weight", R::OutputNorm, false, false, [](const HP& h) { return Shape{h.n_embd}; }, "[embedding_length]"},
    {"output.weight", R::Output, false, true, [](const HP& h) { return Shape{h.n_embd, h.n_vocab}; }, "[embedding_length, n_vocab]"},
    {"attn_norm.weight", R::AttnNorm, true, false, [](const HP& h) { return Shape{h.n_embd}; }, "[embedding_length]"},
    {"attn_q.weight", R::AttnQ, true, false, [](const HP& h) { return Shape{h.n_embd, h.n_head * h.head_dim_k}; }, "[embedding_length, head_count * key_length]"},
    {"attn_k.weight", R::AttnK, true, false, [](const HP& h) { return Shape{h.n_embd, h.n_head_kv * h.head_dim_k}; }, "[embedding_length, head_count_kv * key_length]"},
    {"attn_v.weight", R::AttnV, true, false, [](const HP& h) { return Shape{h.n_embd, h.n_head_kv * h.head_dim_v}; }, "[embedding_length, head_count_kv * value_length]"},
    {"attn_output.weight", R::AttnOutput, true, false, [](const HP& h) { return Shape{h.n_head * h.head_dim_v, h.n_embd}; }, "[head_count * value_length, embedding_length]"},
    {"ffn_norm.weight", R::FfnNorm, true, false, [](const HP& h) { return Shape{h.n_embd}; }, "[embedding_length]"},
    {"ffn_gate.weight", R::FfnGate, true, false, [](const HP& h) { return Shape{h.n_embd, h.n_ff}; }, "[embedding_length, feed_forward_length]"},
    {"ffn_up.weight", R::FfnUp, true, false, [](const HP& h) { return Shape{h.n_embd, h.n_ff}; }, "[embedding_length, feed_forward_length]"},
    {"ffn_down.weight", R::FfnDown, true, false, [](const HP& h) { return Shape{h.n_ff, h.n_embd}; }, "[feed_forward_length, embedding_length]"},
};

Architecture llama() {
    ForwardSwitches forward;
    forward.rope_style = RopeStyle::Normal;
    forward.ffn = FeedForward::SwiGLU;
    return {"llama", kLlamaKeys, kLlamaTensors, forward};
}

// ------------------------------------------------------------------ gemma3
//
// Gemma 3 (270M) as llama.cpp runs a GGUF file converted from Hugging Face:
// the llama block with the embedding scaled by sqrt(n_embd), per-head RMSNorm
// of q and k before RoPE, RMSNorm of the attention and feed-forward outputs
// before they join the residual, GELU-gated feed-forward, NEOX RoPE, and 5 of
// every 6 layers attending a sliding window with RoPE base 10000 (Hugging
// Face's rope_local_base_freq, which the files do not carry; llama.cpp's
// set_swa_pattern(6)). Attention scale 1/sqrt(key_length): Hugging Face's
// query_pre_attn_scalar is key_length for these models.

Architecture gemma3() {
    std::vector<KeyRule> keys = kLlamaKeys;
    for (KeyRule& key : keys) {
        const std::string suffix = key.suffix;
        if (suffix == "attention.key_length" || suffix == "attention.value_length") key.required = true;
        if (suffix == "rope.freq_base") key.fallback = 1000000.0;
    }
    keys.push_back({"attention.sliding_window", false, &HP::sliding_window, nullptr, 0, true});
    keys.push_back({"final_logit_softcapping", false, nullptr, &HP::final_logit_softcap, 0, true});

    std::vector<TensorRule> tensors = kLlamaTensors;
    tensors.push_back({"attn_q_norm.weight", R::AttnQNorm, true, false, [](const HP& h) { return Shape{h.head_dim_k}; }, "[key_length]"});
    tensors.push_back({"attn_k_norm.weight", R::AttnKNorm, true, false, [](const HP& h) { return Shape{h.head_dim_k}; }, "[key_length]"});
    tensors.push_back({"post_attention_norm.weight", R::PostAttnNorm, true, false, [](const HP& h) { return Shape{h.n_embd}; }, "[embedding_length]"});
    tensors.push_back({"post_ffw_norm.weight", R::PostFfnNorm, true, false, [](const HP& h) { return Shape{h.n_embd}; }, "[embedding_length]"});

    ForwardSwitches forward;
    forward.rope_style = RopeStyle::Neox;
    forward.ffn = FeedForward::GeGLU;
    forward.scale_embedding = true;
    forward.swa_period = 6;
    forward.rope_freq_base_local = 10000.0;
    return {"gemma3", keys, tensors, forward};
}

}  // namespace

const std::vector<Architecture>& architectures() {
    static const std::vector<Architecture> table = {llama(), gemma3()};
    return table;
}

}  // namespace ggufsm::gguf
