"""Run one atheris fuzz target for a while on a copy of its committed corpus (the repository's stays as it is).

    python tests/fuzz/run_fuzz.py tests/fuzz/protocol_fuzz.py --seconds 60

A target is a script beside this one named *_fuzz.py whose corpus is corpus/<name without _fuzz>/.
Exits with the fuzzer's status (non-zero when it found a crash; the crashing input is kept in the
working directory as crash-*). Prints the number of runs.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", type=Path)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    corpus = args.target.with_name("corpus") / args.target.stem.removesuffix("_fuzz")
    with tempfile.TemporaryDirectory(prefix="ggufsm-fuzz-corpus-") as work:
        shutil.copytree(corpus, work, dirs_exist_ok=True)
        done = subprocess.run([sys.executable, str(args.target), work, f"-max_total_time={args.seconds}",
                               "-timeout=30", "-rss_limit_mb=4096", "-print_final_stats=1"],
                              capture_output=True, text=True)
    runs = re.search(r"Done (\d+) runs", done.stderr)
    print(f"{args.target.name}: {runs.group(1) if runs else '?'} runs in {args.seconds} s, status {done.returncode}")
    if done.returncode:
        print(done.stderr[-4000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
