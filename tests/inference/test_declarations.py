"""Architecture knowledge is written once, in C++ (cpp/gguf/architectures.cpp): the numpy oracle reads the
hyperparameters the C++ core validated, and what its code computes is checked against the declarations."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from ggufsm import _core
from ggufsm.conformance.fixtures.tiny_models import TinyGemma3Spec, TinyLlamaSpec, write_tiny_gemma3, write_tiny_llama
from ggufsm.reference.architectures import ORACLES, gemma3, llama, load_reference_model
from ggufsm.reference.architectures.weights import read_tensors
from ggufsm.reference.model.gguf_file import open_gguf
from ggufsm.spec.errors import UnsupportedModel

DECLARATIONS = _core.architectures()
ORACLE_MODULES = {"llama": llama, "gemma3": gemma3}


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "llama":
        return request.param, write_tiny_llama(directory / "tiny.gguf", TinyLlamaSpec())
    return request.param, write_tiny_gemma3(directory / "tiny.gguf", TinyGemma3Spec(final_logit_softcap=30.0))


def test_every_declared_architecture_has_a_numpy_oracle_and_no_oracle_lacks_a_declaration():
    assert set(ORACLES) == set(DECLARATIONS) == set(ORACLE_MODULES)


@pytest.mark.parametrize("name", sorted(ORACLE_MODULES))
def test_the_oracle_reads_the_tensors_the_declaration_names(name):
    module, declared = ORACLE_MODULES[name], DECLARATIONS[name]["tensors"]
    per_layer = {t["name"].removeprefix("blk.{i}.") for t in declared if t["per_layer"]}
    model_wide = {t["name"] for t in declared if not t["per_layer"]}
    assert {f"{suffix}.weight" for suffix in module.LAYER_TENSORS.values()} == per_layer
    assert {f"{name}.weight" for name in llama.MODEL_TENSORS} == model_wide


def test_the_oracles_hyperparameters_are_the_ones_the_cpp_core_validated(tiny):
    name, path = tiny
    model = load_reference_model(read_tensors(path))
    validated = open_gguf(path).hyperparameters
    renamed = {"head_dim": "head_dim_k"}
    for field in dataclasses.fields(model.hp):
        value = getattr(model.hp, field.name)
        assert getattr(value, "value", value) == validated[renamed.get(field.name, field.name)], field.name
    assert validated["architecture"] == name


def test_what_each_oracle_computes_is_what_its_declaration_switches_on(tiny):
    name, path = tiny
    validated = open_gguf(path).hyperparameters
    implemented = {"llama": llama.LLAMA_SWITCHES, "gemma3": gemma3.GEMMA3_SWITCHES}[name]
    assert {key: validated[key] for key in implemented} == implemented
    declared = DECLARATIONS[name]["forward"]
    assert (validated["rope_style"], validated["ffn"], validated["swa_period"]) == (
        declared["rope_style"], declared["ffn"], declared["swa_period"])


def test_an_oracle_refuses_a_declaration_whose_switches_it_does_not_compute(tiny):
    name, path = tiny
    tensors = read_tensors(path)
    other = {"llama": "gemma3", "gemma3": "llama"}[name]
    with pytest.raises(UnsupportedModel, match=f"the {other} oracle runs '{other}'"):
        ORACLES[other](tensors)


@pytest.mark.parametrize("name", sorted(ORACLE_MODULES))
def test_the_oracle_sources_name_no_metadata_key(name):
    """Hyperparameter keys are the declaration's: the oracle never reads the metadata for them."""
    source = inspect.getsource(ORACLE_MODULES[name])
    for key in DECLARATIONS[name]["keys"]:
        suffix = key["key"].split(".", 1)[1]
        for quoted in (f'"{key["key"]}"', f'"{suffix}"', f"'{suffix}'", f'.{suffix}"'):
            assert quoted not in source, quoted


def test_the_declarations_state_the_gemma3_switches_llama_cpp_runs():
    forward = DECLARATIONS["gemma3"]["forward"]
    assert forward == {"rope_style": "neox", "ffn": "geglu", "scale_embedding": True, "swa_period": 6,
                       "rope_freq_base_local": 10000.0}
    assert DECLARATIONS["llama"]["forward"]["rope_style"] == "normal"
    assert DECLARATIONS["llama"]["forward"]["swa_period"] == 0


@pytest.mark.real_model
@pytest.mark.parametrize("name, expected", [
    ("smollm2", {"architecture": "llama", "n_layer": 30, "n_embd": 576, "head_dim_k": 64, "rope_freq_base": 100000.0,
                 "embd_scale": 1.0, "attn_scale": 0.125, "rope_style": "normal", "ffn": "swiglu", "qk_norm": False}),
    ("gemma3", {"architecture": "gemma3", "n_layer": 18, "n_embd": 640, "head_dim_k": 256, "sliding_window": 512,
                "rope_freq_base": 1000000.0, "rope_freq_base_local": 10000.0, "swa_period": 6, "attn_scale": 0.0625,
                "embd_scale": 640 ** 0.5, "rope_style": "neox", "ffn": "geglu", "qk_norm": True, "post_norms": True}),
])
def test_the_real_models_resolve_to_the_hyperparameters_llama_cpp_runs(name, expected):
    from real_models import real_model_path

    validated = open_gguf(real_model_path(name)).hyperparameters
    assert {key: validated[key] for key in expected} == pytest.approx(expected)
