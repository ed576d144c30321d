// The one checker: a parsed file against its architecture's declaration (architecture.h).
#include "gguf/architecture.h"

#include <cmath>
#include <vector>

#include "errors.h"

namespace ggufsm::gguf {

namespace {

[[noreturn]] void invalid(const std::string& message) { throw Error(code::InvalidModel, message); }
[[noreturn]] void unsupported(const std::string& message) { throw Error(code::UnsupportedModel, message); }

using HP = HyperParameters;

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

uint64_t count_entry(const File& file, const MetadataEntry& entry, bool zero_allowed = false) {
    if (!is_integer(entry.value.type))
        invalid(entry_where(entry) + ": type is " + value_type_name(entry.value.type) + ", expected an integer");
    const int64_t value = file.integer_value(entry.value);
    const int64_t lowest = zero_allowed ? 0 : 1;
    if (value < lowest || static_cast<uint64_t>(value) > kMaxCount)
        invalid(entry_where(entry) + ": value " + std::to_string(value) + " is outside " + std::to_string(lowest) + ".." +
                std::to_string(kMaxCount));
    return static_cast<uint64_t>(value);
}

double real_entry(const File& file, const MetadataEntry& entry, bool zero_allowed = false) {
    if (!is_float(entry.value.type) && !is_integer(entry.value.type))
        invalid(entry_where(entry) + ": type is " + value_type_name(entry.value.type) + ", expected a float");
    const double value = file.float_value(entry.value);
    if (!std::isfinite(value) || value < 0 || (value == 0 && !zero_allowed))
        invalid(entry_where(entry) + ": value " + std::to_string(value) + " is not a " +
                (zero_allowed ? "non-negative" : "positive") + " finite number");
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

// Only unscaled RoPE is implemented.
void check_rope_scaling(const File& file, const Architecture& architecture) {
    const MetadataEntry* entry = file.find(std::string(architecture.name) + ".rope.scaling.type");
    if (entry == nullptr) return;
    const std::string_view scaling = string_entry(file, *entry);
    if (scaling != "none")
        unsupported(entry_where(*entry) + ": RoPE scaling '" + std::string(scaling) + "' is not implemented (only none)");
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
    for (const KeyRule& rule : architecture.keys) {
        const std::string key = prefix + rule.suffix;
        const MetadataEntry* entry =
            rule.required ? &require(file, key, std::string(architecture.name) + " needs it") : file.find(key);
        if (rule.count) {
            if (entry != nullptr) hp.*rule.count = count_entry(file, *entry, rule.zero_allowed);
        } else {
            hp.*rule.real = entry != nullptr ? real_entry(file, *entry, rule.zero_allowed) : rule.fallback;
        }
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
        // Without a rope.dimension_count the rotated width defaults to the head size,
        // which head_count (or key_length) set: blame that entry.
        const MetadataEntry* rot = file.find(prefix + "rope.dimension_count");
        const MetadataEntry* key_length = file.find(prefix + "attention.key_length");
        const MetadataEntry& blamed = rot ? *rot : key_length ? *key_length : *head_count;
        invalid(entry_where(blamed) + ": the rotated width " + std::to_string(hp.n_rot) +
                (rot ? "" : " (rope.dimension_count absent: the head size)") +
                " must be even and at most the head size " + std::to_string(hp.head_dim_k));
    }
    if (hp.head_dim_v != hp.head_dim_k) {
        // The forward (and every attention kernel) runs equal key and value widths.
        const MetadataEntry* value_length = file.find(prefix + "attention.value_length");
        const MetadataEntry* key_length = file.find(prefix + "attention.key_length");
        unsupported(entry_where(value_length ? *value_length : key_length ? *key_length : *head_count) + ": value width " +
                    std::to_string(hp.head_dim_v) + " differs from the key width " + std::to_string(hp.head_dim_k) +
                    "; this runtime runs equal widths");
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

const TensorRule& rule_for(const Architecture& architecture, TensorRole role) {
    for (const TensorRule& rule : architecture.tensors)
        if (rule.role == role) return rule;
    throw Error(code::UnsupportedModel, std::string("the ") + architecture.name + " declaration has no tensor for a required role");
}

void check_tensors(const File& file, const Architecture& architecture, HP& hp) {
    // The vocabulary size comes from the vocabulary (tokenizer.ggml.tokens), else the vocab_size key, and
    // only without either from the embedding's row count: a tensor must not be the witness of its own
    // shape (a swapped embedding would otherwise be checked against its own swapped dimensions).
    const TensorInfo* embedding = file.find_tensor(rule_for(architecture, TensorRole::TokenEmbd).name);
    const MetadataEntry* tokens = file.find("tokenizer.ggml.tokens");
    const MetadataEntry* declared_size = file.find(std::string(architecture.name) + ".vocab_size");
    if (tokens != nullptr && tokens->value.type == ValueType::ARRAY && tokens->value.count > 0)
        hp.n_vocab = tokens->value.count;
    else if (declared_size != nullptr && is_integer(declared_size->value.type))
        hp.n_vocab = count_entry(file, *declared_size);
    else if (embedding != nullptr && embedding->n_dims == 2)
        hp.n_vocab = embedding->ne[1];
    hp.output_tied = file.find_tensor(rule_for(architecture, TensorRole::Output).name) == nullptr;
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
    if (declared_size != nullptr && count_entry(file, *declared_size) != hp.n_vocab)
        invalid(entry_where(*declared_size) + ": vocab_size " + std::to_string(count_entry(file, *declared_size)) +
                " differs from the vocabulary's " + std::to_string(hp.n_vocab) + " tokens");
}

// The block number of "blk.<n>.<suffix>"; -1 when `name` is not that.
int64_t block_of(std::string_view name, std::string_view suffix) {
    constexpr std::string_view prefix = "blk.";
    if (name.size() < prefix.size() + 2 + suffix.size() || name.substr(0, prefix.size()) != prefix) return -1;
    if (name.substr(name.size() - suffix.size()) != suffix || name[name.size() - suffix.size() - 1] != '.') return -1;
    const std::string_view digits = name.substr(prefix.size(), name.size() - suffix.size() - 1 - prefix.size());
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string_view::npos) return -1;
    int64_t block = 0;
    for (char c : digits) block = block * 10 + (c - '0');
    return block;
}

// Every tensor in the file is one the declaration names: a forward that
// ignored a tensor (a bias, a block past block_count) would run a different
// model than the file describes.
void refuse_undeclared_tensors(const File& file, const Architecture& architecture, const HP& hp) {
    for (const TensorInfo& info : file.tensors) {
        bool declared = false, past_last_block = false;
        for (const TensorRule& rule : architecture.tensors) {
            if (!rule.per_layer) {
                declared = declared || info.name == rule.name;
                continue;
            }
            const int64_t block = block_of(info.name, rule.name);
            if (block >= 0 && static_cast<uint64_t>(block) < hp.n_layer) declared = true;
            if (block >= 0 && static_cast<uint64_t>(block) >= hp.n_layer) past_last_block = true;
        }
        if (declared) continue;
        if (past_last_block) invalid(tensor_where(info) + ": a block past block_count " + std::to_string(hp.n_layer));
        unsupported(tensor_where(info) + ": the " + architecture.name +
                    " architecture declares no such tensor; refusing rather than ignoring it");
    }
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

// The declaration's switches, resolved for this file.
void apply_switches(const Architecture& architecture, HP& hp) {
    const ForwardSwitches& forward = architecture.forward;
    hp.rope_style = forward.rope_style;
    hp.ffn = forward.ffn;
    hp.qk_norm = architecture.has_role(TensorRole::AttnQNorm);
    hp.post_norms = architecture.has_role(TensorRole::PostAttnNorm);
    hp.embd_scale = forward.scale_embedding ? std::sqrt(static_cast<double>(hp.n_embd)) : 1.0;
    hp.attn_scale = 1.0 / std::sqrt(static_cast<double>(hp.head_dim_k));
    hp.swa_period = forward.swa_period;
    hp.rope_freq_base_local = forward.swa_period > 0 ? forward.rope_freq_base_local : hp.rope_freq_base;
}

}  // namespace

const char* rope_style_name(RopeStyle style) { return style == RopeStyle::Neox ? "neox" : "normal"; }
const char* feed_forward_name(FeedForward ffn) { return ffn == FeedForward::GeGLU ? "geglu" : "swiglu"; }

bool Architecture::has_role(TensorRole role) const {
    for (const TensorRule& rule : tensors)
        if (rule.role == role) return true;
    return false;
}

std::string known_architectures() {
    std::string names;
    for (const Architecture& architecture : architectures()) names += (names.empty() ? "" : ", ") + std::string(architecture.name);
    return names;
}

HyperParameters validate_model(const File& file, const Architecture** found) {
    HP hp;
    const Architecture& architecture = find_architecture(file, hp);
    check_tensor_types(file);
    check_rope_scaling(file, architecture);
    read_hyperparameters(file, architecture, hp);
    check_tensors(file, architecture, hp);
    refuse_undeclared_tensors(file, architecture, hp);
    check_tokenizer(file, hp);
    apply_switches(architecture, hp);
    if (found != nullptr) *found = &architecture;
    return hp;
}

}  // namespace ggufsm::gguf
