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
        slots_.assign(capacity, kEmpty);
        mask_ = capacity - 1;
        first_repeat_ = {kAbsent, kAbsent};
        // Hashes first (a sequential pass), then the inserts, each prefetching the slot a few entries
        // ahead: the slots (4 MB on Gemma 3) miss the cache on nearly every insert, and overlapping the
        // misses rather than waiting on each one is most of the build's time.
        std::vector<size_t> hashes(size());
        for (size_t i = 0; i < size(); ++i) hashes[i] = hash(at(i));
        constexpr size_t kAhead = 8;
        for (size_t i = 0; i < size(); ++i) {
            if (i + kAhead < size()) __builtin_prefetch(&slots_[hashes[i + kAhead] & mask_], 1);
            const std::string_view text = at(i);
            const size_t full = hashes[i];
            for (size_t slot = full & mask_;; slot = (slot + 1) & mask_) {
                uint64_t& held = slots_[slot];
                if (held == kEmpty) {
                    held = pack(full, i);
                    break;
                }
                if (same(held, full, text)) {
                    if (first_repeat_.first == kAbsent) first_repeat_ = {static_cast<int64_t>(i), position(held)};
                    if (!keep_first) held = pack(full, i);
                    break;
                }
            }
        }
    }

    // The position the index gives for `text`, or kAbsent.
    int64_t find(std::string_view text) const {
        const size_t full = hash(text);
        for (size_t slot = full & mask_;; slot = (slot + 1) & mask_) {
            const uint64_t held = slots_[slot];
            if (held == kEmpty) return kAbsent;
            if (same(held, full, text)) return position(held);
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
    // A slot holds the position (low 32 bits) and the hash's high 32 bits, so a probe compares strings
    // (a cache miss into the buffer) only when the hashes agree.
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    static size_t hash(std::string_view text) { return std::hash<std::string_view>{}(text); }
    static uint64_t pack(size_t full, size_t i) { return (static_cast<uint64_t>(full) & 0xFFFFFFFF00000000ull) | i; }
    static int64_t position(uint64_t held) { return static_cast<int64_t>(held & 0xFFFFFFFFull); }
    bool same(uint64_t held, size_t full, std::string_view text) const {
        return (held >> 32) == (static_cast<uint64_t>(full) >> 32) && at(static_cast<size_t>(position(held))) == text;
    }
    static size_t utf8_sequence_length(unsigned char lead) {
        return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;  // the strings are valid UTF-8
    }

    std::string buffer_;
    std::vector<uint64_t> offsets_{0};
    std::vector<uint64_t> slots_;
    size_t mask_ = 0;
    std::pair<int64_t, int64_t> first_repeat_{kAbsent, kAbsent};
};

}  // namespace ggufsm::tokenizer
