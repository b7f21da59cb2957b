"""Sandbox start-to-result: ``python -m fourhosts_jupyter.bench isolate``.

``print(1)`` through the sandbox (each available tier) against a plain ``python -I -c`` subprocess
measured in the same run; the goal is ≤ 150 ms absolute for the bubblewrap tier. Also a
pandas + matplotlib chart run (the cached font list makes the second and later runs cheaper).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def _median(fn, runs: int) -> tuple[float, float]:  # noqa: ANN001
    xs = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    xs.sort()
    return statistics.median(xs), xs[int(0.9 * (len(xs) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench isolate")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--chart-runs", type=int, default=3)
    args = ap.parse_args(argv)

    from ..sandbox import BUBBLEWRAP, RLIMITS, probe, run_code

    pr = probe()
    print(f"tier here: {pr.isolation_level}" + (f" ({pr.reason})" if pr.reason else "")
          + (" · parent is root: code runs as a throw-away uid" if pr.root else ""))
    plain = lambda: subprocess.run([sys.executable, "-I", "-c", "print(1)"], capture_output=True, check=True)  # noqa: E731
    run_code("print(1)")  # warm: probe, page cache
    base, base90 = _median(plain, args.runs)
    print(f"plain python -I -c print(1): median {base * 1000:.1f} ms (p90 {base90 * 1000:.1f})")
    tiers = [BUBBLEWRAP, RLIMITS] if pr.tier == BUBBLEWRAP else [RLIMITS]
    for tier in tiers:
        med, p90 = _median(lambda: run_code("print(1)", tier=tier), args.runs)
        goal = " (goal ≤ 150 ms: " + ("met" if med <= 0.150 else "MISSED") + ")" if tier == BUBBLEWRAP else ""
        print(f"sandbox {tier:10s} print(1): median {med * 1000:.1f} ms (p90 {p90 * 1000:.1f}), "
              f"ratio to plain {med / base:.2f}×{goal}")
    chart = ("import pandas as pd, matplotlib.pyplot as plt\n"
             "pd.Series([3, 1, 2]).plot.bar(); plt.savefig('c.png')\n")
    first = time.perf_counter()
    r = run_code(chart)
    first = time.perf_counter() - first
    med, _ = _median(lambda: run_code(chart), args.chart_runs)
    print(f"pandas+matplotlib chart: first {first:.2f} s (builds the font cache once per install), "
          f"then median {med:.2f} s; status {r.status}, images {len(r.images)}")
    return 0
