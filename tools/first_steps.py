"""The first decode steps after a load: what the work a load leaves for after the first pass costs them.

    .venv/bin/python tools/first_steps.py [-m smollm2,gemma3] [--rounds 4] [--mode today ...]
                                          [--baseline-python PY] [--tokens 32]

After the first pass two jobs may run beside the first decode steps (LlamaModel::PassReads: the output's
repack, the repacked layers' collapse onto 2 MiB pages). Each measurement is a fresh child process (this file
run by a runner's interpreter) that loads the model from a private copy (warm: read through first; cold:
evicted, as `bench --first-token` does), prefills a 32-token prompt (the first pass), then times TOKENS decode
steps one by one (tokens 2..TOKENS+1), then waits for the load's leftovers (finish_load) and times the same
steps again in a fresh session at the same positions: the steady steps. A child prints the steps, the steady
steps, and the step after which each job had ended.

A runner is an interpreter and a mode (what the child sets before it loads): `today` (nothing), `repack-off`
(set_output_repack(False)), `collapse-off` (set_layer_page_collapse(False): the layers fault in on 2 MiB pages
at load), `both-off`, and `NAME=VALUE`: `_core.NAME(VALUE)` for a switch of one build only. The runners'
order is permuted round by round; the table gives, per runner, medians and ranges over the rounds of the
first steps' sum, its excess over the same child's steady steps, the first token, and the ratio to the
first runner round by round.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT_TOKENS = 32
N_CTX = 1024


def child(path: str, threads: int, mode: str, tokens: int) -> dict:
    import numpy as np

    from ggufsm import _core
    from ggufsm.reference.model.gguf_file import open_gguf

    for switch in mode.split("+"):
        if switch in ("repack-off", "both-off"):
            _core.set_output_repack(False)
        if switch in ("collapse-off", "both-off"):
            _core.set_layer_page_collapse(False)
        if "=" in switch:
            name, _, value = switch.partition("=")
            getattr(_core, name)(int(value) if value.lstrip("-").isdigit() else value)
    started = time.perf_counter()
    gguf_file = open_gguf(path)
    model = _core.LlamaModel(gguf_file.core, threads)
    ids = np.random.default_rng(0).integers(3, gguf_file.hyperparameters["n_vocab"], size=PROMPT_TOKENS + tokens)
    ids = ids.tolist()
    loaded = time.perf_counter()

    def steps(watch: bool) -> tuple[list[float], dict]:
        session = _core.LlamaSession(model, N_CTX)
        session.prefill(ids[:PROMPT_TOKENS], 0)
        first = time.perf_counter()
        times, ended = [], {"first_s": first - started}
        for step in range(tokens):
            at = time.perf_counter()
            session.decode(ids[PROMPT_TOKENS + step], PROMPT_TOKENS + step)
            times.append(time.perf_counter() - at)
            if watch:
                for job, state in (("repack", model.output_repack), ("collapse", model.repacked_collapse)):
                    if job not in ended and state not in ("waiting", "repacking", "ready", "collapsing"):
                        ended[job] = step
        return times, ended

    first_steps, ended = steps(True)
    model.finish_load()
    steady, _ = steps(False)
    return {"load_s": loaded - started, **ended, "steps": first_steps, "steady": steady,
            "repack_state": model.output_repack, "collapse_state": model.repacked_collapse}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="smollm2,gemma3")
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=31)
    parser.add_argument("--mode", action="append", help="a runner of this interpreter (repeatable; default: today)")
    parser.add_argument("--baseline-python", help="also the runner `baseline`: this interpreter, mode today")
    parser.add_argument("--states", default="warm,cold")
    args = parser.parse_args()

    from ggufsm.reference.bench.first_token import make_cold, private_copy, warm
    from ggufsm.reference.model.registry import resolve

    runners = {mode: (sys.executable, mode) for mode in args.mode or ["today"]}
    if args.baseline_python:
        runners["baseline"] = (args.baseline_python, "today")
    paths = [resolve(name) for name in args.model.split(",")]
    figures: dict[tuple[str, str, str], list[dict]] = {}
    load = os.getloadavg()[0]
    orders = list(itertools.permutations(runners))
    with tempfile.TemporaryDirectory(prefix="ggufsm-first-steps-", dir=paths[0].parent) as scratch:
        copies = {path: private_copy(path, Path(scratch), "first-steps") for path in paths}
        for round_index in range(args.rounds):
            for path in paths:
                for state in args.states.split(","):
                    for runner in orders[round_index % len(orders)]:
                        share = make_cold(copies[path]) if state == "cold" else warm(copies[path])
                        python, mode = runners[runner]
                        command = [python, "-P", __file__, "--child", str(copies[path]), str(args.threads), mode,
                                   str(args.tokens)]
                        done = subprocess.run(command, capture_output=True, text=True, check=False)
                        if done.returncode != 0:
                            raise SystemExit(f"{runner} child failed: {done.stderr[-2000:]}")
                        sample = json.loads(done.stdout.strip().splitlines()[-1])
                        sample["resident"] = share
                        figures.setdefault((path.name, state, runner), []).append(sample)
    print(render(paths, args, list(runners), figures, (load, os.getloadavg()[0])))
    return 0


def render(paths, args, runners, figures, load) -> str:
    def cell(values) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    lines = [f"{args.threads} threads, {args.rounds} rounds, steps 2-{args.tokens + 1} after a {PROMPT_TOKENS}-token "
             f"prompt, ms; load average {load[0]:.2f} before / {load[1]:.2f} after", "",
             "| model | cache | runner | first token ms | steps ms | steady ms | excess ms | step 2 ms | "
             "repack ends at | collapse ends at | steps / first runner's |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for path in paths:
        for state in args.states.split(","):
            base = figures[(path.name, state, runners[0])]
            for runner in runners:
                runs = figures[(path.name, state, runner)]
                sums = [sum(r["steps"]) * 1e3 for r in runs]
                steady = [sum(r["steady"]) * 1e3 for r in runs]
                ratio = [sum(a["steps"]) / sum(b["steps"]) for a, b in zip(runs, base, strict=True)]
                ends = {job: [str(r.get(job, "-")) for r in runs] for job in ("repack", "collapse")}
                lines.append(f"| {path.name[:12]} | {state} | {runner} | {cell([r['first_s'] * 1e3 for r in runs])} | "
                             f"{cell(sums)} | {cell(steady)} | {cell([a - b for a, b in zip(sums, steady, strict=True)])} | "
                             f"{cell([r['steps'][0] * 1e3 for r in runs])} | {','.join(ends['repack'])} | "
                             f"{','.join(ends['collapse'])} | {statistics.median(ratio):.2f}x "
                             f"({min(ratio):.2f}-{max(ratio):.2f}x) |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))))
    else:
        sys.exit(main())
