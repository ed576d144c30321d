"""Tokenizers built from GGUF metadata: the shared vocabulary logic and the factory.

A tokenizer is built from a plain mapping of GGUF keys to Python values
(`tokenizer.ggml.tokens`, `token_type`, `merges` or `scores`, the special ids,
`add_bos_token` / `add_eos_token`, `pre`, `chat_template`). This module holds
what every kind shares, following llama.cpp (src/llama-vocab.cpp) so that ids
equal its ids:

- special tokens (control, user-defined, unknown) are cut out of the text
  before the model's own algorithm runs, longest first;
- the end-of-generation set is eos plus the end-of-turn style tokens llama.cpp
  recognises by their text;
- pieces: control and unknown tokens render as their text only when asked,
  user-defined tokens always as their text.

`tokenizer_from_metadata` picks the kind that `tokenizer.ggml.model` names:
`gpt2` (byte-level BPE, tokenizer_bpe) or `llama` (SentencePiece, tokenizer_spm).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gguf import TokenType

from ggufsm import _core
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import InvalidInput, InvalidModel, UnsupportedModel

KEY_PREFIX = "tokenizer.ggml."

# Tokens that end a generation, recognised by their text as llama.cpp does
# (llama_vocab::impl::load): the metadata names only eos.
END_OF_GENERATION_TEXTS = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "</s>",
})
# Fill-in-the-middle tokens that llama.cpp also treats as end of generation
# (repository / file separators and padding); it finds them by text when the
# metadata has no id for them.
FIM_END_TEXTS = {
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
SPECIAL_TYPES = (TokenType.CONTROL, TokenType.USER_DEFINED, TokenType.UNKNOWN)
# The per-token arrays of numbers.
NUMBER_ARRAYS = frozenset({KEY_PREFIX + "token_type", KEY_PREFIX + "scores"})
# The arrays of strings, held in the core as one buffer with an index (`_core.StringTable`), and how
# each is indexed: a merge listed twice keeps its first (lowest) rank; an empty token is named.
STRING_TABLES = {
    KEY_PREFIX + "tokens": {"keep_first": False, "name_empty": True},
    KEY_PREFIX + "merges": {"keep_first": True, "name_empty": False},
}

# The value kind of each tokenizer key a file may carry: checked once, before anything reads them, so
# a key of the wrong kind (an array where a string belongs) is InvalidModel naming it, never a
# TypeError from deep inside the tokenizer. Arrays' elements are checked where they are read.
STRING, INTEGER, FLAG, ARRAY = "a string", "an integer", "a boolean", "an array"
METADATA_KINDS: dict[str, str] = {
    KEY_PREFIX + "model": STRING, KEY_PREFIX + "pre": STRING, "tokenizer.chat_template": STRING,
    KEY_PREFIX + "tokens": ARRAY, KEY_PREFIX + "token_type": ARRAY, KEY_PREFIX + "merges": ARRAY,
    KEY_PREFIX + "scores": ARRAY,
    **{KEY_PREFIX + flag: FLAG for flag in ("add_bos_token", "add_eos_token", "add_space_prefix")},
    **{f"{KEY_PREFIX}{name}_token_id": INTEGER for name in
       ("bos", "eos", "unknown", "padding", "eot", "eom", "fim_pad", "fim_rep", "fim_sep")},
}


class Tokenizer:
    """The part every tokenizer kind shares. Subclasses implement `_encode_text` and `_normal_piece`."""

    # Default special ids when the file names none (llama.cpp's per-kind defaults).
    DEFAULT_BOS: int | None = None
    DEFAULT_EOS: int | None = None
    DEFAULT_UNK: int | None = None
    DEFAULT_ADD_BOS = False

    def __init__(self, metadata: Mapping[str, Any]):
        table = _token_table(metadata)
        n_vocab = len(table)
        # The vocabulary stays in the core: a token's str is made when it is asked for (tokens[i]), and
        # token_to_id is the core's index (get, [], in), not a dict of 262,144 Python strings.
        self._table = table
        self.tokens: Sequence[str] = TokenTexts(table)
        self.token_to_id: _core.StringTable = table
        self.token_types = _array_of(metadata, "token_type", n_vocab, np.int32, default=TokenType.NORMAL)  # (n_vocab,)
        self.bos_id = _special_id(metadata, "bos_token_id", n_vocab, self.DEFAULT_BOS)
        self.eos_id = _special_id(metadata, "eos_token_id", n_vocab, self.DEFAULT_EOS)
        self.unk_id = _special_id(metadata, "unknown_token_id", n_vocab, self.DEFAULT_UNK)
        self.pad_id = _special_id(metadata, "padding_token_id", n_vocab, None)
        self.add_bos = bool(metadata.get(KEY_PREFIX + "add_bos_token", self.DEFAULT_ADD_BOS))
        self.add_eos = bool(metadata.get(KEY_PREFIX + "add_eos_token", False))
        for flag, token_id, key in ((self.add_bos, self.bos_id, "bos_token_id"), (self.add_eos, self.eos_id, "eos_token_id")):
            if flag and token_id is None:
                raise InvalidModel(f"{KEY_PREFIX}add_{key[:3]}_token is true but {KEY_PREFIX}{key} is not set")
        self.chat_template: str | None = metadata.get("tokenizer.chat_template")
        self.eot_ids: frozenset[int] = self._end_of_generation_ids(metadata)
        # Longest first (in UTF-8 bytes, then by id): the order llama.cpp cuts them out in. Keys made and
        # sorted at C speed: a Python key per token was 15-90 ms of Gemma 3's load (6,414 special tokens).
        # Three comparisons rather than np.isin: 0.2 ms against 1.2-1.5 ms over Gemma 3's 262,144 types.
        special = np.flatnonzero(np.logical_or.reduce([self.token_types == kind for kind in SPECIAL_TYPES]))
        utf8_lengths = table.byte_lengths(special)
        longest_first = special[np.lexsort((special, -utf8_lengths))]
        self._special_ids: list[int] = longest_first.tolist()
        self._user_defined_ids: list[int] = longest_first[self.token_types[longest_first] == TokenType.USER_DEFINED].tolist()
        self._piece_cache: dict[int, bytes] = {}
        # Checked now, not when a generated token is first decoded: a generate has no outcome for a bad vocabulary.
        for token_id in np.flatnonzero(self.token_types == TokenType.BYTE).tolist():
            _byte_token_value(self.tokens[token_id], token_id)

    # ------------------------------------------------------------------ queries

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def is_control(self, token_id: int) -> bool:
        self._check_id(token_id)
        return int(self.token_types[token_id]) == TokenType.CONTROL

    def token_text(self, token_id: int) -> str:
        """The token as the vocabulary spells it (e.g. 'Ġthe', '▁the', '<0x0A>')."""
        self._check_id(token_id)
        return self.tokens[token_id]

    # ------------------------------------------------------------------ encode

    def encode(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids for text. add_special adds bos/eos as the model's flags say; parse_special
        turns control-token text (e.g. '<|im_start|>') into that token. User-defined tokens are
        always matched, as in llama.cpp."""
        if not isinstance(text, str):
            raise InvalidInput(f"text to encode must be str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # lone surrogates: no UTF-8 bytes exist to tokenize
            raise InvalidInput(f"text to encode is not valid Unicode: {text[error.start:error.end]!r} "
                               f"at character {error.start} ({error.reason})") from None
        ids: list[int] = [self.bos_id] if add_special and self.add_bos else []
        follows_special = True
        for fragment in self._partition(text, parse_special):
            if isinstance(fragment, int):
                ids.append(fragment)
                follows_special = True
            else:
                ids.extend(self._encode_text(fragment, follows_special))
                follows_special = False
        if add_special and self.add_eos:
            ids.append(self.eos_id)
        return ids

    def _encode_text(self, text: str, follows_special: bool) -> list[int]:
        raise NotImplementedError

    def _partition(self, text: str, parse_special: bool) -> list[str | int]:
        """Cut special tokens out of text: a list of raw strings and token ids."""
        if not text:
            return []
        candidates = self._special_ids if parse_special else self._user_defined_ids
        fragments: list[str | int] = [text]
        # Which special tokens occur at all is found in the core, without a str per special token.
        for token_id in self._table.occurring(candidates, text):
            special = self.tokens[token_id]
            cut: list[str | int] = []
            for fragment in fragments:
                if isinstance(fragment, int) or special not in fragment:
                    cut.append(fragment)
                    continue
                for k, part in enumerate(fragment.split(special)):
                    if k:
                        cut.append(token_id)
                    if part:
                        cut.append(part)
            fragments = cut
        return fragments

    # ------------------------------------------------------------------ decode

    def token_to_piece(self, token_id: int, *, special: bool = True) -> bytes:
        """The bytes a token stands for. Control and unknown tokens give their text when special,
        else nothing; a piece may be part of a UTF-8 character."""
        self._check_id(token_id)
        token_type = int(self.token_types[token_id])
        if token_type in (TokenType.CONTROL, TokenType.UNKNOWN):
            return self.tokens[token_id].encode("utf-8") if special else b""
        piece = self._piece_cache.get(token_id)
        if piece is None:
            piece = self._piece(token_id, token_type)
            self._piece_cache[token_id] = piece
        return piece

    def _piece(self, token_id: int, token_type: int) -> bytes:
        text = self.tokens[token_id]
        if token_type == TokenType.USER_DEFINED:
            return text.encode("utf-8")
        if token_type == TokenType.NORMAL:
            return self._normal_piece(text)
        if token_type == TokenType.BYTE:
            return _byte_token_value(text, token_id)
        return b""  # unused and undefined tokens render as nothing (llama.cpp)

    def _normal_piece(self, text: str) -> bytes:
        raise NotImplementedError

    def decode(self, ids: Iterable[int], *, special: bool = False) -> str:
        """Text for ids. Control tokens are left out unless special; bytes that are not
        UTF-8 become U+FFFD."""
        decoder = self.stream_decoder(special=special)
        return "".join(decoder.push(token_id) for token_id in ids) + decoder.flush()

    def stream_decoder(self, *, special: bool = False) -> StreamDecoder:
        return StreamDecoder(self, special=special)

    def _strips_leading_space(self) -> bool:
        return False

    def _check_id(self, token_id: int) -> None:
        if not isinstance(token_id, (int, np.integer)) or not 0 <= token_id < len(self.tokens):
            raise InvalidInput(f"token id {token_id!r} outside the vocabulary [0, {len(self.tokens)})")

    # ------------------------------------------------------------------ end of generation

    def _end_of_generation_ids(self, metadata: Mapping[str, Any]) -> frozenset[int]:
        n_vocab = len(self.tokens)
        ids = {i for i in (self.eos_id,
                           _special_id(metadata, "eot_token_id", n_vocab, None),
                           _special_id(metadata, "eom_token_id", n_vocab, None)) if i is not None}
        ids.update(self.token_to_id[text] for text in END_OF_GENERATION_TEXTS if text in self.token_to_id)
        for kind, texts in FIM_END_TEXTS.items():
            token_id = _special_id(metadata, f"{kind}_token_id", n_vocab, None)
            if token_id is None:
                found = [self.token_to_id[text] for text in texts if text in self.token_to_id]
                token_id = min(found) if found else None
            if token_id is not None:
                ids.add(token_id)
        # llama.cpp marks every end-of-generation token as control, whatever the file says.
        retyped = [i for i in ids if self.token_types[i] != TokenType.CONTROL]
        if retyped:
            self.token_types = self.token_types.copy()  # never write into the caller's array
            self.token_types[retyped] = TokenType.CONTROL
        return frozenset(ids)


class StreamDecoder:
    """Text from tokens as they come: push(id) returns the text now complete, holding back
    a UTF-8 sequence split across tokens until its last byte arrives; flush() ends it.
    The pushes and the flush concatenate to `tokenizer.decode(ids)`."""

    def __init__(self, tokenizer: Tokenizer, *, special: bool = False):
        self._tokenizer = tokenizer
        self._special = special
        # Each token's piece once asked (a dict hit is an id token_to_piece checked), and the bytes of a UTF-8
        # sequence not complete yet: what codecs' incremental decoder keeps, without its Python frame. A
        # batched token's Python runs after a pass streamed the weights through the caches, so each frame,
        # numpy scalar and enum it touches is a miss (tools/token_python.py).
        self._pieces: dict[int, bytes] = {}
        self._held = b""
        self._strip_space = tokenizer._strips_leading_space()

    def push(self, token_id: int) -> str:
        piece = self._pieces.get(token_id)
        if piece is None:
            piece = self._pieces[token_id] = self._tokenizer.token_to_piece(token_id, special=self._special)
        if self._strip_space and piece:
            # The space the tokenizer put in front of the text is not part of it.
            piece = piece[1:] if piece.startswith(b" ") else piece
            self._strip_space = False
        if self._held:
            piece = self._held + piece
        text, consumed = codecs.utf_8_decode(piece, "replace", False)
        self._held = piece[consumed:]
        return text

    def flush(self) -> str:
        text, _ = codecs.utf_8_decode(self._held, "replace", True)
        self._held = b""
        return text


# ---------------------------------------------------------------------- metadata helpers

class TokenTexts(Sequence[str]):
    """The vocabulary's token strings by id, each made a Python str only when asked for."""

    __slots__ = ("_table", "_size")

    def __init__(self, table: _core.StringTable):
        self._table = table
        self._size = len(table)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._table.text(i) for i in range(*index.indices(self._size))]
        return self._table.text(index)


