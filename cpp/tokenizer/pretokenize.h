// The GPT-2 pre-tokenizer (llama.cpp's `gpt2` and, with single digits cut out first, `smollm` and its
// kin), hand-written over code points as llama.cpp writes it (unicode.cpp,
// unicode_regex_split_custom_gpt2), so that a load need not import the `regex` package (30-70 ms of
// SmolLM2's first token, profiled in a fresh process). It cuts exactly as the expression
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does on the `regex` package (pretokenizers.py, the reference the tests compare against), with the
// character classes generated from that package (unicode_classes.h).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <utility>
#include <vector>

#include "tokenizer/unicode_classes.h"

namespace ggufsm::tokenizer {

enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

template <size_t N>
bool in_ranges(const unicode::CodeRange (&ranges)[N], uint32_t code) {
    const auto* end = ranges + N;
    const auto* found = std::upper_bound(ranges, end, code, [](uint32_t c, const unicode::CodeRange& r) { return c < r.first; });
    return found != ranges && code <= std::prev(found)->last;
}

inline CharClass char_class(uint32_t code) {
    if (in_ranges(unicode::kLetters, code)) return kLetter;
    if (in_ranges(unicode::kNumbers, code)) return kNumber;
    if (in_ranges(unicode::kSpaces, code)) return kSpace;
    return kOther;
}

// The words of `codes` as (start, end) positions that concatenate back to the whole text.
// `split_digits`: every \p{N} character is first cut out as a piece of its own (the `\p{N}`
// expression the `smollm` family runs before GPT-2's); GPT-2's expression then runs on each piece,
// its lookahead never seeing past the piece's end.
inline std::vector<std::pair<size_t, size_t>> split_gpt2(const std::vector<uint32_t>& codes, bool split_digits) {
    const size_t n = codes.size();
    std::vector<uint8_t> classes(n);
    for (size_t i = 0; i < n; ++i) classes[i] = char_class(codes[i]);
    std::vector<std::pair<size_t, size_t>> words;
    auto run = [&](size_t from, size_t end, uint8_t wanted) {
        while (from < end && classes[from] == wanted) ++from;
        return from;
    };
    auto gpt2 = [&](size_t i, const size_t end) {
        while (i < end) {
            const uint32_t c = codes[i];
            size_t stop = i;
            if (c == '\'' && i + 1 < end) {  // 's 't 're 've 'm 'll 'd
                const uint32_t next = codes[i + 1];
                if (next == 's' || next == 't' || next == 'm' || next == 'd') {
                    stop = i + 2;
                } else if (i + 2 < end && ((next == 'r' && codes[i + 2] == 'e') || (next == 'v' && codes[i + 2] == 'e') ||
                                           (next == 'l' && codes[i + 2] == 'l'))) {
                    stop = i + 3;
                }
            }
            if (stop == i) {
                // ` ?X+` for X a letter, a number or anything else but a space: the space is taken when X follows.
                const size_t body = (c == ' ' && i + 1 < end && classes[i + 1] != kSpace) ? i + 1 : i;
                if (classes[body] != kSpace) {
                    stop = run(body, end, classes[body]);
                } else {
                    // \s+(?!\S) then \s+: a run of spaces gives its last one to the word that follows it.
                    const size_t spaces = run(i, end, kSpace);
                    stop = (spaces < end && spaces - i >= 2) ? spaces - 1 : spaces;
                }
            }
            words.emplace_back(i, stop);
            i = stop;
        }
    };
    size_t i = 0;
    while (i < n) {
        if (split_digits && classes[i] == kNumber) {
            words.emplace_back(i, i + 1);
            ++i;
            continue;
        }
        size_t end = i;
        if (split_digits) {
            while (end < n && classes[end] != kNumber) ++end;
        } else {
            end = n;
        }
        gpt2(i, end);
        i = end;
    }
    return words;
}

}  // namespace ggufsm::tokenizer
