// A table of strings held as one UTF-8 buffer and offsets, with a hash index
// from a string to its position: a tokenizer's vocabulary (262,144 tokens on
// Gemma 3) or BPE merge list (48,900 on SmolLM2) without a Python object per
// entry. Python asks for the few entries it needs (bindings/tokenizer.cpp):
// building a Python str per token and a dict over them was 0.1-0.15 s of every
// load, for a prompt that touches a few dozen tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ggufsm::tokenizer {

class StringTable {
public:
    static constexpr int64_t kAbsent = -1;

    void reserve(size_t count, size_t bytes) {
        offsets_.reserve(count + 1);
        buffer_.reserve(bytes);
    }

    // Appends an entry. An empty entry is named as llama.cpp names it when `name_empty`
    // ("[EMPTY_<position>]"), so that every token stays a distinct, findable string.
    void add(std::string_view text, bool name_empty) {
        if (text.empty() && name_empty) {
            buffer_ += "[EMPTY_" + std::to_string(size()) + "]";
        } else {
            buffer_.append(text.data(), text.size());
        }
        offsets_.push_back(buffer_.size());
    }

    size_t size() const { return offsets_.size() - 1; }
    std::string_view at(size_t i) const { return {buffer_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]}; }
    size_t byte_length(size_t i) const { return offsets_[i + 1] - offsets_[i]; }

    // Builds the index once every entry is added. A repeated string maps to its last position (a
    // dict built in order does the same) or with `keep_first` to its first (a BPE merge listed twice
    // keeps its lowest rank); the first repeat is kept either way, for the caller to refuse or allow.
    void build_index(bool keep_first) {
        size_t capacity = 16;
        while (capacity < 2 * size()) capacity <<= 1;  // at most half full: short probe runs
        slots_.assign(capacity, -1);
        mask_ = capacity - 1;
        first_repeat_ = {kAbsent, kAbsent};
        for (size_t i = 0; i < size(); ++i) {
            const std::string_view text = at(i);
            for (size_t slot = hash(text) & mask_;; slot = (slot + 1) & mask_) {
                int32_t& held = slots_[slot];
                if (held < 0) {
                    held = static_cast<int32_t>(i);
                    break;
                }
                if (at(static_cast<size_t>(held)) == text) {
                    if (first_repeat_.first == kAbsent) first_repeat_ = {static_cast<int64_t>(i), held};
                    if (!keep_first) held = static_cast<int32_t>(i);
                    break;
                }
            }
        }
    }

    // The position the index gives for `text`, or kAbsent.
    int64_t find(std::string_view text) const {
        for (size_t slot = hash(text) & mask_;; slot = (slot + 1) & mask_) {
            const int32_t held = slots_[slot];
            if (held < 0) return kAbsent;
            if (at(static_cast<size_t>(held)) == text) return held;
        }
    }

    // (later position, earlier position) of the first string listed twice, or (kAbsent, kAbsent).
    std::pair<int64_t, int64_t> first_repeat() const { return first_repeat_; }

    // The first entry with no `wanted` byte after its first UTF-8 character, or kAbsent: the BPE
    // merges' "two symbols separated by a space" check (llama.cpp splits a merge at the first space
    // after its first character).
    int64_t first_lacking_after_first_character(char wanted) const {
        for (size_t i = 0; i < size(); ++i) {
            const std::string_view text = at(i);
            const size_t first = text.empty() ? 0 : utf8_sequence_length(static_cast<unsigned char>(text[0]));
            if (first >= text.size() || text.find(wanted, first) == std::string_view::npos) return static_cast<int64_t>(i);
        }
        return kAbsent;
    }

private:
    static size_t hash(std::string_view text) { return std::hash<std::string_view>{}(text); }
    static size_t utf8_sequence_length(unsigned char lead) {
        return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;  // the strings are valid UTF-8
    }

    std::string buffer_;
    std::vector<uint64_t> offsets_{0};
    std::vector<int32_t> slots_;
    size_t mask_ = 0;
    std::pair<int64_t, int64_t> first_repeat_{kAbsent, kAbsent};
};

}  // namespace ggufsm::tokenizer