def string_table(metadata: Mapping[str, Any], key: str) -> _core.StringTable | None:
    """The array of strings at `key` as a core table (None when the key is absent), made from the file's
    header copy where the metadata can (`Metadata.string_table`), else from the list: InvalidModel names
    an entry that is not a string."""
    values = metadata.get(key)
    if values is None or isinstance(values, _core.StringTable):
        return values
    items = list(values)
    try:
        return _core.string_table_from_list(items, **STRING_TABLES[key])
    except TypeError:  # an item that is not a str
        bad = next(i for i, item in enumerate(items) if not isinstance(item, str))
        raise InvalidModel(f"{key}[{bad}] is {type(items[bad]).__name__}, not a string") from None
    except ValueError:  # a str with no UTF-8 (a lone surrogate); a file's strings are checked UTF-8
        bad = next(i for i, item in enumerate(items) if not _has_utf8(item))
        raise InvalidModel(f"{key}[{bad}] is not valid Unicode") from None


def _has_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _token_table(metadata: Mapping[str, Any]) -> _core.StringTable:
    # The whole-vocabulary checks run in the core, in the pass that builds the index.
    table = string_table(metadata, KEY_PREFIX + "tokens")
    if table is None:
        raise InvalidModel(f"{KEY_PREFIX}tokens is missing: the file has no vocabulary")
    if not len(table):
        raise InvalidModel(f"{KEY_PREFIX}tokens is empty")
    repeat = table.first_repeat()
    if repeat is not None:
        # Ids, not the token's text: a load error never quotes vocabulary text.
        raise InvalidModel(f"{KEY_PREFIX}tokens: token {repeat[0]} repeats token {repeat[1]}")
    return table


