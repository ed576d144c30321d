"""The per-token number arrays (token types, scores) read as numpy arrays give the tokenizer the lists
gave it, and refuse what the lists refused."""

from __future__ import annotations

import numpy as np
import pytest
from vocabularies import bpe_metadata, spm_metadata

from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata
from ggufsm.spec.errors import InvalidModel


def as_arrays(metadata: dict, dtypes: dict[str, type]) -> dict:
    return {key: np.asarray(value, dtype=dtypes[key]) if key in dtypes else value for key, value in metadata.items()}


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int64, np.uint8])
def test_token_types_as_an_array_of_any_integer_type_give_the_tokenizer_the_list_gives(dtype):
    metadata = bpe_metadata()
    from_list = tokenizer_from_metadata(metadata)
    from_array = tokenizer_from_metadata(as_arrays(metadata, {"tokenizer.ggml.token_type": dtype}))
    assert from_array.token_types.tolist() == from_list.token_types.tolist()
    assert from_array.token_types.dtype == np.int32
    text = "hello world"
    assert from_array.encode(text) == from_list.encode(text)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scores_as_an_array_give_the_tokenizer_the_list_gives(dtype):
    metadata = spm_metadata()
    from_list = tokenizer_from_metadata(metadata)
    from_array = tokenizer_from_metadata(as_arrays(metadata, {"tokenizer.ggml.scores": dtype}))
    assert from_array.scores == from_list.scores
    assert all(type(score) is float for score in from_array.scores)


def test_the_spm_tokenizer_keeps_its_own_scores_so_a_caller_changing_its_array_later_changes_nothing():
    metadata = as_arrays(spm_metadata(), {"tokenizer.ggml.scores": np.float32})
    tokenizer = tokenizer_from_metadata(metadata)
    text = "hello world"
    before = tokenizer.encode(text)
    metadata["tokenizer.ggml.scores"][:] = -metadata["tokenizer.ggml.scores"]
    assert tokenizer.encode(text) == before == tokenizer_from_metadata(spm_metadata()).encode(text)


@pytest.mark.parametrize(("dtype", "value"), [(np.int64, 2**40), (np.uint32, 2**31), (np.int64, -(2**31) - 1)])
def test_a_token_type_outside_int32_is_refused_by_name_as_the_list_refuses_it(dtype, value):
    metadata = bpe_metadata()
    types = list(metadata["tokenizer.ggml.token_type"])
    types[2] = value
    with pytest.raises(InvalidModel, match="token_type holds values that are not int32"):
        tokenizer_from_metadata({**metadata, "tokenizer.ggml.token_type": types})
    with pytest.raises(InvalidModel, match="token_type holds values that are not int32"):
        tokenizer_from_metadata({**metadata, "tokenizer.ggml.token_type": np.asarray(types, dtype=dtype)})


def test_special_tokens_are_cut_longest_first_in_utf8_bytes_then_by_id():
    metadata = bpe_metadata()
    extra = ["<é>", "<ab>", "<日>", "<a>", "<abc>"]  # UTF-8 lengths 4, 4, 5, 3, 5
    metadata["tokenizer.ggml.tokens"] = [*metadata["tokenizer.ggml.tokens"], *extra]
    metadata["tokenizer.ggml.token_type"] = [*metadata["tokenizer.ggml.token_type"], *[3] * len(extra)]
    tokenizer = tokenizer_from_metadata(metadata)
    expected = sorted(range(tokenizer.vocab_size), key=lambda i: (-len(tokenizer.tokens[i].encode()), i))
    expected = [i for i in expected if tokenizer.token_types[i] in (2, 3, 4)]
    assert tokenizer._special_ids == expected
    assert [tokenizer.tokens[i] for i in tokenizer._special_ids[:4]] == ["<|end|>", "<tag>", "<日>", "<abc>"]
