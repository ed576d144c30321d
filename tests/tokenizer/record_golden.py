"""Record llama.cpp's token ids for the fidelity corpus into golden_ids.json.

    python tests/tokenizer/record_golden.py

Needs llama-cpp-python (the peer) and the real models in the cache
(`ggufsm models pull smollm2 gemma3`). CI, which has no peer, checks our ids
against this file (test_real_tokenizers.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
GOLDEN_PATH = HERE / "golden_ids.json"
# Each text is recorded with bos/eos added and specials parsed, and with neither.
VARIANTS = {"special": {"add_bos": True, "special": True}, "plain": {"add_bos": False, "special": False}}


def record() -> dict:
    import llama_cpp

    from ggufsm.reference.model import registry as models

    sys.path.insert(0, str(HERE))
    from corpus import CORPUS

    golden = {
        "produced_by": "tests/tokenizer/record_golden.py: llama_cpp.Llama(path, vocab_only=True)"
                       ".tokenize(text.encode(), add_bos=..., special=...) for every text of tests/tokenizer/corpus.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "variants": VARIANTS,
        "models": {},
    }
    for name in ("smollm2", "gemma3"):
        entry = models.REGISTRY[name]
        path = models.resolve(name)
        vocab = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        golden["models"][name] = {
            "sha256": entry.sha256,
            "cases": [{"text": text, **{variant: vocab.tokenize(text.encode("utf-8"), **flags)
                                        for variant, flags in VARIANTS.items()}} for text in CORPUS],
        }
    return golden


if __name__ == "__main__":
    GOLDEN_PATH.write_text(json.dumps(record(), ensure_ascii=False, indent=None, separators=(",", ":")) + "\n",
                           encoding="utf-8")
    print(f"wrote {GOLDEN_PATH}")
