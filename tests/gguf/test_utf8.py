"""The header's UTF-8 check (cpp/gguf/utf8.h: a shift-based DFA, the byte scan for where the error is) agrees with
Python's strict decoder on every text: valid exactly when it decodes, and the first bad byte where the decoder's
error starts."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from ggufsm import _core


def python_error_at(text: bytes) -> int | None:
    try:
        text.decode("utf-8", "strict")
    except UnicodeDecodeError as error:
        return error.start
    return None


def test_every_sequence_of_up_to_two_bytes_and_every_lead_and_first_continuation_agree():
    texts = [bytes([a]) for a in range(256)] + [bytes([a, b]) for a in range(256) for b in range(256)]
    texts += [bytes([a, b, c]) for a in range(0xE0, 0x100) for b in range(0x70, 0xD0) for c in (0x41, 0x80, 0xBF, 0xC0)]
    texts += [bytes([a, b, 0x80, d]) for a in range(0xF0, 0x100) for b in range(0x70, 0xD0) for d in (0x41, 0x80, 0xBF, 0xC0)]
    for text in texts:
        assert _core.utf8_error_at(text) == python_error_at(text), text.hex()


def test_every_code_point_encoded_is_valid_and_every_surrogate_and_overlong_is_not():
    for code_point in itertools.chain(range(0, 0xD800, 7), range(0xE000, 0x110000, 13), (0x7F, 0x80, 0x7FF, 0x800,
                                                                                         0xFFFF, 0x10000, 0x10FFFF)):
        text = chr(code_point).encode()
        assert _core.utf8_error_at(b"ab" + text + b"c") is None, hex(code_point)
    for bad in (b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80"):
        assert _core.utf8_error_at(b"x" + bad) == 1, bad.hex()


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6).map(str.encode), st.binary(max_size=4)), max_size=8).map(b"".join))
def test_random_texts_agree_with_the_strict_decoder(text):
    assert _core.utf8_error_at(text) == python_error_at(text)
