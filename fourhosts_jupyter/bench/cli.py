"""A bad argument's cost: ``python -m fourhosts_jupyter.bench cli``.

Each mistake runs ``fourhosts …`` in a fresh process (the default embedder, so a check made
after the model loads would show as seconds) and is timed start to exit, as a median; the
baseline is ``fourhosts --help`` in the same run (interpreter start plus the CLI's import).
The goal is every mistake reported in well under a second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MISTAKES = [
    ["ingest", "nonexistent.txt"],
    ["ingest", "--namespace", "nobody", "ok.txt"],
    ["ingest", "--chunk-words", "-5", "ok.txt"],
    ["ingest", "empty.txt"],
    ["ingest", "nothing-*.md"],
    ["search", "--k", "0", "speed"],
    ["search", "--weights", "nan,nan", "speed"],
    ["runs", "-n", "0"],
    ["show", "r"],
    ["classify", "--paradigm", "arnold", "Why?"],
    ["research", "--effort", "max", "Why?"],
    ["sandbox", "run", "--timeout", "nan", "ok.txt"],
]


def _seconds(argv: list[str], cwd: str, env: dict[str, str], runs: int) -> tuple[float, int]:
    times, rc = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *argv], cwd=cwd, env=env,
                            capture_output=True).returncode
        times.append(time.perf_counter() - t)
    return statistics.median(times), rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench cli")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fourhosts-bench-cli-") as tmp:
        Path(tmp, "ok.txt").write_text("Speed cameras cut crashes.")
        Path(tmp, "empty.txt").write_text("")
        package_root = str(Path(__file__).resolve().parents[2])
        env = {k: v for k, v in os.environ.items() if k != "FOURHOSTS_EMBEDDER"}
        env.update(HF_HUB_OFFLINE="1", FOURHOSTS_HOME=tmp,
                   PYTHONPATH=os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")])))
        base, _ = _seconds(["--help"], tmp, env, args.runs)
        print(f"baseline  fourhosts --help: {base:.3f} s (median of {args.runs})")
        worst = 0.0
        for mistake in MISTAKES:
            sec, rc = _seconds(mistake, tmp, env, args.runs)
            worst = max(worst, sec)
            print(f"{sec:6.3f} s  ×{sec / base:4.2f}  exit {rc}  fourhosts {' '.join(mistake)}")
        print(f"slowest mistake: {worst:.3f} s (×{worst / base:.2f} the baseline)")
    return 0
