"""The guard functions: one per guard of the table, named as the table names it.

The lifecycle machine resolves each transition condition by name on the
handle's lifecycle, which inherits these methods. Each answers for the command
in progress (the machine's Decision), reading the handle's resident data and
what the command carries, and changes nothing resident; the machine computes
each at most once per operation, in the table's order, and only when a branch
still needs it. A guard that does not hold keeps its reason on the command
(``holds``), or raises the table's named error saying what was wrong: either
way the guard is false and the table's outcome follows.
"""

from __future__ import annotations

from ggufsm.reference.runtime.commands import (
    Command,
    Forward,
    Generate,
    InitRuntime,
    InstallModel,
    SetSampling,
)
from ggufsm.reference.runtime.request import prompt_token_ids
from ggufsm.reference.runtime.resident import Resident
from ggufsm.spec.errors import InvalidModel, ModelUnavailable
from ggufsm.spec.names import FinishReason


class Guards:
    resident: Resident

    # ─── known before the operation changes anything ──

    def config_valid(self, command: InitRuntime) -> bool:
        problems = command.problems()
        return command.holds(not problems, "; ".join(problems))

    def model_resident(self, command: Command) -> bool:
        return command.holds(self.resident.model is not None, "no model is loaded")

    def input_valid(self, command: Generate) -> bool:
        assert self.resident.model is not None  # every cell naming input_valid has a model resident
        command.prompt_ids = prompt_token_ids(command.prompt, command.max_tokens, self.resident.model.tokenizer)
        return True

    def sampling_valid(self, command: Generate | SetSampling) -> bool:
        command.sampling = command.candidate(self.resident.sampling).validated()
        return True

    def prompt_fits(self, command: Generate) -> bool:
        assert self.resident.session is not None, "prompt_fits is a guard of states with a model"
        n_prompt, n_ctx = len(command.prompt_ids), self.resident.session.n_ctx
        return command.holds(n_prompt + 1 <= n_ctx,
                             f"the prompt has {n_prompt} tokens; the context holds {n_ctx}, leaving no room to generate")

    def context_left(self, command: Command) -> bool:
        assert self.resident.session is not None, "context_left is a guard of states with a model"
        request, n_ctx = self.resident.request, self.resident.session.n_ctx
        n_past = request.n_past if request is not None else 0
        if request is not None and n_past < n_ctx:  # asked every token: no reason formatted when it holds
            return True
        return command.holds(False, f"the context is full: {n_past} of {n_ctx} positions used")

    # ─── known while the operation runs, from what its work found ──

    def model_readable(self, command: InstallModel) -> bool:
        return command.holds(not isinstance(command.load.failure, ModelUnavailable), command.load.failure_message)

    def model_well_formed(self, command: InstallModel) -> bool:
        return command.holds(not isinstance(command.load.failure, InvalidModel), command.load.failure_message)

    def model_supported(self, command: InstallModel) -> bool:
        # Asked only once the file was readable and well-formed: any other failure is something this runtime does not run.
        return command.holds(command.load.model is not None, command.load.failure_message)

    def model_intact(self, command: Forward) -> bool:
        if command.file_checked_by_pass:  # checked after the pass its token came from, after this command began
            return True
        model = self.resident.model
        problem = model.file_changed() if model is not None else ""
        return command.holds(not problem, problem)

    def logits_finite(self, command: Forward) -> bool:
        # Asked only once model_intact held: non-finite logits from a changed file are that file's fault.
        return not command.nonfinite_logits or command.holds(False, command.nonfinite_logits)

    def cancelled(self, command: Generate) -> bool:
        request = command.request
        assert request is not None
        if request.finish_reason is not FinishReason.cancelled:
            return False
        command.reasons.append(request.end_note)
        return True
