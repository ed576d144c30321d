"""What spec 1.0's suite let pass, the 1.1 suite catches: one wrong toy runtime per kind of escape the
issue listed, each failed by the case that checks the rule it breaks."""

from __future__ import annotations

import functools

import pytest
import toy_runtime

from ggufsm.conformance.adapter import InProcessImplementation
from ggufsm.conformance.run.runner import FAIL, run_suite

# wrong runtime -> (a case it must fail, words its failure names)
CAUGHT = {
    "toy-reset-keeps-last-error": ("RecoverableError.reset*", "last_error"),
    "toy-ignores-stop-at-eos": ("Ready.generate*@eos", "finish_reason stop"),
    "toy-never-checks-top-p": ("Initialized.set_sampling[sampling_valid=false]@top_p=0", "expected InvalidSampling"),
    "toy-refuses-zero-max-tokens": ("Ready.generate*@max_tokens=0", "got InvalidInput"),
    "toy-accepts-empty-prompt": ("Ready.generate[input_valid=false]@prompt=''", "expected InvalidInput"),
    "toy-sampling-misses-the-open-request": ("ContinuationReady.set_sampling[sampling_valid=true]",
                                             "did not reach it"),
    "toy-retry-keeps-last-error": ("RecoverableError.set_sampling[sampling_valid=true,model_resident=true]",
                                   "last_error"),
    "toy-global-sampling": ("behaviour.handles_are_isolated", "sampling"),
    "toy-cancel-waits": ("Generating.cancel", "did not answer"),
    "toy-commands-do-not-wait": ("Generating.reset", "it must wait"),
    "toy-failed-load-keeps-scratch": ("Initialized.load_model[model_readable=false]", "scratch"),
}


@pytest.mark.parametrize("variant", sorted(CAUGHT))
def test_each_escape_of_the_old_suite_is_caught_by_the_case_of_its_rule(variant, toy_inputs):
    case, words = CAUGHT[variant]
    glob = case.replace("[", "[[]") if "*" not in case else case
    factory = functools.partial(toy_runtime.make_variant, variant)
    run = run_suite(InProcessImplementation(factory, variant), toy_inputs, walk_examples=0, case_globs=[glob])
    failed = [result for result in run.results if result.status == FAIL]
    assert failed, f"{variant}: no case matching {glob!r} failed"
    assert any(words in result.message for result in failed), [result.message for result in failed]
    assert all("replay: ggufsm conformance replay" in result.message for result in failed)