def _array_of(metadata: Mapping[str, Any], name: str, n_vocab: int, dtype, *, default) -> np.ndarray:
    values = metadata.get(KEY_PREFIX + name)
    if values is None:
        return np.full(n_vocab, default, dtype=dtype)
    if isinstance(values, np.ndarray) and not _fits(values, np.dtype(dtype)):
        # A list's conversion below refuses such values (OverflowError); an array's would wrap them.
        raise InvalidModel(f"{KEY_PREFIX}{name} holds values that are not {np.dtype(dtype).name}")
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise InvalidModel(f"{KEY_PREFIX}{name} holds values that are not {np.dtype(dtype).name}") from None
    if array.ndim != 1 or len(array) < n_vocab:
        raise InvalidModel(f"{KEY_PREFIX}{name} has {array.size} entries for {n_vocab} tokens")
    return array[:n_vocab]


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    """Every value of an integer array is one of `dtype`'s (other kinds convert as a list of them would)."""
    if values.dtype.kind not in "iu" or dtype.kind not in "iu" or np.can_cast(values.dtype, dtype) or not values.size:
        return True
    limits = np.iinfo(dtype)
    return bool(limits.min <= values.min() and values.max() <= limits.max)


def _special_id(metadata: Mapping[str, Any], name: str, n_vocab: int, default: int | None) -> int | None:
    value = metadata.get(KEY_PREFIX + name)
    if value is None:
        return default if default is not None and default < n_vocab else None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n_vocab:
        raise InvalidModel(f"{KEY_PREFIX}{name} = {value!r} is outside the vocabulary [0, {n_vocab})")
    return int(value)


