"""Model-level validation: every hyperparameter, damaged or absent, gives a named refusal
(or a model that still makes sense), never a crash."""

from __future__ import annotations

import math
import struct

import pytest

from ggufsm.conformance.fixtures import corrupt
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import InvalidModel, UnsupportedModel

INTEGER_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 10: "<Q", 11: "<q"}  # GGUF value type -> struct
FLOAT_FORMATS = {6: "<f", 12: "<d"}
EXTREME_INTEGERS = (0, 1, 2, 3, 7, 31, 127, 255, 65535, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 62, (1 << 64) - 1)
EXTREME_FLOATS = (0.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e308)

REQUIRED_LLAMA_KEYS = ("general.architecture", "llama.context_length", "llama.embedding_length", "llama.block_count",
                       "llama.feed_forward_length", "llama.attention.head_count",
                       "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model", "tokenizer.ggml.tokens",
                       "tokenizer.ggml.merges")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("validation") / "tiny.gguf")


@pytest.fixture(scope="module")
def layout(tiny):
    return corrupt.read_layout(tiny)


def open_or_refuse(data: bytes):
    try:
        return open_gguf(data)
    except (InvalidModel, UnsupportedModel) as error:
        assert "offset" in error.message, error.message
        return error


def scalar_entries(data: bytes, layout, formats):
    for site in layout.kvs.values():
        (value_type,) = struct.unpack_from("<I", data, site.type)
        if value_type in formats:
            yield site, formats[value_type]


def fits(value, fmt: str) -> bool:
    try:
        struct.pack(fmt, value)
        return True
    except (struct.error, OverflowError):
        return False


def test_every_integer_entry_at_every_extreme_is_refused_by_name_or_opens(tiny, layout):
    source = tiny.read_bytes()
    tried = 0
    for site, fmt in scalar_entries(source, layout, INTEGER_FORMATS):
        for value in (v for v in EXTREME_INTEGERS if fits(v, fmt)):
            data = bytearray(source)
            struct.pack_into(fmt, data, site.value, value)
            open_or_refuse(bytes(data))
            tried += 1
    assert tried > 50


def test_every_float_entry_at_every_extreme_is_refused_by_name_or_opens(tiny, layout):
    source = tiny.read_bytes()
    for site, fmt in scalar_entries(source, layout, FLOAT_FORMATS):
        for value in (v for v in EXTREME_FLOATS if fits(v, fmt)):
            data = bytearray(source)
            struct.pack_into(fmt, data, site.value, value)
            outcome = open_or_refuse(bytes(data))
            if site.key == "llama.attention.layer_norm_rms_epsilon" and not (value > 0 and math.isfinite(value)):
                assert isinstance(outcome, InvalidModel) and site.key in outcome.message


def test_a_block_count_that_disagrees_with_the_tensors_names_the_missing_block(tiny, layout):
    data = bytearray(tiny.read_bytes())
    struct.pack_into("<I", data, layout.kv("llama.block_count").value, 3)
    with pytest.raises(InvalidModel, match=r"missing tensor 'blk\.2\.attn_norm\.weight' \(block 2 of block_count 3\)"):
        open_gguf(bytes(data))


@pytest.mark.parametrize("key", REQUIRED_LLAMA_KEYS)
def test_each_required_key_when_absent_is_an_invalid_model_naming_it(tiny, layout, key):
    data = bytearray(tiny.read_bytes())
    corrupt.rename(data, layout.kv(key).entry, "x" + key[1:])
    with pytest.raises(InvalidModel, match=f"missing required metadata '{key}'"):
        open_gguf(bytes(data))


def test_any_key_absent_is_refused_by_name_or_opens(tiny, layout):
    source = tiny.read_bytes()
    for key, site in layout.kvs.items():
        data = bytearray(source)
        corrupt.rename(data, site.entry, "x" + key[1:])
        open_or_refuse(bytes(data))


def test_an_odd_head_size_without_a_rope_width_is_refused_naming_the_head_count(tmp_path):
    path = write_tiny_llama(tmp_path / "odd.gguf", n_embd=63, n_head=1, n_head_kv=1, n_ff=64)
    layout = corrupt.read_layout(path)
    data = bytearray(path.read_bytes())
    key = "llama.rope.dimension_count"
    corrupt.rename(data, layout.kv(key).entry, "x" + key[1:])
    with pytest.raises(InvalidModel, match="'llama.attention.head_count'.*rotated width 63"):
        open_gguf(bytes(data))
