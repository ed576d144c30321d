"""Measure how closely a ggufsm forward follows llama.cpp on real prompts.

    python tests/inference/measure_fidelity.py [-m MODEL.gguf] [-n 48] [--forward fused|numpy] [--activations q8|f32]

For each prompt (plain text and chat-formatted with the model's own
tokenizer.chat_template), tokenized by llama.cpp so that only the forward is
compared:
  - last prompt position: max |logit difference|, top-1 equal, top-5 overlap;
  - greedy: how many of the first N generated tokens are identical;
  - teacher-forced along llama.cpp's greedy sequence: at how many of the N
    positions our argmax equals llama.cpp's token, and for each miss llama.cpp's
    own margin between its top two logits (a near tie when small).
The same figures for llama.cpp against itself with an f32 instead of an f16 KV
cache give the noise floor: how far an innocent precision change moves it.
Greedy runs N tokens without stopping at end-of-generation tokens.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

MODEL = Path.home() / ".cache" / "ggufsm" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

PLAIN_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "The three primary colors are",
    "Photosynthesis is the process by which",
]
CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain what a hash table is in two sentences.",
    "Give me three tips for sleeping better.",
    "Translate 'good morning' into Spanish and German.",
]


@dataclass
class Run:
    greedy: list[int]  # [N] generated token ids
    step_logits: np.ndarray  # [N, n_vocab]: the logits each greedy token was chosen from


class LlamaCppForward:
    def __init__(self, path: Path, n_ctx: int, f32_kv: bool = False):
        import llama_cpp

        kv = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if f32_kv else {}
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=2, verbose=False, **kv)
        self.teacher = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=2, logits_all=True, verbose=False, **kv)
        self.n_vocab = self.llm.n_vocab()

    def _last_logits(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.n_vocab,)).copy()

    def run(self, prompt: list[int], n: int) -> Run:
        self.llm.reset()
        self.llm.eval(prompt)
        tokens, logits = [], []
        for _ in range(n):
            logits.append(self._last_logits())
            tokens.append(int(logits[-1].argmax()))
            self.llm.eval([tokens[-1]])
        return Run(tokens, np.stack(logits))

    def logits_along(self, sequence: list[int], first: int) -> np.ndarray:
        """Logits [len(sequence) - first, n_vocab] at positions first.., one batched pass."""
        self.teacher.reset()
        self.teacher.eval(sequence)
        return np.array(self.teacher.scores[first : len(sequence)])


class GgufsmForward:
    """One of ggufsm's models (either engine) driven like LlamaCppForward."""

    def __init__(self, model, n_ctx: int):
        self.model = model
        self.n_ctx = n_ctx

    @classmethod
    def load(cls, path: Path, n_ctx: int, engine: str, activations: str = "q8") -> GgufsmForward:
        """engine "fused" or "numpy"; activations "q8" or "f32" for the numpy reference."""
        from ggufsm.reference.architectures import load_reference_model, load_tensors
        from ggufsm.reference.architectures.weights import read_tensors

        tensors = read_tensors(path)
        if engine == "numpy":
            return cls(load_reference_model(tensors, activations=activations), n_ctx)
        return cls(load_tensors(tensors, n_threads=2, engine=engine), n_ctx)

    # The fused session returns its one logits buffer, overwritten by its next call: kept logits are copies.

    def run(self, prompt: list[int], n: int) -> Run:
        session = self.model.new_session(self.n_ctx)
        logits = [np.array(session.prefill(prompt, 0))]
        tokens = [int(logits[-1].argmax())]
        for step in range(1, n):
            logits.append(np.array(session.decode(tokens[-1], len(prompt) + step - 1)))
            tokens.append(int(logits[-1].argmax()))
        return Run(tokens, np.stack(logits))

    def logits_along(self, sequence: list[int], first: int) -> np.ndarray:
        """Logits [len(sequence) - first, n_vocab] at positions first.. of the sequence."""
        session = self.model.new_session(self.n_ctx)
        logits = [np.array(session.prefill(sequence[: first + 1], 0))]
        logits += [np.array(session.decode(token, pos)) for pos, token in enumerate(sequence[first + 1 :], start=first + 1)]
        return np.stack(logits)


def top_k(logits: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-logits)[:k].tolist())


