"""Cell view cost: what drawing a run into a cell adds to consuming its event stream.

    python -m fourhosts_jupyter.bench view [--events 2000] [--gap-ms 0.5]

Baseline (same process): a bare loop that only joins the text of the same events. Figures:
per-event cost of the state fold, of the live view (real IPython display publisher, redraws
coalesced to 10/s), the number of redraws, the cost of one full redraw, and the ratio of
wall time for a paced stream (an event every ``gap-ms``, like a fast local server). Then the
bytes sent to the browser while a run, a four-panel compare grid and a two-host blend stream (every message the
kernel publishes, widgets' comm traffic included: ``_view_bytes.KernelTraffic``), before and after,
against the size of the final output.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Iterator

from ..events import (
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
)


def _events(n: int) -> list:
    words = "Lower urban speed limits reduce the severity of crashes [1] and save lives. ".split()
    out: list = []
    for i in range(n):
        if i == n // 2:  # one tool round in the middle, as a real run would have
            out += [
                ToolCallStarted("c1", "search_memory"),
                ToolCallArgumentsDelta("c1", '{"query": "speed"}'),
                ToolCallRunning("c1", "search_memory", {"query": "speed"}),
                ToolCallFinished("c1", "search_memory", {"hits": 3}, 0.01, "3 hits"),
            ]
        out.append(TextDelta(words[i % len(words)] + " "))
    return out


def _paced(events: list, gap: float) -> Iterator:
    next_at = time.perf_counter()
    for e in events:
        next_at += gap
        while time.perf_counter() < next_at:  # busy wait: sleep() is too coarse for 0.5 ms
            pass
        yield e


def _bare(stream) -> int:  # noqa: ANN001
    parts = [e.text for e in stream if isinstance(e, TextDelta)]
    return len("".join(parts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fourhosts_jupyter.bench view")
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--gap-ms", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=21)
    a = ap.parse_args(argv)

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from ..jupyter.view import CellView, RunState

    InteractiveShell.instance()
    events = _events(a.events)
    n = len(events)

    def median_of(fn) -> float:  # noqa: ANN001 - a median, never a minimum (slow rounds are real)
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    def fold() -> None:
        s = RunState()
        for e in events:
            s.apply(e)

    redraws = []

    def live() -> None:
        with capture_output():
            v = CellView(live=True, max_rate=10)
            v.consume(events)
        redraws.append(v.updates)

    t_bare = median_of(lambda: _bare(events))
    t_fold = median_of(fold)
    t_live = median_of(live)
    state = RunState()
    for e in events:
        state.apply(e)
    t_draw = median_of(state._repr_mimebundle_)
    print(f"events: {n} (one tool round)")
    print(f"bare loop (baseline):     {t_bare / n * 1e6:8.2f} µs/event")
    fold_us = t_fold / n * 1e6
    print(f"state fold:               {fold_us:8.2f} µs/event  ({t_fold / t_bare:.1f}× bare)")
    print(f"live view, unpaced burst: {t_live / n * 1e6:8.2f} µs/event  redraws: {redraws[-1]}")
    print(f"one full redraw (HTML + text of {len(state.text):,} chars): {t_draw * 1e3:.2f} ms")

    gap = a.gap_ms / 1000
    paced_bare = median_of(lambda: _bare(_paced(events, gap)))
    paced_redraws = []

    def paced_live() -> None:
        with capture_output():
            v = CellView(live=True, max_rate=10)
            v.consume(_paced(events, gap))
        paced_redraws.append(v.updates)

    paced_view = median_of(paced_live)
    print(
        f"paced stream ({a.gap_ms} ms/event, {paced_bare:.3f} s): live view {paced_view:.3f} s, "
        f"ratio {paced_view / paced_bare:.3f}, redraws {paced_redraws[-1]} "
        f"({paced_redraws[-1] / paced_view:.1f}/s)"
    )
    _bytes_figures()
    return 0


def _bytes_figures() -> None:
    """Bytes sent to the browser during a 7-second stream of a ~12 kB answer (fake clock, so
    the coalescer redraws as at 10/s): exact counts, no timing noise. Every message the kernel
    would publish is counted (``KernelTraffic``: display_data, update_display_data, and the
    widgets' comm_open / comm_msg / comm_close), as JSON content and on the wire."""
    from ..jupyter.blend_live import blend_view
    from ..jupyter.blend_view import BlendState
    from ..jupyter.grid import GridView
    from ..jupyter.grid_live import grid_view
    from ..jupyter.segmented import SegmentedCellView
    from ..jupyter.view import CellView
    from ._view_bytes import blend_events, grid_events, measure_traffic, run_events

    def blend_one_handle(**kwargs):  # noqa: ANN202 - the blend as drawn before blend_live
        return GridView(state=BlendState(), **kwargs)

    print("bytes to the browser, 7 s stream of ~12 kB answers (one tool round each), ≤ 10 redraws/s;")
    print("  every message the kernel publishes, content as JSON (wire: with the Jupyter envelope):")
    rows = (("one run, whole-run redraws (CellView, before)", CellView, run_events(), 7.0),
            ("one run, segmented (SegmentedCellView, after)", SegmentedCellView, run_events(), 7.0),
            ("four-panel grid, one handle (GridView, before)", GridView, grid_events(), 7.0),
            ("four-panel grid, widgets (LiveGridView, after)", grid_view, grid_events(), 7.0),
            ("two-host blend, one handle (GridView, before)", blend_one_handle, blend_events(), 7.0),
            ("two-host blend, widgets (LiveBlendView, after)", blend_view, blend_events(), 7.0),
            # a model's pace (~3k tokens in 28 s): redraws are paced by time, so envelopes grow
            ("  the same, a 28 s stream (one run)", SegmentedCellView, run_events(), 28.0),
            ("  the same, a 28 s stream (grid)", grid_view, grid_events(), 28.0),
            ("  the same, a 28 s stream (blend)", blend_view, blend_events(), 28.0))  # fmt: skip
    for name, make, events, seconds in rows:
        r = measure_traffic(make, events, seconds=seconds)
        print(f"  {name:<47} sent {r['bytes'] / 1000:7.1f} kB ({r['wire'] / 1000:7.1f} kB wire) in "
              f"{r['messages']:3d} messages, {r['redraws'] / r['seconds']:4.1f} redraws/s "
              f"({getattr(r['view'], 'tail_redraws', r['redraws']) / r['seconds']:4.1f} tails/s); final output "
              f"{r['final'] / 1000:6.1f} kB; ratio {r['bytes'] / r['final']:5.2f} (goal ≤ 3; wire "
              f"{r['wire'] / r['final']:5.2f})")  # fmt: skip
