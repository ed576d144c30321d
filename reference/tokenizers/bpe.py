"""GPT-2 byte-level BPE (`tokenizer.ggml.model == "gpt2"`), as llama.cpp runs it.

Text is cut into words by the pre-tokenizer `tokenizer.ggml.pre` names; each
word's UTF-8 bytes are spelled with GPT-2's printable byte alphabet (space is
'Ġ'); then adjacent symbols are merged, lowest merge rank first and leftmost
first among equal ranks, until no listed merge applies. Each final symbol is a
vocabulary token.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

from ggufsm import _core
from ggufsm.reference.tokenizers.pretokenizers import pretokenizer_for
from ggufsm.reference.tokenizers.tokenizer import KEY_PREFIX, Tokenizer, string_table
from ggufsm.spec.errors import InvalidModel

WORD_CACHE_LIMIT = 1 << 16


def gpt2_byte_alphabet() -> list[str]:
    """The character GPT-2 writes for each byte: printable Latin-1 bytes stand for
    themselves, the other 68 map to U+0100 onwards in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    alphabet, extra = [""] * 256, 0
    for byte in range(256):
        if byte in printable:
            alphabet[byte] = chr(byte)
        else:
            alphabet[byte] = chr(0x100 + extra)
            extra += 1
    return alphabet


BYTE_TO_CHAR = gpt2_byte_alphabet()
CHAR_TO_BYTE = {char: byte for byte, char in enumerate(BYTE_TO_CHAR)}
# str.translate table: a Latin-1 decoded byte string -> its GPT-2 spelling.
_SPELL_BYTES = {byte: char for byte, char in enumerate(BYTE_TO_CHAR)}


class BpeTokenizer(Tokenizer):
    DEFAULT_BOS = 11  # llama.cpp's defaults for BPE files that name no ids
    DEFAULT_EOS = 11

    def __init__(self, metadata: Mapping[str, Any]):
        self.pretokenizer = pretokenizer_for(metadata.get(KEY_PREFIX + "pre"))
        self.DEFAULT_ADD_BOS = self.pretokenizer.add_bos_default
        super().__init__(metadata)
        self.merge_ranks: _core.StringTable = _merge_ranks(metadata)
        self._word_cache: dict[str, tuple[int, ...]] = {}

    @property
    def missing_bytes(self) -> frozenset[int]:
        """Bytes the vocabulary cannot spell: encode drops them (as llama.cpp does)."""
        return frozenset(b for b, char in enumerate(BYTE_TO_CHAR) if char not in self.token_to_id)

    def _encode_text(self, text: str, follows_special: bool) -> list[int]:
        ids: list[int] = []
        cache = self._word_cache
        for word in self.pretokenizer.split(text):
            cached = cache.get(word)
            if cached is None:
                cached = self._encode_word(word)
                if len(cache) >= WORD_CACHE_LIMIT:
                    cache.clear()
                cache[word] = cached
            ids.extend(cached)
        return ids

    def _encode_word(self, word: str) -> tuple[int, ...]:
        spelled = word.encode("utf-8").decode("latin-1").translate(_SPELL_BYTES)
        if self.pretokenizer.ignore_merges and spelled in self.token_to_id:
            return (self.token_to_id[spelled],)
        ids: list[int] = []
        for symbol in self._merge(spelled):
            token_id = self.token_to_id.get(symbol)
            if token_id is not None:
                ids.append(token_id)
                continue
            # A symbol outside the vocabulary (only in a vocabulary that lacks some
            # byte characters) falls back to one token per character; llama.cpp drops
            # the characters it cannot find, and so do we, to give the same ids.
            ids.extend(self.token_to_id[char] for char in symbol if char in self.token_to_id)
        return tuple(ids)

    def _merge(self, spelled: str) -> list[str]:
        """Merge adjacent symbols by rank; a heap of candidate pairs over a linked list, so a
        long word costs n log n rather than n^2."""
        symbols = list(spelled)
        n = len(symbols)
        if n < 2:
            return symbols
        ranks = self.merge_ranks
        following = [*range(1, n), -1]
        preceding = list(range(-1, n - 1))
        candidates = []  # (rank, left, right, merged text)

        def consider(left: int, right: int) -> None:
            if left >= 0 and right >= 0:
                rank = ranks.get(symbols[left] + " " + symbols[right])
                if rank is not None:
                    heapq.heappush(candidates, (rank, left, right, symbols[left] + symbols[right]))

        for i in range(n - 1):
            consider(i, i + 1)
        while candidates:
            _, left, right, merged = heapq.heappop(candidates)
            if following[left] != right or symbols[left] + symbols[right] != merged:
                continue  # a neighbour changed since this pair was queued
            symbols[left], symbols[right] = merged, ""
            following[left] = following[right]
            if following[right] >= 0:
                preceding[following[right]] = left
            consider(preceding[left], left)
            consider(left, following[left])
        result, i = [], 0
        while i >= 0:
            result.append(symbols[i])
            i = following[i]
        return result

    def _normal_piece(self, text: str) -> bytes:
        # Characters outside the byte alphabet are not byte-level spellings; keep their UTF-8.
        return b"".join(bytes([CHAR_TO_BYTE[c]]) if c in CHAR_TO_BYTE else c.encode("utf-8") for c in text)


def _merge_ranks(metadata: Mapping[str, Any]) -> _core.StringTable:
    """Each merge's rank, keyed by the merge's own text "left right" (the first listing of a pair wins).

    llama.cpp splits a merge at the first space after its first character. A spelled word never holds
    a space (byte 0x20 is spelled 'Ġ'), so neither does any symbol `_merge` makes, and the text
    `left + " " + right` it looks up is split there exactly: the merge text is the key as it is. The
    list, its index and the check are made in the core from the file's header copy (`_core.StringTable`),
    without a Python str per merge: SmolLM2's 48,900 merges as Python strings and a dict over them
    were 20-60 ms of every load."""
    try:
        ranks = string_table(metadata, KEY_PREFIX + "merges")
    except InvalidModel:  # an item of a list that is no str: the first bad merge of either kind is the one named
        _raise_first_bad_merge(list(metadata[KEY_PREFIX + "merges"]))
        raise
    if ranks is None:
        raise InvalidModel(f"{KEY_PREFIX}merges is missing: a gpt2 (BPE) tokenizer needs its merge list")
    bad = ranks.first_lacking_space()
    if bad >= 0:
        raise InvalidModel(f"{KEY_PREFIX}merges[{bad}] is not two symbols separated by a space")
    return ranks


def _raise_first_bad_merge(merges: list) -> None:
    """InvalidModel naming the first merge that is not a string of two symbols separated by a space."""
    for rank, merge in enumerate(merges):
        if not isinstance(merge, str):
            raise InvalidModel(f"{KEY_PREFIX}merges[{rank}] is {type(merge).__name__}, not a string")
        if merge.find(" ", 1) < 0:
            raise InvalidModel(f"{KEY_PREFIX}merges[{rank}] is not two symbols separated by a space")
