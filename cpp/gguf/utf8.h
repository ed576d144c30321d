// Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF), exactly what Python's strict decoder
// accepts: the check every string of a GGUF header passes (parse.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ggufsm::gguf {

// True when text[0, length) is valid. A shift-based DFA (Per Vognsen's construction): each byte's row of next
// states is loaded independently of the state, so the only dependency between bytes is one shift, with no branch
// per byte or per character. Most of a vocabulary's strings are a few bytes with a multi-byte character (Gemma 3's
// U+2581, GPT-2's byte-level U+0120), where the branchy scan below spent about 1.4 ns a byte.
bool utf8_valid(const uint8_t* text, size_t length);

// The DFA's step, for loops that run it over many strings at once (parse.cpp's string arrays): the state is
// kUtf8Accept between characters, and a string is valid when it starts and ends there.
extern const uint64_t kUtf8Rows[256];
constexpr uint64_t kUtf8Accept = 0;
inline uint64_t utf8_step(uint64_t state, uint8_t byte) {
    // The shift count is taken mod 64 (as x86 shifts do); only the low 6 bits of a state matter.
    return kUtf8Rows[byte] >> (state & 63);
}
inline bool utf8_accepts(uint64_t state) { return (state & 63) == kUtf8Accept; }

// The index of the first byte that is not part of a valid sequence (a sequence cut by the end counts from its lead
// byte), or SIZE_MAX when the text is valid: utf8_valid first, the byte-by-byte scan only for invalid text.
size_t utf8_error_at(const uint8_t* text, size_t length);

}  // namespace ggufsm::gguf
