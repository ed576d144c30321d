"""Where the time goes: a per-op profile of one prefill and one decode step (`ggufsm bench forward --profile`).

    ggufsm bench forward --profile -m MODEL [-t 2] [--repeat 3] [--decode-tokens 64] [--handles K]

The fused forward times each op of its passes when a session profiles
(`_core.LlamaSession.set_profiling`, cpp/forward/forward.h `ForwardProfile`):
each op around its whole call, so a decode step's thread hand-offs count in
the op that waits for them. Matrix products are kept per role and weight
type. Around the forward, this module times from Python what a token costs
beyond it: the call through the binding (token ids in, logits view out), and
the sampler on the step's logits, greedy and at the default settings.

Prefill: 512 tokens from position 0. Decode: --decode-tokens steps from
position 16; with --handles K > 1, each step is K sessions' tokens as one
batched pass (`_core.DecodeBatch`, the pass K handles' steps meet in), its
profile the batch's (with a row of its own, "logits copy (batched)", for each
session's logits copied out of the pass's shared scratch). Each is run --repeat times; the table gives the median run,
op by op. Decode matrix rows also give the bytes their weights hold per step
and the read rate that makes (weight bytes / time): a product streaming at the
machine's read bandwidth is at its limit, one far below it is not.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

PREFILL_TOKENS = 512
DECODE_START = 16

# The weights each matmul op reads, by tensor name (blk.N.<suffix>, or a whole name).
ROLE_TENSORS = {
    "matmul wq/wk/wv": ("attn_q.weight", "attn_k.weight", "attn_v.weight"),
    "matmul wo": ("attn_output.weight",),
    "matmul gate/up": ("ffn_gate.weight", "ffn_up.weight"),
    "matmul down": ("ffn_down.weight",),
}


def weight_bytes(gguf_file) -> dict[tuple[str, str], int]:
    """Bytes per (op, type name) that one decode step's products read: every layer's matrices once, the output whole."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    tensors = gguf_file.tensors
    for name, info in tensors.items():
        for op, suffixes in ROLE_TENSORS.items():
            if name.startswith("blk.") and name.split(".", 2)[2] in suffixes:
                out[(op, info.type.name)] += info.nbytes
    output = tensors.get("output.weight") or tensors["token_embd.weight"]
    out[("matmul output (lm head)", output.type.name)] += output.nbytes
    return dict(out)


def profile_model(path: Path, threads: int, repeat: int, decode_tokens: int, handles: int = 1) -> dict:
    """{"prefill": [runs], "decode": [runs]}, each run {"wall_s", "pass_s", "ops": {(op, type): seconds}, ...} per pass/step."""
    from ggufsm import _core
    from ggufsm.reference.model.gguf_file import open_gguf
    from ggufsm.reference.sampling import GREEDY, Sampler, SamplingConfig

    gguf_file = open_gguf(path)
    model = _core.LlamaModel(gguf_file.core, threads)
    model.finish_load()  # the output's repack and the layers' collapse after the first pass: load, not a profiled step
    n_vocab = gguf_file.hyperparameters["n_vocab"]
    tokens = np.random.default_rng(0).integers(3, n_vocab, size=PREFILL_TOKENS + decode_tokens).tolist()
    n_ctx = PREFILL_TOKENS + decode_tokens + 16
    _core.LlamaSession(model, n_ctx).prefill(tokens[:PREFILL_TOKENS], 0)  # pages the weights in
    runs: dict[str, list[dict]] = {"prefill": [], "decode": []}
    samplers = {"sampling (greedy)": Sampler(GREEDY), "sampling (default: top-k 40, top-p, min-p, T 0.8)": Sampler(SamplingConfig(seed=0))}
    for _ in range(repeat):
        session = _core.LlamaSession(model, n_ctx)
        session.set_profiling(True)
        started = time.perf_counter()
        session.prefill(tokens[:PREFILL_TOKENS], 0)
        runs["prefill"].append(_run(session.profile, time.perf_counter() - started, 1))

        sessions = [_core.LlamaSession(model, n_ctx) for _ in range(handles)]
        for session in sessions:
            session.prefill(tokens[:DECODE_START], 0)
        profiled = sessions[0] if handles == 1 else _core.DecodeBatch(model)
        profiled.set_profiling(True)
        sampling = dict.fromkeys(samplers, 0.0)
        wall = 0.0
        for step in range(decode_tokens):
            token, pos = tokens[DECODE_START + step], DECODE_START + step
            started = time.perf_counter()
            if handles == 1:
                logits = sessions[0].decode(token, pos)
            else:
                profiled.decode(sessions, [token] * handles, [pos] * handles)
                logits = sessions[0].logits
            wall += time.perf_counter() - started
            for name, sampler in samplers.items():
                started = time.perf_counter()
                sampler.sample(logits, tokens[:DECODE_START + step])
                sampling[name] += time.perf_counter() - started
        run = _run(profiled.profile, wall, decode_tokens)
        run["extra"].update({name: seconds / decode_tokens for name, seconds in sampling.items()})
        runs["decode"].append(run)
    return {"runs": runs, "bytes": weight_bytes(gguf_file), "model": path.name, "handles": handles}


