// Strict UTF-8 checks (utf8.h).
#include "gguf/utf8.h"

#include <array>
#include <cstring>

namespace ggufsm::gguf {

namespace {

// ------------------------------------------------------------- the DFA

// States are bit offsets (multiples of 6) into a byte's 64-bit row; the row holds each state's successor there.
enum State : uint64_t {
    kAccept = 0,        // between characters
    kNeed1 = 6,         // one continuation byte (80..BF) left
    kNeed2 = 12,        // two left
    kNeed3 = 18,        // three left
    kAfterE0 = 24,      // E0: the next is A0..BF (no overlong 3-byte form)
    kAfterED = 30,      // ED: the next is 80..9F (no surrogates)
    kAfterF0 = 36,      // F0: the next is 90..BF (no overlong 4-byte form)
    kAfterF4 = 42,      // F4: the next is 80..8F (at most U+10FFFF)
    kReject = 48,       // a sink: every row sends it to itself
};

constexpr uint64_t put(uint64_t row, State from, State to) { return row | (uint64_t(to) << from); }

// The row of byte b: the successor of every state; states not named go to kReject.
constexpr uint64_t row_of(unsigned b) {
    uint64_t row = 0;
    for (State s : {kAccept, kNeed1, kNeed2, kNeed3, kAfterE0, kAfterED, kAfterF0, kAfterF4, kReject}) row = put(row, s, kReject);
    auto set = [&](State from, State to) { row = (row & ~(uint64_t(63) << from)) | (uint64_t(to) << from); };
    if (b < 0x80) set(kAccept, kAccept);
    if (b >= 0x80 && b <= 0xBF) {  // continuation bytes
        set(kNeed1, kAccept);
        set(kNeed2, kNeed1);
        set(kNeed3, kNeed2);
        if (b >= 0xA0) set(kAfterE0, kNeed1);
        if (b <= 0x9F) set(kAfterED, kNeed1);
        if (b >= 0x90) set(kAfterF0, kNeed2);
        if (b <= 0x8F) set(kAfterF4, kNeed2);
    }
    if (b >= 0xC2 && b <= 0xDF) set(kAccept, kNeed1);
    if (b == 0xE0) set(kAccept, kAfterE0);
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) set(kAccept, kNeed2);
    if (b == 0xED) set(kAccept, kAfterED);
    if (b == 0xF0) set(kAccept, kAfterF0);
    if (b >= 0xF1 && b <= 0xF3) set(kAccept, kNeed3);
    if (b == 0xF4) set(kAccept, kAfterF4);
    return row;
}

constexpr std::array<uint64_t, 256> make_rows() {
    std::array<uint64_t, 256> rows{};
    for (unsigned b = 0; b < 256; ++b) rows[b] = row_of(b);
    return rows;
}

constexpr std::array<uint64_t, 256> kRows = make_rows();
static_assert((kRows[0x41] & 63) == kAccept && (kRows[0xE2] & 63) == kNeed2 && ((kRows[0x80] >> kNeed1) & 63) == kAccept,
              "the rows send ASCII to itself, a 3-byte lead to two left, a continuation on to the end");

// ------------------------------------------------------- the byte scan

// The reference: byte by byte, character by character. It also says where the first error is.
size_t scan_error_at(const uint8_t* text, size_t length) {
    size_t i = 0;
    while (i < length) {
        // ASCII runs are the common case; skip 8 bytes at a time.
        while (i + 8 <= length) {
            uint64_t chunk;
            std::memcpy(&chunk, text + i, 8);
            if (chunk & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= length) break;
        const uint8_t lead = text[i];
        if (lead < 0x80) { ++i; continue; }
        size_t extra;
        uint8_t low = 0x80, high = 0xBF;  // allowed range of the first continuation byte
        if (lead >= 0xC2 && lead <= 0xDF) extra = 1;
        else if (lead == 0xE0) { extra = 2; low = 0xA0; }
        else if (lead >= 0xE1 && lead <= 0xEC) extra = 2;
        else if (lead == 0xED) { extra = 2; high = 0x9F; }
        else if (lead >= 0xEE && lead <= 0xEF) extra = 2;
        else if (lead == 0xF0) { extra = 3; low = 0x90; }
        else if (lead >= 0xF1 && lead <= 0xF3) extra = 3;
        else if (lead == 0xF4) { extra = 3; high = 0x8F; }
        else return i;
        if (extra >= length - i) return i;  // truncated sequence
        if (text[i + 1] < low || text[i + 1] > high) return i;
        for (size_t k = 2; k <= extra; ++k)
            if ((text[i + k] & 0xC0) != 0x80) return i;
        i += extra + 1;
    }
    return SIZE_MAX;
}

}  // namespace

const uint64_t kUtf8Rows[256] = {
#define ROW(b) kRows[b], kRows[b + 1], kRows[b + 2], kRows[b + 3], kRows[b + 4], kRows[b + 5], kRows[b + 6], kRows[b + 7]
    ROW(0x00), ROW(0x08), ROW(0x10), ROW(0x18), ROW(0x20), ROW(0x28), ROW(0x30), ROW(0x38),
    ROW(0x40), ROW(0x48), ROW(0x50), ROW(0x58), ROW(0x60), ROW(0x68), ROW(0x70), ROW(0x78),
    ROW(0x80), ROW(0x88), ROW(0x90), ROW(0x98), ROW(0xA0), ROW(0xA8), ROW(0xB0), ROW(0xB8),
    ROW(0xC0), ROW(0xC8), ROW(0xD0), ROW(0xD8), ROW(0xE0), ROW(0xE8), ROW(0xF0), ROW(0xF8),
#undef ROW
};

bool utf8_valid(const uint8_t* text, size_t length) {
    uint64_t state = kUtf8Accept;
    for (size_t i = 0; i < length; ++i) state = utf8_step(state, text[i]);
    return utf8_accepts(state);
}

size_t utf8_error_at(const uint8_t* text, size_t length) {
    if (utf8_valid(text, length)) return SIZE_MAX;
    return scan_error_at(text, length);
}

}  // namespace ggufsm::gguf
