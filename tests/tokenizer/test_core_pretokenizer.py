"""GPT-2's pre-tokenizer hand-written in the core (`_core.pretokenize_gpt2`, cpp/tokenizer/pretokenize.h)
cuts every text into exactly the words the expressions do on the `regex` package (the Python
reference, `PreTokenizer.split_reference`), so a model whose pre-tokenizer it covers loads without
importing `regex`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ggufsm.reference.model import registry as models
from ggufsm.reference.tokenizers.pretokenizers import CORE_GPT2, PRETOKENIZERS, PreTokenizer

CORE_NAMES = sorted(name for name, pretokenizer in PRETOKENIZERS.items() if pretokenizer.runs_in_core)
TABLES = Path(__file__).resolve().parents[2] / "cpp" / "tokenizer"

# The characters where the expression's branches meet: contractions' letters, the space the words take,
# other whitespace (Unicode spaces among them; \x1c-\x1f are \s for `re` but not for `regex`), digits of
# several scripts, letters and marks of several scripts, and symbols.
TRICKY = st.sampled_from(list("'sStTrReEvVmMlLdD  \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2000\u3000\u200b0179٣½Ⅻ²aé日ß̈😀!?.-_$"))
TEXTS = st.one_of(st.text(), st.text(TRICKY), st.lists(st.one_of(TRICKY, st.characters()), max_size=40).map("".join))


def test_the_registry_models_pre_tokenizers_run_in_the_core():
    assert {"smollm", "gpt2", "gpt-2"} <= set(CORE_NAMES)
    assert not PRETOKENIZERS["llama3"].runs_in_core  # the other expressions keep the reference path


@pytest.mark.parametrize("name", CORE_NAMES)
@settings(max_examples=300)
@given(text=TEXTS)
@example(text="")
@example(text="  \n\n x 's 'S 'll 'l ''ve 12 a1b  ")
@example(text="   ")
@example(text=" 1 2 x\u3000\u3000y")
def test_the_core_cuts_every_text_as_the_expressions_do_on_regex(name, text):
    pretokenizer = PRETOKENIZERS[name]
    assert pretokenizer.split(text) == pretokenizer.split_reference(text)


def test_the_core_character_classes_are_the_ones_the_regex_package_has_now():
    """unicode_classes.h is generated from `regex`; if a new `regex` moves to a new Unicode version,
    regenerate it (python cpp/tokenizer/generate_unicode_classes.py > cpp/tokenizer/unicode_classes.h)."""
    spec = importlib.util.spec_from_file_location("generate_unicode_classes", TABLES / "generate_unicode_classes.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (TABLES / "unicode_classes.h").read_text().split("\n", 2)[2]
    assert generator.header().split("\n", 2)[2] == committed  # past the two comment lines naming the version


def test_every_expression_list_the_core_covers_names_a_registered_pre_tokenizer():
    assert set(CORE_GPT2) <= {pretokenizer.expressions for pretokenizer in PRETOKENIZERS.values()}


def test_a_bpe_tokenizer_the_core_splits_for_builds_and_encodes_without_importing_regex():
    script = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from vocabularies import bpe_metadata\n"
        "from ggufsm.reference.tokenizers.tokenizer import tokenizer_from_metadata\n"
        "metadata = bpe_metadata()\n"
        "metadata['tokenizer.ggml.pre'] = 'smollm'\n"
        "tokenizer = tokenizer_from_metadata(metadata)\n"
        "assert tokenizer.decode(tokenizer.encode('hello world 42', add_special=False)) == 'hello world 42'\n"
        "print('regex' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@settings(max_examples=150, deadline=None)
@given(text=TEXTS)
def test_smollm2_encodes_every_text_to_the_ids_the_reference_split_gives(real_tokenizers, text):
    tokenizer = real_tokenizers("smollm2")
    assert tokenizer.pretokenizer.runs_in_core
    ids = tokenizer.encode(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PreTokenizer, "split", PreTokenizer.split_reference)
        assert tokenizer.encode(text) == ids


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_loading_a_registry_models_tokenizer_and_encoding_never_imports_regex(name):
    status = models.cache_status(models.REGISTRY[name])
    if status.state != "verified":
        pytest.skip(f"real model {name!r} not ready ({status.detail})")
    script = (
        "import sys\n"
        "from ggufsm.reference.tokenizers.tokenizer import read_model_metadata, tokenizer_from_metadata\n"
        "tokenizer = tokenizer_from_metadata(read_model_metadata(sys.argv[1]))\n"
        "tokenizer.decode(tokenizer.encode('Hello world, 42 apples!'))\n"
        "print('regex' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(status.path)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