def _byte_token_value(text: str, token_id: int) -> bytes:
    # Byte tokens are spelled <0xNN>.
    if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
        try:
            return bytes([int(text[3:5], 16)])
        except ValueError:
            pass
    raise InvalidModel(f"{KEY_PREFIX}tokens[{token_id}] is typed BYTE but is not spelled <0xNN>")


# ---------------------------------------------------------------------- factory

def check_metadata_kinds(metadata: Mapping[str, Any]) -> None:
    """InvalidModel naming the first tokenizer key whose value is not of its kind (METADATA_KINDS)."""
    for key, kind in METADATA_KINDS.items():
        value = metadata.get(key)
        if value is not None and not _is_kind(value, kind):
            found = "an array" if _is_kind(value, ARRAY) else type(value).__name__
            raise InvalidModel(f"{key} is {found}; expected {kind}")


def _is_kind(value: Any, kind: str) -> bool:
    if kind == STRING:
        return isinstance(value, str)
    if kind == FLAG:
        return isinstance(value, (bool, np.bool_))
    if kind == INTEGER:
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    return isinstance(value, (list, tuple, np.ndarray, _core.StringTable))


def tokenizer_keys(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The tokenizer's keys (METADATA_KINDS) of a file's metadata, each converted to a Python value once.
    A file's `Metadata` converts a value from the C++ header copy each time it is asked for: the kind
    check and the build reading the vocabulary (262,144 strings on Gemma 3) once each doubled the cost.
    The per-token number arrays come as numpy arrays where the file's metadata gives them so
    (`Metadata.numeric_array`): a Python int or float per token, turned straight back into an array,
    cost Gemma 3's load 20-40 ms."""
    numeric = getattr(metadata, "numeric_array", None)
    strings = getattr(metadata, "string_table", None)
    keys: dict[str, Any] = {}
    for key in METADATA_KINDS:
        if key in metadata:
            array = None
            if numeric is not None and key in NUMBER_ARRAYS:
                array = numeric(key)
            elif strings is not None and key in STRING_TABLES:
                array = strings(key, **STRING_TABLES[key])
            keys[key] = metadata[key] if array is None else array
    return keys


def tokenizer_from_metadata(metadata: Mapping[str, Any]) -> Tokenizer:
    """The tokenizer that `tokenizer.ggml.model` names, built from the file's metadata."""
    metadata = tokenizer_keys(metadata)
    check_metadata_kinds(metadata)
    model = metadata.get(KEY_PREFIX + "model")
    if model is None:
        raise InvalidModel(f"{KEY_PREFIX}model is missing: the file does not say which tokenizer it uses")
    if model == "gpt2":
        from ggufsm.reference.tokenizers.bpe import BpeTokenizer
        return BpeTokenizer(metadata)
    if model == "llama":
        from ggufsm.reference.tokenizers.spm import SpmTokenizer
        return SpmTokenizer(metadata)
    raise UnsupportedModel(f"{KEY_PREFIX}model = {model!r} is not supported (supported: 'gpt2', 'llama')")


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """A GGUF file's metadata as plain Python values, parsed and validated by the C++ core."""
    with open_gguf(path) as model_file:
        return model_file.metadata
