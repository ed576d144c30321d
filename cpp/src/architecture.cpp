// Per-architecture requirements as data, and the one checker that reads them.
#include "ggufsm/architecture.h"

#include <cmath>
#include <vector>

#include "ggufsm/errors.h"

namespace ggufsm::gguf {

namespace {

[[noreturn]] void invalid(const std::string& message) { throw Error(code::InvalidModel, message); }
[[noreturn]] void unsupported(const std::string& message) { throw Error(code::UnsupportedModel, message); }

// ------------------------------------------------------------------ tables

using HP = HyperParameters;

// A hyperparameter key "{arch}.<suffix>": a count (positive integer) or a
// float, stored in one HyperParameters field.
struct HyperParameterRule {
    const char* suffix;
    bool required;
    uint64_t HP::*count = nullptr;
    double HP::*real = nullptr;
};

// A tensor and its ggml-order shape as a function of the hyperparameters.
// `formula` is the same shape in words, for messages.
struct TensorRule {
    const char* name;  // "blk.%d." is prefixed for per-layer tensors
    bool per_layer;
    bool optional;
    std::vector<uint64_t> (*shape)(const HP&);
    const char* formula;
};

struct Architecture {
    const char* name;
    std::vector<HyperParameterRule> hyperparameters;
    std::vector<TensorRule> tensors;
};

const std::vector<HyperParameterRule> kLlamaHyperParameters = {
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
    {"rope.freq_base", false, nullptr, &HP::rope_freq_base},
};

std::vector<HyperParameterRule> gemma3_hyperparameters() {
    std::vector<HyperParameterRule> rules = kLlamaHyperParameters;
    for (HyperParameterRule& rule : rules) {
        const std::string suffix = rule.suffix;
        if (suffix == "attention.key_length" || suffix == "attention.value_length") rule.required = true;
    }
    rules.push_back({"attention.sliding_window", true, &HP::sliding_window});
    return rules;
}

const std::vector<TensorRule> kLlamaTensors = {
    {"token_embd.weight", false, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd, h.n_vocab}; }, "[embedding_length, n_vocab]"},
    {"output_norm.weight", false, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd}; }, "[embedding_length]"},
    {"output.weight", false, true, [](const HP& h) { return std::vector<uint64_t>{h.n_embd, h.n_vocab}; }, "[embedding_length, n_vocab]"},
    {"attn_norm.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd}; }, "[embedding_length]"},
    {"attn_q.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd, h.n_head * h.head_dim_k}; }, "[embedding_length, head_count * key_length]"},
    {"attn_k.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd, h.n_head_kv * h.head_dim_k}; }, "[embedding_length, head_count_kv * key_length]"},
    {"attn_v.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd, h.n_head_kv * h.head_dim_v}; }, "[embedding_length, head_count_kv * value_length]"},
    {"attn_output.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_head * h.head_dim_v, h.n_embd}; }, "[head_count * value_length, embedding_length]"},
    {"ffn_norm.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd}; }, "[embedding_length]"},
    {"ffn_gate.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd, h.n_ff}; }, "[embedding_length, feed_forward_length]"},
    {"ffn_up.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd, h.n_ff}; }, "[embedding_length, feed_forward_length]"},
    {"ffn_down.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_ff, h.n_embd}; }, "[feed_forward_length, embedding_length]"},
};

std::vector<TensorRule> gemma3_tensors() {
    std::vector<TensorRule> rules = kLlamaTensors;
    rules.push_back({"post_attention_norm.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd}; }, "[embedding_length]"});
    rules.push_back({"post_ffw_norm.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.n_embd}; }, "[embedding_length]"});
    rules.push_back({"attn_q_norm.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.head_dim_k}; }, "[key_length]"});
    rules.push_back({"attn_k_norm.weight", true, false, [](const HP& h) { return std::vector<uint64_t>{h.head_dim_k}; }, "[key_length]"});
    return rules;
}

const std::vector<Architecture>& architectures() {
    static const std::vector<Architecture> table = {
        {"llama", kLlamaHyperParameters, kLlamaTensors},
        {"gemma3", gemma3_hyperparameters(), gemma3_tensors()},
    };
    return table;
}

// Counts above this are refused so that products of two stay far from overflow.
constexpr uint64_t kMaxCount = 1ull << 31;

// ------------------------------------------------------------------ helpers

std::string entry_where(const MetadataEntry& entry) {
    return "metadata '" + std::string(entry.key) + "' (entry at offset " + std::to_string(entry.offset) + ")";
}

std::string tensor_where(const TensorInfo& info) {
    return "tensor '" + std::string(info.name) + "' (info at offset " + std::to_string(info.info_offset) + ")";
}

std::string metadata_span(const File& file) {
    if (file.metadata.empty()) return "the file has no metadata (tensor infos from offset 24)";
    return "not among the " + std::to_string(file.metadata.size()) + " metadata entries at offsets " +
           std::to_string(file.metadata.front().offset) + ".." + std::to_string(file.metadata.back().offset);
}

std::string shape_text(const uint64_t* ne, size_t n) {
    std::string text = "[";
    for (size_t i = 0; i < n; ++i) text += (i ? ", " : "") + std::to_string(ne[i]);
    return text + "]";
}

const MetadataEntry& require(const File& file, const std::string& key, const std::string& why) {
    const MetadataEntry* entry = file.find(key);
    if (entry == nullptr) invalid("missing required metadata '" + key + "' (" + why + "): " + metadata_span(file));
    return *entry;
}

std::string_view string_entry(const File& file, const MetadataEntry& entry) {
    if (entry.value.type != ValueType::STRING)
        invalid(entry_where(entry) + ": type is " + value_type_name(entry.value.type) + ", expected STRING");
    return file.string_value(entry.value);
}

uint64_t count_entry(const File& file, const MetadataEntry& entry) {
    if (!is_integer(entry.value.type))
        invalid(entry_where(entry) + ": type is " + value_type_name(entry.value.type) + ", expected an integer");
    const int64_t value = file.integer_value(entry.value);
    if (value < 1 || static_cast<uint64_t>(value) > kMaxCount)
        invalid(entry_where(entry) + ": value " + std::to_string(value) + " is outside 1.." + std::to_string(kMaxCount));
    return static_cast<uint64_t>(value);
}

double real_entry(const File& file, const MetadataEntry& entry) {
    if (!is_float(entry.value.type) && !is_integer(entry.value.type))
        invalid(entry_where(entry) + ": type is " + value_type_name(entry.value.type) + ", expected a float");
    const double value = file.float_value(entry.value);
    if (!std::isfinite(value) || value <= 0)
        invalid(entry_where(entry) + ": value " + std::to_string(value) + " is not a positive finite number");
    return value;
}

// ------------------------------------------------------------------ checks

const Architecture& find_architecture(const File& file, HP& hp) {
    const MetadataEntry& entry = require(file, "general.architecture", "names the model architecture");
    hp.architecture = std::string(string_entry(file, entry));
    for (const Architecture& architecture : architectures())
        if (hp.architecture == architecture.name) return architecture;
    unsupported(entry_where(entry) + ": architecture '" + hp.architecture + "' is not one this runtime runs (" +
                known_architectures() + ")");
}

void check_tensor_types(const File& file) {
    for (const TensorInfo& info : file.tensors) {
        const TensorTypeTraits* traits = tensor_type_traits(info.type);
        if (!traits->supported)
            unsupported(tensor_where(info) + ": type " + traits->name + " is not one this runtime's kernels run");
    }
}

void read_hyperparameters(const File& file, const Architecture& architecture, HP& hp) {
    const std::string prefix = std::string(architecture.name) + ".";
    for (const HyperParameterRule& rule : architecture.hyperparameters) {
        const std::string key = prefix + rule.suffix;
        const MetadataEntry* entry =
            rule.required ? &require(file, key, std::string(architecture.name) + " needs it") : file.find(key);
        if (entry == nullptr) continue;
        if (rule.count) hp.*rule.count = count_entry(file, *entry);
        else hp.*rule.real = real_entry(file, *entry);
    }
    const MetadataEntry* head_count = file.find(prefix + "attention.head_count");
    if (hp.n_head_kv == 0) hp.n_head_kv = hp.n_head;
    if (hp.n_head % hp.n_head_kv != 0)
        invalid(entry_where(*head_count) + ": head_count " + std::to_string(hp.n_head) +
                " is not a multiple of attention.head_count_kv " + std::to_string(hp.n_head_kv));
    if (hp.head_dim_k == 0 || hp.head_dim_v == 0) {
        if (hp.n_embd % hp.n_head != 0)
            invalid(entry_where(*head_count) + ": embedding_length " + std::to_string(hp.n_embd) +
                    " is not a multiple of head_count " + std::to_string(hp.n_head) + " (and no attention.key_length)");
        if (hp.head_dim_k == 0) hp.head_dim_k = hp.n_embd / hp.n_head;
        if (hp.head_dim_v == 0) hp.head_dim_v = hp.n_embd / hp.n_head;
    }
    if (hp.n_rot == 0) hp.n_rot = hp.head_dim_k;
    if (hp.n_rot > hp.head_dim_k || hp.n_rot % 2 != 0) {
        const MetadataEntry* rot = file.find(prefix + "rope.dimension_count");
        invalid(entry_where(*rot) + ": " + std::to_string(hp.n_rot) + " is odd or larger than the head size " +
                std::to_string(hp.head_dim_k));
    }
}

void check_tensor(const File& file, const TensorRule& rule, const std::string& name, const HP& hp,
                  const std::string& why) {
    const TensorInfo* info = file.find_tensor(name);
    if (info == nullptr) {
        if (rule.optional) return;
        std::string span = file.tensors.empty()
                               ? "the file has no tensors"
                               : "not among the " + std::to_string(file.tensors.size()) + " tensor infos at offsets " +
                                     std::to_string(file.tensors.front().info_offset) + ".." +
                                     std::to_string(file.tensors.back().info_offset);
        invalid("missing tensor '" + name + "' (" + why + "): " + span);
    }
    const std::vector<uint64_t> expected = rule.shape(hp);
    bool same = info->n_dims == expected.size();
    for (size_t d = 0; same && d < expected.size(); ++d) same = info->ne[d] == expected[d];
    if (!same)
        invalid(tensor_where(*info) + ": shape " + shape_text(info->ne, info->n_dims) + ", but the hyperparameters give " +
                rule.formula + " = " + shape_text(expected.data(), expected.size()));
}

void check_tensors(const File& file, const Architecture& architecture, HP& hp) {
    // The vocabulary size is the embedding's row count; everything else follows the hyperparameters.
    const TensorInfo* embedding = file.find_tensor("token_embd.weight");
    if (embedding != nullptr && embedding->n_dims == 2) hp.n_vocab = embedding->ne[1];
    hp.output_tied = file.find_tensor("output.weight") == nullptr;
    for (const TensorRule& rule : architecture.tensors) {
        if (!rule.per_layer) {
            check_tensor(file, rule, rule.name, hp, std::string(architecture.name) + " needs it");
            continue;
        }
        for (uint64_t layer = 0; layer < hp.n_layer; ++layer) {
            const std::string why = "block " + std::to_string(layer) + " of block_count " + std::to_string(hp.n_layer);
            check_tensor(file, rule, "blk." + std::to_string(layer) + "." + rule.name, hp, why);
        }
    }
    const MetadataEntry* vocab_size = file.find(std::string(architecture.name) + ".vocab_size");
    if (vocab_size != nullptr && count_entry(file, *vocab_size) != hp.n_vocab)
        invalid(entry_where(*vocab_size) + ": vocab_size " + std::to_string(count_entry(file, *vocab_size)) +
                " differs from token_embd.weight's " + std::to_string(hp.n_vocab) + " rows");
}

// An optional per-token array must have one element of `element` per token.
void check_per_token_array(const File& file, const char* key, ValueType element, uint64_t n_vocab) {
    const MetadataEntry* entry = file.find(key);
    if (entry == nullptr) return;
    if (entry->value.type != ValueType::ARRAY || entry->value.element_type != element)
        invalid(entry_where(*entry) + ": expected an array of " + value_type_name(element));
    if (entry->value.count != n_vocab)
        invalid(entry_where(*entry) + ": " + std::to_string(entry->value.count) + " elements for " +
                std::to_string(n_vocab) + " tokens");
}

void check_tokenizer(const File& file, HP& hp) {
    const MetadataEntry& model = require(file, "tokenizer.ggml.model", "names the tokenizer kind");
    hp.tokenizer_model = std::string(string_entry(file, model));
    if (hp.tokenizer_model != "gpt2" && hp.tokenizer_model != "llama")
        unsupported(entry_where(model) + ": tokenizer '" + hp.tokenizer_model +
                    "' is not one this runtime runs (gpt2, llama)");
    const MetadataEntry& tokens = require(file, "tokenizer.ggml.tokens", "the vocabulary");
    if (tokens.value.type != ValueType::ARRAY || tokens.value.element_type != ValueType::STRING)
        invalid(entry_where(tokens) + ": expected an array of STRING");
    const TensorInfo* embedding = file.find_tensor("token_embd.weight");
    if (tokens.value.count != hp.n_vocab)
        invalid(entry_where(tokens) + ": " + std::to_string(tokens.value.count) + " tokens, but " +
                tensor_where(*embedding) + " has " + std::to_string(hp.n_vocab) + " rows (vocab size)");
    check_per_token_array(file, "tokenizer.ggml.scores", ValueType::FLOAT32, hp.n_vocab);
    check_per_token_array(file, "tokenizer.ggml.token_type", ValueType::INT32, hp.n_vocab);
    if (hp.tokenizer_model == "gpt2") {
        const MetadataEntry& merges = require(file, "tokenizer.ggml.merges", "a gpt2 tokenizer needs its BPE merges");
        if (merges.value.type != ValueType::ARRAY || merges.value.element_type != ValueType::STRING)
            invalid(entry_where(merges) + ": expected an array of STRING");
    }
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
        const MetadataEntry* entry = file.find(key);
        if (entry == nullptr) continue;
        if (!is_integer(entry->value.type))
            invalid(entry_where(*entry) + ": type is " + value_type_name(entry->value.type) + ", expected an integer");
        const int64_t id = file.integer_value(entry->value);
        if (id < 0 || static_cast<uint64_t>(id) >= hp.n_vocab)
            invalid(entry_where(*entry) + ": token id " + std::to_string(id) + " is outside the vocabulary 0.." +
                    std::to_string(hp.n_vocab - 1));
    }
}

}  // namespace

const char* known_architectures() { return "llama, gemma3"; }

HyperParameters validate_model(const File& file) {
    HP hp;
    const Architecture& architecture = find_architecture(file, hp);
    check_tensor_types(file);
    read_hyperparameters(file, architecture, hp);
    check_tensors(file, architecture, hp);
    check_tokenizer(file, hp);
    return hp;
}

}  // namespace ggufsm::gguf