def _run(profile: dict, wall_s: float, per: int) -> dict:
    """One run's figures per pass (prefill) or per step (decode)."""
    ops = {(row["op"], row["type"] or ""): row["seconds"] / per for row in profile["ops"]}
    pass_s = profile["seconds"] / per
    waits = {row["op"]: (row["member0_seconds"] / per, row["others_seconds"] / per) for row in profile.get("waits", [])}
    if waits:
        waits["(walked: entry to leaving)"] = tuple(v / per for v in profile["walked_seconds"])
        waits["(ran parts)"] = tuple(v / per for v in profile["ran_seconds"])
    return {"wall_s": wall_s / per, "pass_s": pass_s, "ops": ops, "waits": waits,
            "passes": profile["passes"], "rows": profile["rows"],
            "extra": {"between the ops (loop, scratch)": pass_s - sum(ops.values()),
                      "binding + Python call (ids in, logits view out)": wall_s / per - pass_s}}


def _median_run(runs: list[dict]) -> dict:
    """Op by op, the median over runs (and the median wall time)."""
    keys = {key for run in runs for key in run["ops"]}
    extras = {key for run in runs for key in run["extra"]}
    waited = {key for run in runs for key in run["waits"]}
    return {"wall_s": float(np.median([r["wall_s"] for r in runs])),
            "waits": {key: tuple(float(np.median([r["waits"].get(key, (0.0, 0.0))[i] for r in runs])) for i in (0, 1))
                      for key in waited},
            "ops": {key: float(np.median([r["ops"].get(key, 0.0) for r in runs])) for key in keys},
            "extra": {key: float(np.median([r["extra"].get(key, 0.0) for r in runs])) for key in extras}}


