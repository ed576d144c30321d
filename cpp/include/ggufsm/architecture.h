// Model-level validation of a parsed GGUF file: the architecture is one this
// runtime runs, its hyperparameters are present and consistent, every tensor
// it needs is there with the shape the hyperparameters imply, every tensor
// type is one the kernels run, and the tokenizer is a known kind whose
// vocabulary matches the embedding.
//
// What each architecture needs is data (architecture.cpp: one table of
// hyperparameter keys and one of tensor names and shapes per architecture),
// read by one generic checker.
#pragma once
#include <cstdint>
#include <string>

#include "ggufsm/gguf.h"

namespace ggufsm::gguf {

// The hyperparameters as the forward pass uses them, defaults resolved.
struct HyperParameters {
    std::string architecture;     // "llama" | "gemma3"
    uint64_t n_ctx_train = 0;     // {arch}.context_length
    uint64_t n_embd = 0;          // {arch}.embedding_length
    uint64_t n_layer = 0;         // {arch}.block_count
    uint64_t n_ff = 0;            // {arch}.feed_forward_length
    uint64_t n_head = 0;          // {arch}.attention.head_count
    uint64_t n_head_kv = 0;       // {arch}.attention.head_count_kv (default: n_head)
    uint64_t head_dim_k = 0;      // {arch}.attention.key_length (default: n_embd / n_head)
    uint64_t head_dim_v = 0;      // {arch}.attention.value_length (default: n_embd / n_head)
    uint64_t n_rot = 0;           // {arch}.rope.dimension_count (default: head_dim_k)
    uint64_t sliding_window = 0;  // {arch}.attention.sliding_window (0: none)
    uint64_t n_vocab = 0;         // token_embd.weight ne[1] == tokenizer.ggml.tokens length
    double rms_eps = 0;           // {arch}.attention.layer_norm_rms_epsilon
    double rope_freq_base = 10000.0;  // {arch}.rope.freq_base
    bool output_tied = false;     // no output.weight: the embedding is reused as the output projection
    std::string tokenizer_model;  // tokenizer.ggml.model: "gpt2" (byte-level BPE) | "llama" (SentencePiece)
};

// Throws ggufsm::Error: UnsupportedModel for an unknown architecture,
// tokenizer kind or tensor type the kernels do not run; InvalidModel for a
// missing or inconsistent hyperparameter, tensor or vocabulary. Every message
// names the key or tensor and a byte offset.
HyperParameters validate_model(const File& file);

// The architectures this runtime runs, for messages and `inspect`.
const char* known_architectures();

}  // namespace ggufsm::gguf
