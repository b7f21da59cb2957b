"""Bytes to the browser: the segmented live view sends each finished piece once, so a 7-second,
12 kB stream sends at most 3× what the cell finally shows (the whole-run view: ~35×)."""

from __future__ import annotations

import re

import pytest
from IPython.utils.capture import capture_output

from fourhosts_jupyter.bench._view_bytes import answer_text, measure_run, measure_traffic, run_events
from fourhosts_jupyter.jupyter import segmented as segmented_view
from fourhosts_jupyter.jupyter.segmented import SegmentedCellView
from fourhosts_jupyter.jupyter.view import CellView


@pytest.fixture(scope="module")
def segmented():
    return measure_run(SegmentedCellView)


def test_bytes_sent_stay_within_three_times_the_final_output(segmented):
    assert segmented["final"] > 12_000
    assert segmented["bytes"] <= 3 * segmented["final"]
    whole = measure_run(CellView)  # the view that redraws the whole run: the bound fails there
    assert whole["bytes"] > 3 * whole["final"]


def test_with_each_messages_envelope_the_stream_still_sends_at_most_three_times_the_final_output():
    # every message the kernel publishes, on the wire (Jupyter's ~0.55 kB envelope each): the
    # tail redrawn ≤ 5 a second and pieces finished together sent as one output keep it in bound
    r = measure_traffic(SegmentedCellView, run_events())
    assert r["final"] > 12_000
    assert r["wire"] <= 3 * r["final"] and r["bytes"] <= 2 * r["final"]
    tail_redraws = r["traffic"].count("update_display_data")
    assert 7 * 2 <= tail_redraws <= 7 / segmented_view.TAIL_S + 8  # ≥ 2 a second, ≤ 5 (+ the header's)


def test_a_slow_stream_waits_for_text_but_keeps_streaming():
    # the same answer over 28 s (a model's pace): the tail waits for MIN_NEW characters, at most
    # TAIL_MAX_S, so fewer messages carry each byte (at ≤ 5 a second: 3.1× content, 5.8× wire)
    r = measure_traffic(SegmentedCellView, run_events(), seconds=28.0)
    assert r["bytes"] <= 2.5 * r["final"] and r["wire"] <= 4 * r["final"]
    assert r["view"].tail_redraws >= 28 * 1.5  # still ~2 redraws a second while it grows


def test_redraws_stay_coalesced(segmented):
    # 7 s of stream at ≤ 10 redraws a second, plus the first draw and the final flush
    assert 2 <= segmented["redraws"] <= 7 * 10 + 2


def test_every_piece_of_the_answer_is_shown_once_and_in_order(segmented):
    shown = "\n".join(b["text/plain"] for b in segmented["sink"].last)
    steps = [int(n) for n in re.findall(r"\*\*Step (\d+)\.\*\*", shown)]
    expected = len(re.findall(r"\*\*Step \d+\.\*\*", answer_text()))
    assert steps == list(range(1, expected + 1))
    assert shown.count("[tool search_memory: done") == 1
    assert "Sources:" in shown.split("[tool search_memory")[1]  # the footer comes last
    html = "".join(b["text/html"] for b in segmented["sink"].last)
    assert html.count("fh-hostbar") == 1 and "✅ Done" in html


def test_a_live_cell_uses_the_segmented_view(kernel_shell):
    with capture_output() as cap:
        kernel_shell.run_cell_magic("research", "-p teddy", "Which safeguards protect pedestrians?")
    first = cap.outputs[0]
    header = [o for o in cap.outputs if o.transient and o.transient["display_id"] == first.transient["display_id"]]
    assert first.update is False and all(o.update for o in header[1:])  # the header: one handle …
    assert "fh-hostbar" in header[-1].data["text/html"] and "✅ Done" in header[-1].data["text/html"]
    # … and the answer in outputs of its own, before the end (sources) and the rating row: a
    # tail handle, or finished pieces when the whole answer came between two rounds (the
    # offline engine streams without pauses, so which of the two is a matter of timing)
    body = [o for o in cap.outputs[:-2] if (o.transient or {}).get("display_id") != first.transient["display_id"]]
    assert body and all("fh-hostbar" not in o.data["text/html"] for o in body)
    assert any("safeguard" in o.data["text/plain"].lower() for o in body), [o.data["text/plain"][:80] for o in body]
    texts = "\n".join(o.data["text/plain"] for o in cap.outputs)
    # a live answer ends with its rating row (jupyter/feedback.py), just after the sources
    assert "Rate this answer" in cap.outputs[-1].data["text/plain"]
    assert "Sources:" in cap.outputs[-2].data["text/plain"]
    assert "Offline extractive answer" in texts