def compare(candidate, oracle: Run, oracle_forward, prompt: list[int], n: int) -> dict:
    run = candidate.run(prompt, n)
    first, first_oracle = run.step_logits[0], oracle.step_logits[0]
    same_prefix = next((i for i, (a, b) in enumerate(zip(run.greedy, oracle.greedy, strict=False)) if a != b), n)
    sequence = prompt + oracle.greedy
    forced = candidate.logits_along(sequence[:-1], len(prompt) - 1)  # [N, n_vocab]
    misses = [i for i in range(n) if int(forced[i].argmax()) != oracle.greedy[i]]
    oracle_margins = [float(np.diff(np.sort(oracle.step_logits[i])[-2:])[0]) for i in misses]
    return {
        "n_prompt": len(prompt),
        "max_abs": float(np.abs(first - first_oracle).max()),
        "top1": int(first.argmax()) == int(first_oracle.argmax()),
        "top5": len(top_k(first, 5) & top_k(first_oracle, 5)),
        "greedy_same": same_prefix,
        "forced_agree": n - len(misses),
        "miss_margins": oracle_margins,
        "forced_max_abs": float(np.abs(forced - oracle.step_logits).max()),
    }


def chat_prompt(metadata_template: str, question: str) -> str:
    template = jinja2.Environment().from_string(metadata_template)
    return template.render(messages=[{"role": "user", "content": question}], add_generation_prompt=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", type=Path, default=MODEL)
    parser.add_argument("-n", "--tokens", type=int, default=48)
    parser.add_argument("--forward", default="fused", choices=["fused", "numpy"])
    parser.add_argument("--activations", default="q8", choices=["q8", "f32"], help="the numpy reference's activation rounding")
    args = parser.parse_args()
    n_ctx = 512

    oracle = LlamaCppForward(args.model, n_ctx)
    floor = LlamaCppForward(args.model, n_ctx, f32_kv=True)
    started = time.perf_counter()
    ours = GgufsmForward.load(args.model, n_ctx, args.forward, args.activations)
    print(f"loaded the {args.forward} forward in {time.perf_counter() - started:.1f} s")
    template = oracle.llm.metadata.get("tokenizer.chat_template")  # Gemma 3's file has none
    prompts = [("plain", p) for p in PLAIN_PROMPTS] + ([("chat", chat_prompt(template, q)) for q in CHAT_PROMPTS] if template else [])

    print(f"\n| prompt | n_prompt | max abs dlogit | top-1 | top-5 | greedy same (of {args.tokens}) | teacher-forced argmax agree"
          " | llama.cpp margin at misses | noise floor: llama.cpp f32-KV greedy same / forced agree |")
    print("| --- | ---: | ---: | :-: | ---: | ---: | ---: | --- | ---: |")
    totals = {"top1": 0, "greedy_full": 0, "forced": 0, "floor_forced": 0, "floor_full": 0, "max_abs": 0.0}
    for kind, text in prompts:
        prompt = oracle.llm.tokenize(text.encode(), add_bos=True, special=True)
        reference_run = oracle.run(prompt, args.tokens)
        ours_vs = compare(ours, reference_run, oracle, prompt, args.tokens)
        floor_vs = compare(floor, reference_run, oracle, prompt, args.tokens)
        label = text if kind == "plain" else "chat: " + next(q for q in CHAT_PROMPTS if q in text)
        label = label.replace("\n", "\\n").replace("|", "\\|")[:38]
        margins = ", ".join(f"{m:.2f}" for m in ours_vs["miss_margins"]) or "-"
        print(f"| {label} | {ours_vs['n_prompt']} | {ours_vs['max_abs']:.3f} | {'yes' if ours_vs['top1'] else 'no'} | {ours_vs['top5']}/5 "
              f"| {ours_vs['greedy_same']} | {ours_vs['forced_agree']}/{args.tokens} | {margins} "
              f"| {floor_vs['greedy_same']} / {floor_vs['forced_agree']} |")
        totals["top1"] += ours_vs["top1"]
        totals["greedy_full"] += ours_vs["greedy_same"] == args.tokens
        totals["forced"] += ours_vs["forced_agree"]
        totals["floor_forced"] += floor_vs["forced_agree"]
        totals["floor_full"] += floor_vs["greedy_same"] == args.tokens
        totals["max_abs"] = max(totals["max_abs"], ours_vs["max_abs"], ours_vs["forced_max_abs"])
    n_prompts, n_positions = len(prompts), len(prompts) * args.tokens
    print(f"\nours: top-1 at the prompt's last position {totals['top1']}/{n_prompts}; greedy identical for all {args.tokens} tokens on "
          f"{totals['greedy_full']}/{n_prompts} prompts; teacher-forced argmax agreement {totals['forced']}/{n_positions} "
          f"({100 * totals['forced'] / n_positions:.1f}%); largest |dlogit| anywhere {totals['max_abs']:.3f}")
    print(f"noise floor (llama.cpp f32 KV vs f16 KV): greedy identical on {totals['floor_full']}/{n_prompts}; "
          f"teacher-forced agreement {totals['floor_forced']}/{n_positions} ({100 * totals['floor_forced'] / n_positions:.1f}%)")


if __name__ == "__main__":
    main()
