"""The live blend streams through widgets (jupyter/blend_live.py): bytes to the browser stay
within 3× the final output (the one-handle GridView sends ~38×), the unified answer is shown
once and in order above the parts, and the end is the same one-HTML blend as before.

Traffic is recorded by ``KernelTraffic`` (real ipywidgets over a recording comm); ``replay``
rebuilds the front-end's widget models from it."""

from __future__ import annotations

import re

import pytest
from IPython.utils.capture import capture_output

from fourhosts_jupyter.bench._view_bytes import answer_text, blend_events, measure_traffic
from fourhosts_jupyter.jupyter.blend_live import LiveBlendView, blend_view
from fourhosts_jupyter.jupyter.blend_view import BlendState
from fourhosts_jupyter.jupyter.grid import GridView
from test_grid_live import WIDGET_VIEW, drawn, replay

STEP = re.compile(r"<strong>Step (\d+)\.</strong>")


def one_handle(**kwargs):
    return GridView(state=BlendState(), **kwargs)


def live(**kwargs):
    return blend_view(widgets=True, **kwargs)


@pytest.fixture(scope="module")
def events():
    return blend_events()


@pytest.fixture(scope="module")
def streamed(events):
    return measure_traffic(live, events)


def test_a_live_blend_sends_at_most_three_times_its_final_output(streamed, events):
    r = streamed
    assert isinstance(r["view"], LiveBlendView) and r["final"] > 40_000
    assert r["bytes"] <= 2.5 * r["final"] and r["wire"] <= 3 * r["final"]
    old = measure_traffic(one_handle, events)  # the whole blend redrawn through one handle
    assert old["final"] == r["final"] and old["wire"] > 3 * old["final"]


def test_a_slow_blend_still_stays_in_bound(events):
    # the same blend over 28 s (a model's pace): redraws are paced by time, not by text
    r = measure_traffic(live, events, seconds=28.0)
    assert r["bytes"] <= 3.5 * r["final"] and r["wire"] <= 5 * r["final"]


def test_the_end_is_the_same_one_html_blend_as_before(streamed, events):
    old = measure_traffic(one_handle, events)
    new = streamed["traffic"]
    assert list(new.outputs.values()) == list(old["traffic"].outputs.values())  # one output, same data
    [data] = new.outputs.values()
    assert set(data) == {"text/plain", "text/html"} and data["text/html"].startswith('<div class="fh-blend">')
    assert new.count("update_display_data") == 1  # the widgets were shown once, then swapped out
    assert new.count("comm_open") == new.count("comm_close") > 0  # every widget closed


def test_the_unified_answer_streams_once_and_in_order_above_the_parts(streamed):
    t = streamed["traffic"]
    models = replay(t)
    shown = next(c for (k, _, _), c in zip(t.messages, t.contents) if k == "display_data")
    root = models[shown["data"][WIDGET_VIEW]["model_id"]]
    children = [models[ref.removeprefix("IPY_MODEL_")] for ref in root["children"]]
    assert "fh-blend-chips" in children[0]["value"]  # the top: chips, mode
    assert "fh-blend-live-answer" in children[1]["_dom_classes"]  # then the unified answer …
    unified = drawn(models, root["children"][1].removeprefix("IPY_MODEL_"))
    steps = [int(n) for n in STEP.findall(unified)]
    total = len(re.findall(r"\*\*Step \d+\.\*\*", answer_text()))
    # each step once, in order; the last round may come after the last redraw (the final
    # blend that replaces the widgets holds all of it)
    assert steps == list(range(1, len(steps) + 1)) and total * 0.9 <= len(steps) <= total
    assert len(children) == 4  # … then one panel per blended host
    # it streamed: the answer's first step was on screen long before the end
    first = next(i for i, c in enumerate(t.contents) if "<strong>Step 1.</strong>" in str(c.get("data", {}))
                 and "fh-blend-live-answer" not in str(c))  # fmt: skip
    assert first < len(t.contents) * 0.75


def test_without_widgets_a_blend_draws_through_one_handle_as_before():
    assert type(blend_view(live=True, max_rate=10, widgets=False)) is GridView
    assert type(blend_view(live=False, max_rate=10, widgets=True)) is GridView  # final mode (nbval)


def test_a_live_blend_cell_in_a_kernel_streams_through_widgets(kernel_shell):
    # a kernel's comm (KernelTraffic installs one, as ipykernel does); the offline engine
    from fourhosts_jupyter.bench._view_bytes import KernelTraffic

    with KernelTraffic() as t, capture_output() as cap:
        kernel_shell.run_cell_magic("research", "--blend weighted", "How should a city cut traffic deaths?")
    blend = [o for o in cap.outputs if WIDGET_VIEW in o.data or "fh-blend" in o.data.get("text/html", "")]
    first, last = blend[0], blend[-1]
    assert WIDGET_VIEW in first.data and first.data["text/plain"].startswith("Blend: ")
    assert last.update and last.transient == first.transient  # the same output, swapped at the end
    assert last.data["text/html"].startswith('<div class="fh-blend">') and WIDGET_VIEW not in last.data
    assert t.count("comm_open") == t.count("comm_close") > 0