def render(result: dict, threads: int, repeat: int, decode_tokens: int, bandwidth_gbs: float | None) -> str:
    prefill, decode = _median_run(result["runs"]["prefill"]), _median_run(result["runs"]["decode"])
    bytes_by_op = result["bytes"]
    lines = [
        f"model {result['model']}, {threads} threads, median of {repeat} runs, load average {os.getloadavg()[0]:.2f}"
        + (f", read bandwidth {bandwidth_gbs:.1f} GB/s" if bandwidth_gbs else ""),
        f"prefill: one pass of {PREFILL_TOKENS} tokens, {prefill['wall_s'] * 1e3:.1f} ms; "
        f"decode: {decode_tokens} steps from position {DECODE_START}"
        + (f", each of {result['handles']} sessions batched as one pass" if result["handles"] > 1 else "")
        + f", {decode['wall_s'] * 1e6:.0f} us per step (forward call)",
        "",
        "| op | weight type | prefill ms | share | decode us/step | share | decode weight MiB | decode GB/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = sorted(set(prefill["ops"]) | set(decode["ops"]), key=lambda k: -decode["ops"].get(k, 0.0))
    decode_total = decode["wall_s"] + sum(v for k, v in decode["extra"].items() if k.startswith("sampling (greedy"))
    for key in keys:
        p, d = prefill["ops"].get(key, 0.0), decode["ops"].get(key, 0.0)
        nbytes = bytes_by_op.get(key)
        rate = f"{nbytes / d / 1e9:.1f}" if nbytes and d else ""
        size = f"{nbytes / 2**20:.1f}" if nbytes else ""
        lines.append(f"| {key[0]} | {key[1]} | {p * 1e3:.2f} | {p / prefill['wall_s']:.1%} | {d * 1e6:.0f} | "
                     f"{d / decode_total:.1%} | {size} | {rate} |")
    for key in sorted(decode["extra"]):
        p = prefill["extra"].get(key)
        d = decode["extra"][key]
        p_cells = f"{p * 1e3:.2f} | {p / prefill['wall_s']:.1%}" if p is not None else " | "
        lines.append(f"| {key} | | {p_cells} | {d * 1e6:.0f} | {d / decode_total:.1%} | | |")
    lines.append(f"| **total** (forward call; decode: + greedy sampling) | | {prefill['wall_s'] * 1e3:.2f} | | "
                 f"{decode_total * 1e6:.0f} | | | |")
    lines += ["", step_split(decode, bytes_by_op, bandwidth_gbs), *walk_waits(decode)]
    return "\n".join(lines)


def walk_waits(decode: dict) -> list[str]:
    """A walked decode step's waits (ForwardProfile.wait_ns): per op, the time its phases held each member without
    a part to run: member 0 (the small ops' runner) and the others summed. Empty when the step was dispatched."""
    if not decode["waits"]:
        return []
    lines = ["", "Waits in the walked step (us/step, a member in an op's phases with no part to run: the phase "
             "before still running, or the op's last parts on another member):", "",
             "| op | member 0 | others |", "| --- | ---: | ---: |"]
    rows = sorted(((op, v) for op, v in decode["waits"].items() if not op.startswith("(")), key=lambda kv: -sum(kv[1]))
    for op, (first, others) in rows:
        lines.append(f"| {op} | {first * 1e6:.0f} | {others * 1e6:.0f} |")
    lines.append(f"| **waits** | {sum(v[0] for _, v in rows) * 1e6:.0f} | {sum(v[1] for _, v in rows) * 1e6:.0f} |")
    for op in ("(ran parts)", "(walked: entry to leaving)"):
        first, others = decode["waits"].get(op, (0.0, 0.0))
        lines.append(f"| {op} | {first * 1e6:.0f} | {others * 1e6:.0f} |")
    return lines


def step_split(decode: dict, bytes_by_op: dict, bandwidth_gbs: float | None) -> str:
    """A decode step in two: the products (their time, and the read rate their weights make) and everything else
    (attention, norms, rope, KV store, quantize, residual, the hand-offs the small ops wait for, the binding)."""
    products = sum(v for k, v in decode["ops"].items() if k[0].startswith("matmul"))
    nbytes = sum(bytes_by_op.values())
    step = decode["wall_s"]
    others = sorted(((v, k[0] + (f" {k[1]}" if k[1] else "")) for k, v in decode["ops"].items()
                     if not k[0].startswith("matmul")), reverse=True)
    others += [(v, k) for k, v in decode["extra"].items() if not k.startswith("sampling")]
    others.sort(reverse=True)
    rate = nbytes / products / 1e9 if products else 0.0
    at_limit = f"; the whole step at the read bandwidth would take {nbytes / (bandwidth_gbs * 1e9) * 1e6:.0f} us" \
        if bandwidth_gbs else ""
    return (f"Decode step split: {step * 1e6:.0f} us per step (forward call); in the products {products * 1e6:.0f} us "
            f"({products / step:.0%}) reading {nbytes / 2**20:.1f} MiB at {rate:.1f} GB/s; outside them "
            f"{(step - products) * 1e6:.0f} us ({(step - products) / step:.0%}): "
            + ", ".join(f"{name} {v * 1e6:.0f} us" for v, name in others[:6]) + at_limit + ".")


def run(args) -> int:
    from ggufsm._core import kernels
    from ggufsm.reference.bench.limits import ReadProbe
    from ggufsm.reference.model.registry import resolve

    if getattr(args, "handles", 1) < 1:
        raise SystemExit(f"--handles {args.handles}: a step needs at least one session")
    path = resolve(args.model, pull=True)
    from ggufsm.reference.bench.decode import parse_shape

    kernels.set_step_shape(**parse_shape(getattr(args, "shape", None)))
    try:
        result = profile_model(path, args.threads, args.repeat, args.decode_tokens, getattr(args, "handles", 1))
    finally:
        kernels.set_step_shape()
    pool = kernels.ThreadPool(args.threads)
    probe = ReadProbe(pool)
    bandwidth = statistics.median(max(probe.sample().values()) for _ in range(3))
    print(render(result, args.threads, args.repeat, args.decode_tokens, bandwidth))
    return 0
