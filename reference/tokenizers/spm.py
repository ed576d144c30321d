"""SentencePiece-style tokenizer (`tokenizer.ggml.model == "llama"`), as llama.cpp runs it.

Spaces are written '▁' (and, when `tokenizer.ggml.add_space_prefix` is true,
one is put in front of text that starts the input or follows a special
token). The text starts as one symbol per character; the adjacent pair whose
concatenation is the vocabulary token with the highest score is merged first
(leftmost among equal scores), until no pair forms a token. A symbol left
outside the vocabulary becomes its UTF-8 bytes as `<0xNN>` byte tokens.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Mapping
from typing import Any

import numpy as np

from ggufsm.reference.tokenizers.tokenizer import KEY_PREFIX, Tokenizer
from ggufsm.spec.errors import InvalidModel

SPACE = "\u2581"  # ▁


class SpmTokenizer(Tokenizer):
    DEFAULT_BOS, DEFAULT_EOS, DEFAULT_UNK = 1, 2, 0  # llama.cpp's defaults for SPM files
    DEFAULT_ADD_BOS = True

    def __init__(self, metadata: Mapping[str, Any]):
        super().__init__(metadata)
        scores = metadata.get(KEY_PREFIX + "scores")
        if scores is None:
            self._scores = np.zeros(self.vocab_size, dtype=np.float32)
        else:
            # One C-level conversion, kept as the array: the merge loop reads the few scores it needs
            # (a Python float per token was 5-30 ms of Gemma 3's load, 262,144 of them).
            try:
                array = np.array(scores, dtype=np.float32)  # a copy: the caller's array may change later
            except (TypeError, ValueError, OverflowError):
                raise InvalidModel(f"{KEY_PREFIX}scores holds values that are not numbers") from None
            if array.ndim != 1 or len(array) < self.vocab_size:
                raise InvalidModel(f"{KEY_PREFIX}scores has {array.size} entries for {self.vocab_size} tokens")
            self._scores = array[:self.vocab_size]
        self.add_space_prefix = bool(metadata.get(KEY_PREFIX + "add_space_prefix", True))
        self._byte_ids = [self._byte_token_id(byte) for byte in range(256)]

    @functools.cached_property
    def scores(self) -> list[float]:
        """Each token's score as a Python float (the float32 value, exactly)."""
        return self._scores.tolist()

    def _byte_token_id(self, byte: int) -> int | None:
        token_id = self.token_to_id.get(f"<0x{byte:02X}>")
        if token_id is None and byte < 0x80:
            token_id = self.token_to_id.get(chr(byte))
        return token_id

    @property
    def missing_bytes(self) -> frozenset[int]:
        """Bytes with no byte token: text needing them cannot be encoded (InvalidModel)."""
        return frozenset(b for b, token_id in enumerate(self._byte_ids) if token_id is None)

    def _encode_text(self, text: str, follows_special: bool) -> list[int]:
        if self.add_space_prefix and follows_special:
            text = " " + text
        ids: list[int] = []
        for symbol in self._merge(text.replace(" ", SPACE)):
            token_id = self.token_to_id.get(symbol)
            if token_id is not None:
                ids.append(token_id)
                continue
            # Merged symbols are always tokens, so only a single character can miss.
            for byte in symbol.encode("utf-8"):
                byte_id = self._byte_ids[byte]
                if byte_id is None:
                    raise InvalidModel(f"{KEY_PREFIX}tokens has no byte token <0x{byte:02X}> for {symbol!r}")
                ids.append(byte_id)
        return ids

    def _merge(self, text: str) -> list[str]:
        symbols = list(text)
        n = len(symbols)
        if n < 2:
            return symbols
        vocab, scores = self.token_to_id, self._scores
        following = [*range(1, n), -1]
        preceding = list(range(-1, n - 1))
        candidates = []  # (-score, left, right, merged length): best score, then leftmost

        def consider(left: int, right: int) -> None:
            if left >= 0 and right >= 0:
                token_id = vocab.get(symbols[left] + symbols[right])
                if token_id is not None:
                    heapq.heappush(candidates, (-float(scores[token_id]), left, right, len(symbols[left]) + len(symbols[right])))

        for i in range(n - 1):
            consider(i, i + 1)
        while candidates:
            _, left, right, length = heapq.heappop(candidates)
            left_text, right_text = symbols[left], symbols[right]
            # Symbols only grow, so an unchanged total length means an unchanged pair.
            if not left_text or not right_text or len(left_text) + len(right_text) != length:
                continue
            symbols[left], symbols[right] = left_text + right_text, ""
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
        return text.replace(SPACE, " ").encode("utf-8")

    def _strips_leading_space(self) -> bool:
        return self.add_space_prefix
