"""`ggufsm bench decode`: decode at the memory limit, the read bandwidth measured right beside it.

    ggufsm bench decode -m smollm2 [-t 2] [--repeat 5] [--tokens 64] [--start 16]

A decode step reads every weight matrix once (and the output matrix, tied to
the embedding in both models, whole), plus the KV cache up to its position: it
is bound by memory bandwidth. Its distance to that limit is

    tok/s x bytes read per token / read bandwidth

with the bandwidth measured by the benches' one read probe (reference/bench/limits.py,
`ReadProbe`: a streaming sum over 512 MiB in 2 MiB pages, each sample the faster of
a plain pass and one with software prefetch) sampled 3 times right before and 3
times right after each run of decode steps, at the same thread count: this
machine's bandwidth drifts with its neighbours' load, so each run is held to the
median of its own moment's samples and the share is the median of the rounds.
The old measure (one plain-sum pass right after the run over a buffer on 4 KiB pages, the probe
of sessions 1-5) is given beside it.

Two placements of the same weights are measured in turn (A, B, A, B, ...):
`in place` (views into the file's memory map, 4 KiB pages) and `huge pages`
(one anonymous copy advised MADV_HUGEPAGE at load, LlamaModel(huge_pages=True)).
With --peer, llama.cpp's own `llama-bench -n TOKENS -p 0 -r 1` on the same file runs
in each round too (tg, its decode tok/s; -d START puts its steps at the same depth).

With --step-ab the two contenders are instead two shapes of the same step over one in-place model, in one
process (`kernels.set_step_shape(layer_walk=...)`): `layer walk` (the pool's threads walk the step's ops
together, cpp/forward/pass.cpp) and `dispatched` (one pool dispatch per product), alternating run by run;
with --shape NAME=VALUE,..., the default step against the step with those `set_step_shape` arguments
(e.g. `walk_part_bytes=65536`: the walk's products cut into parts of about 64 KiB, a member done with its share
taking the other's last parts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LLAMA_BENCH = Path("/work/peer/llama-build/bin/llama-bench")


@dataclass
class Series:
    tok_s: list[float] = field(default_factory=list)
    share: list[float] = field(default_factory=list)  # of the median of the probe's samples around each run
    old_share: list[float] = field(default_factory=list)  # of one plain-sum pass right after each run (sessions 1-5)

    def add(self, tok_s: float, per_token: int, beside) -> None:
        self.tok_s.append(tok_s)
        self.share.append(tok_s * per_token / (beside.median * 1e9))
        self.old_share.append(tok_s * per_token / (beside.old_measure * 1e9))


def bytes_per_token(gguf_file, position: int) -> int:
    """Bytes one decode step at `position` reads: every tensor once (tied output: the embedding, whole), and
    per layer the f16 keys and values of the positions it attends (a sliding layer at most its window)."""
    hp = gguf_file.hyperparameters
    weights = sum(info.nbytes for info in gguf_file.tensors.values())
    if not hp["output_tied"]:  # then the embedding gives one row, and output.weight is read whole
        embd = gguf_file.tensors["token_embd.weight"]
        weights -= embd.nbytes - embd.nbytes // hp["n_vocab"]
    kv = 0
    for layer in range(hp["n_layer"]):
        slides = hp["sliding_window"] > 0 and hp["swa_period"] > 0 and (layer + 1) % hp["swa_period"] != 0
        attended = min(position + 1, hp["sliding_window"]) if slides else position + 1
        kv += 2 * hp["n_head_kv"] * hp["head_dim_k"] * attended * 2
    return weights + kv


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser("decode", help="decode tok/s x bytes per token beside the read bandwidth measured with it")
    parser.add_argument("-m", "--model", default="smollm2", help="registry name or GGUF path (default smollm2)")
    parser.add_argument("-t", "--threads", type=int, default=2, help="threads of the forward's pool")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, each running every contender once (default 5)")
    parser.add_argument("--tokens", type=int, default=64, help="decode steps per run (default 64)")
    parser.add_argument("--start", type=int, default=16, help="position of the first decode step (default 16)")
    parser.add_argument("--peer", action="store_true", help=f"also run llama.cpp's {LLAMA_BENCH} in each round")
    parser.add_argument("--step-ab", action="store_true",
                        help="instead of the two placements: the step walked by the pool's threads (layer walk) against "
                             "one dispatch per product (dispatched), on one in-place model, alternating in one process")
    parser.add_argument("--shape", default=None, metavar="NAME=VALUE,...",
                        help="with --step-ab: the default step against the step with these kernels.set_step_shape "
                             "arguments (e.g. walk_part_bytes=65536,small_op_read_ahead=32), instead of walk vs dispatched")
    parser.add_argument("--long-context", action="store_true",
                        help="instead: prefill of 4096 tokens and decode at position 4000, beside llama-bench "
                             "(reference/bench/long_context.py; --repeat rounds)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    if args.long_context:
        from ggufsm.reference.bench import long_context

        return long_context.run(args)
    from ggufsm import _core
    from ggufsm._core import kernels
    from ggufsm.reference.bench.limits import ReadProbe, record_beside
    from ggufsm.reference.model.gguf_file import open_gguf
    from ggufsm.reference.model.registry import resolve

    path = resolve(args.model, pull=True)
    gguf_file = open_gguf(path)
    load_before = os.getloadavg()[0]
    models = {}
    step_ab = getattr(args, "step_ab", False)
    for name, huge in (("in place", False), *([] if step_ab else [("huge pages", True)])):
        started = time.perf_counter()
        models[name] = _core.LlamaModel(gguf_file.core, args.threads, huge_pages=huge)
        # The work the load leaves for after the first pass (the output's repack, the layers' collapse onto
        # 2 MiB pages) is load: timed as load, not inside the first round's decode steps.
        models[name].finish_load()
        load_s = time.perf_counter() - started
        models[name] = (models[name], load_s)
    # Contender -> its step shape (set_step_shape's arguments), or None: the default shape.
    shapes: dict[str, dict | None] = {name: None for name in models}
    shaped = parse_shape(getattr(args, "shape", None))
    if step_ab and shaped:
        models = {args.shape: models["in place"], "default": models["in place"]}
        shapes = {args.shape: shaped, "default": {}}
    elif step_ab:
        models = {"layer walk": models["in place"], "dispatched": models["in place"]}
        shapes = {"layer walk": {"layer_walk": True}, "dispatched": {"layer_walk": False}}
    pool = kernels.ThreadPool(args.threads)
    probe = ReadProbe(pool, old_measure=True)
    n_ctx = args.start + args.tokens + 16
    tokens = np.random.default_rng(0).integers(3, gguf_file.hyperparameters["n_vocab"], size=n_ctx).tolist()
    per_token = bytes_per_token(gguf_file, args.start + args.tokens // 2)
    series = {name: Series() for name in models}
    peer = Series() if args.peer and LLAMA_BENCH.exists() else None
    start_record(args.record, path, models, per_token, peer is not None)
    for round_ in range(args.repeat):
        # Step shapes alternate which runs first, round by round (the first run of a round meets a colder cache).
        order = list(models.items()) if not step_ab or round_ % 2 == 0 else list(models.items())[::-1]
        for name, (model, _) in order:
            if shapes[name] is not None:
                kernels.set_step_shape(**shapes[name])
            try:
                tok_s, beside = probe.around(lambda model=model: decode_run(_core, model, n_ctx, tokens, args))
            finally:
                kernels.set_step_shape()
            series[name].add(tok_s, per_token, beside)
            args.record.sample(f"decode {name}", tok_s, "tok/s")
            record_beside(args.record, f"read bandwidth around {name}", beside)
        if peer is not None:
            tok_s, beside = probe.around(lambda: llama_bench_tg(path, args.threads, args.tokens, args.start))
            peer.add(tok_s, per_token, beside)
            args.record.sample("decode llama.cpp", tok_s, "tok/s", runner="llama.cpp")
            record_beside(args.record, "read bandwidth around llama.cpp", beside)
    print(render(path, args, models, series, peer, per_token, (load_before, os.getloadavg()[0]), probe))
    return 0


def parse_shape(text: str | None) -> dict[str, int]:
    """--shape's NAME=VALUE,... as kernels.set_step_shape's keyword arguments (integers; true/false for switches)."""
    if not text:
        return {}
    words = {"true": 1, "false": 0}
    shape = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        shape[name.strip()] = words[value.strip().lower()] if value.strip().lower() in words else int(value)
    return shape


def decode_run(_core, model, n_ctx: int, tokens: list[int], args) -> float:
    """tok/s of `args.tokens` decode steps from position `args.start` in a fresh session (its prompt prefilled first)."""
    session = _core.LlamaSession(model, n_ctx)
    session.prefill(tokens[:args.start], 0)
    started = time.perf_counter()
    for step in range(args.tokens):
        session.decode(tokens[args.start + step], args.start + step)
    return args.tokens / (time.perf_counter() - started)


def start_record(record, path: Path, models, per_token: int, peer: bool) -> None:
    """What the record needs besides the samples: the file, the peer's binary, the loads, bytes per token,
    and the comparisons the report takes round by round (the share of the bandwidth, the ratios)."""
    from ggufsm.reference.bench.record import OBSERVED

    record.model(path)
    if peer:
        record.peer_binary(LLAMA_BENCH)
    for name, (model, load_s) in models.items():
        record.sample(f"load {name}", load_s, "s", better="lower")
        record.fact(f"weights copied {name}", int(model.weights_copied), OBSERVED, "LlamaModel.weights_copied (bytes)")
        record.fact(f"weights in huge pages {name}", int(model.weights_in_huge_pages), OBSERVED,
                    "LlamaModel.weights_in_huge_pages (bytes)")
    record.fact("bytes_per_token", per_token, OBSERVED,
                "summed from the file's tensor infos: weights, tied output whole, f16 KV at the middle step")
    contenders = [*models, *(["llama.cpp"] if peer else [])]
    for name in contenders:
        record.compare(f"decode {name} / read bandwidth", f"decode {name}", f"read bandwidth around {name}",
                       factor=per_token / 1e9,
                       how="tok/s x bytes per token / the median of the read probe's samples around the run")
        record.compare(f"decode {name} / read bandwidth, old measure", f"decode {name}",
                       f"read bandwidth around {name}, old measure (one plain sum after)", factor=per_token / 1e9,
                       how="tok/s x bytes per token / one plain-sum pass right after the run (sessions 1-5)")
    first, second = list(models)[:2]
    record.compare(f"{second} / {first}", f"decode {second}", f"decode {first}", how="round by round")
    if peer:
        record.compare("in place / llama.cpp", "decode in place", "decode llama.cpp", how="round by round")


def llama_bench_tg(path: Path, threads: int, tokens: int, depth: int) -> float:
    """llama.cpp's decode tok/s on the same file: `llama-bench -p 0 -n tokens -d depth -r 1`."""
    binary = shutil.which(str(LLAMA_BENCH)) or str(LLAMA_BENCH)
    out = subprocess.run([binary, "-m", str(path), "-t", str(threads), "-p", "0", "-n", str(tokens), "-d", str(depth),
                          "-r", "1", "-o", "json"], check=True, capture_output=True, text=True, timeout=600).stdout
    return float(json.loads(out)[0]["avg_ts"])


