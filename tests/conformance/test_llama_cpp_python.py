"""The llama-cpp-python adapter maps operations honestly (opt-in: needs llama-cpp-python and a real model)."""

from __future__ import annotations

import pytest

from ggufsm.conformance.adapter import open_implementation
from ggufsm.conformance.plan.recipes import SuiteInputs
from ggufsm.conformance.run.runner import FAIL, NOT_SUPPORTED, PASS, run_suite

pytestmark = [pytest.mark.peer, pytest.mark.real_model]
llama_cpp = pytest.importorskip("llama_cpp")

PEER = "python:ggufsm.conformance.adapters.llama_cpp_python:make_adapter"


@pytest.fixture
def peer_inputs(smollm2_path, tmp_path) -> SuiteInputs:
    """As in the published report: SmolLM2 as the model, the kit's fixtures for everything else."""
    from ggufsm.conformance.inputs import prepare_inputs

    return prepare_inputs(tmp_path, model=smollm2_path)


def test_greedy_generate_returns_the_tokens_llama_itself_generates(smollm2_path):
    from ggufsm.conformance.adapters.llama_cpp_python import make_adapter

    adapter = make_adapter()
    try:
        assert adapter.call("init_runtime", {"n_ctx": 128, "n_threads": 1}).ok
        assert adapter.call("load_model", {"path": str(smollm2_path)}).ok
        reply = adapter.call("generate", {"prompt": "The capital of France is", "max_tokens": 6,
                                          "stop_at_eos": False, "sampling": {"temperature": 0.0}})
    finally:
        adapter.close()
    llm = llama_cpp.Llama(model_path=str(smollm2_path), n_ctx=128, n_threads=1, verbose=False)
    prompt = llm.tokenize(b"The capital of France is")
    expected = []
    for token in llm.generate(prompt, temp=0.0):
        expected.append(token)
        if len(expected) == 6:
            break
    llm.close()
    assert reply.ok and reply.value["token_ids"] == expected


def test_operations_llama_cpp_python_lacks_are_never_passes_and_its_crashes_are_recorded(peer_inputs):
    with open_implementation(PEER) as implementation:
        run = run_suite(implementation, peer_inputs, walk_examples=0,
                        case_globs=["*replace_model*", "*set_sampling*", "Generating.free", "Ready.generate[input*",
                                    "Initialized.load_model*"])
    statuses = {result.id: result for result in run.results}
    assert all(statuses[case].status == NOT_SUPPORTED for case in statuses if "replace_model" in case or "set_sampling" in case)
    assert statuses["Ready.generate[input_valid=false]"].status == FAIL   # max_tokens=-1 means "until the context is full"
    # the library refuses malformed and unsupported files with one error
    unsupported = statuses["Initialized.load_model[model_readable=true,model_well_formed=true,model_supported=false]"]
    assert unsupported.status == FAIL and "got InvalidModel" in unsupported.message
    assert statuses["Initialized.load_model[model_readable=true,model_well_formed=false]"].status == PASS
    # free while a generate runs may crash the peer (seen: SIGSEGV); either way the run records it and goes on
    assert statuses["Generating.free"].status in (PASS, FAIL)
    assert len(statuses) == len(run.results) > 20
