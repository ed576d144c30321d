"""GPT-2's pre-tokenizer hand-written in the core (`_core.pretokenize_gpt2`, cpp/tokenizer/pretokenize.h)
cuts every text into exactly the words the expressions do on the `regex` package (the Python
reference, `PreTokenizer.split_reference`), so a model whose pre-tokenizer it covers loads without
importing `regex`. The core's Unicode tables hold one Unicode version (unicode_classes.h) and lead; the
comparisons leave out the code points only one of the header and the installed `regex` assigns
(unicode_header.py), so any `regex` release, older or newer, is compared where the two can agree."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from unicode_header import assigned_by_one_only, committed, disagreements, read_tables

from ggufsm.reference.model import registry as models
from ggufsm.reference.tokenizers.pretokenizers import CORE_GPT2, PRETOKENIZERS, PreTokenizer

CORE_NAMES = sorted(name for name, pretokenizer in PRETOKENIZERS.items() if pretokenizer.runs_in_core)
TABLES = Path(__file__).resolve().parents[2] / "cpp" / "tokenizer"

# The characters where the expression's branches meet: contractions' letters, the space the words take,
# other whitespace (Unicode spaces among them; \x1c-\x1f are \s for `re` but not for `regex`), digits of
# several scripts, letters and marks of several scripts, and symbols.
TRICKY = st.sampled_from(list("'sStTrReEvVmMlLdD  \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2000\u3000\u200b0179٣½Ⅻ²aé日ß̈😀!?.-_$"))


# Computed once here, not inside an example, whose time Hypothesis limits.
ASSIGNED_BY_ONE_ONLY = assigned_by_one_only()


def common_to_both(text: str) -> str:
    """The text with every code point only one of the header and `regex` assigns replaced by one both
    leave unassigned (U+0378): there the core and the reference differ by design, not by a bug."""
    return "".join("\u0378" if ord(char) in ASSIGNED_BY_ONE_ONLY else char for char in text)


TEXTS = st.one_of(st.text(), st.text(TRICKY),
                  st.lists(st.one_of(TRICKY, st.characters()), max_size=40).map("".join)).map(common_to_both)


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


def test_the_core_character_classes_agree_with_regex_on_every_code_point_both_assign():
    """unicode_classes.h leads (one Unicode version, kUnicodeVersion); a `regex` with another version is
    compared on the code points both assign. To move the core to `regex`'s version, regenerate it:
    python cpp/tokenizer/generate_unicode_classes.py > cpp/tokenizer/unicode_classes.h"""
    assert disagreements(committed()) == []


@pytest.mark.parametrize("table, first", [("kLetters", 0x41), ("kNumbers", 0x30), ("kSpaces", 0x9)])
def test_a_header_with_one_class_range_wrong_fails_the_comparison(table, first):
    """A stale or hand-edited table: the range that starts at `first` loses its first code point."""
    text = (TABLES / "unicode_classes.h").read_text()
    start = text.index(f"CodeRange {table}[]")
    end = text.index("};", start)
    body = text[start:end].replace(f"{{0x{first:X}, ", f"{{0x{first + 1:X}, ", 1)
    assert body != text[start:end]
    problems = disagreements(read_tables(text[:start] + body + text[end:]))
    assert any(problem.startswith(f"{table} and") and f"first U+{first:04X}" in problem for problem in problems)


def test_the_header_names_the_unicode_version_its_assigned_table_holds():
    spec = importlib.util.spec_from_file_location("generate_unicode_classes", TABLES / "generate_unicode_classes.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    tables = committed()
    assert generator.unicode_version(set(tables.assigned)) == tables.version


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