def render(path, args, models, series, peer, per_token, load, probe) -> str:
    median = lambda v: float(np.median(v))  # noqa: E731
    span = lambda v: f"{min(v):.1f}-{max(v):.1f}"  # noqa: E731
    pct = lambda v: f"{median(v):.0%} ({min(v):.0%}-{max(v):.0%})"  # noqa: E731
    lines = [
        f"model {path.name}, {args.threads} threads, {args.repeat} rounds of {args.tokens} decode steps from position "
        f"{args.start}, load average {load[0]:.2f} before / {load[1]:.2f} after. "
        f"Bytes read per token (weights, tied output whole, f16 KV at the middle step): {per_token / 2**20:.1f} MiB.",
        f"The {probe.describe()}. Old measure: one plain-sum pass right after the run, over a buffer on 4 KiB pages "
        "(the probe of sessions 1-5).",
        "",
        "| weights | load (s) | decode tok/s, median (range) | share of the read bandwidth, median (range) | "
        "old measure |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (model, load_s) in models.items():
        s = series[name]
        note = ""
        if model.weights_copied:
            note = f" ({model.weights_in_huge_pages / max(model.weights_copied, 1):.0%} of the copy in 2 MiB pages)"
        lines.append(f"| {name}{note} | {load_s:.3f} | {median(s.tok_s):.1f} ({span(s.tok_s)}) | "
                     f"{pct(s.share)} | {pct(s.old_share)} |")
    if peer is not None:
        lines.append(f"| llama.cpp (llama-bench tg) | | {median(peer.tok_s):.1f} ({span(peer.tok_s)}) | "
                     f"{pct(peer.share)} | {pct(peer.old_share)} |")
    first, second = list(series)[:2]
    base = series[first].tok_s
    ratios = [h / b for h, b in zip(series[second].tok_s, base, strict=True)]
    lines += ["", f"{second} / {first}, round by round: median {median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}x)"]
    if peer is not None:
        vs = [b / p for b, p in zip(base, peer.tok_s, strict=True)]
        lines.append(f"{first} / llama.cpp, round by round: median {median(vs):.2f}x (range {min(vs):.2f}-{max(vs):.2f}x)")
    return "\n".join(lines)
