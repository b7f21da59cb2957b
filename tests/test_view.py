"""The cell view: state folded from events, one display handle, coalesced redraws, final mode."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from fourhosts_jupyter.events import (
    LayerStarted,
    Notice,
    RunFailed,
    RunStarted,
    Source,
    SourcesSelected,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
)
from fourhosts_jupyter.jupyter.view import CellView, RunState, StoredRunView
from fourhosts_jupyter.render import ToolCard


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()  # display() needs a live shell to publish to


class FakeClock:
    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.step


def tool_round(call_id: str, name: str = "search_memory", *, fail: str | None = None) -> list:
    events = [
        ToolCallStarted(call_id, name),
        ToolCallArgumentsDelta(call_id, '{"query": '),
        ToolCallArgumentsDelta(call_id, '"speed"}'),
        ToolCallRunning(call_id, name, {"query": "speed"}),
    ]
    if fail:
        events.append(ToolCallFailed(call_id, name, "breaker open after 3 failures", fail, 0.0))
    else:
        events.append(ToolCallFinished(call_id, name, {"hits": 3}, 0.12, preview="3 hits"))
    return events


def test_text_before_between_and_after_tool_rounds_stays_in_order():
    state = RunState()
    events = [
        RunStarted("r_1", "q", {}),
        LayerStarted("model", "✍️ Answering"),
        TextDelta("Let me "),
        TextDelta("look."),
        *tool_round("c1"),
        TextDelta("Found it. "),
        *tool_round("c2", "sql", fail="circuit_open"),
        TextDelta("Done [1]."),
    ]
    for e in events:
        state.apply(e)
    kinds = ["card" if isinstance(b, ToolCard) else "".join(b) for b in state.blocks]
    assert kinds == ["Let me look.", "card", "Found it. ", "card", "Done [1]."]
    text = state.to_text()
    assert text.index("Let me look.") < text.index("[tool search_memory") < text.index("Found it.")
    assert text.index("Found it.") < text.index("[tool sql: circuit open") < text.index("Done [1].")
    assert state.cards["c1"].state == "done" and state.cards["c1"].result == "3 hits"
    assert state.cards["c2"].state == "circuit_open"


def test_tool_card_moves_receiving_running_done():
    state = RunState()
    seen = []
    for e in tool_round("c1"):
        state.apply(e)
        seen.append((state.cards["c1"].state, state.cards["c1"].args_text))
    assert seen[0] == ("receiving", "")
    assert seen[1] == ("receiving", '{"query": ')  # arguments render as they stream
    assert seen[2] == ("receiving", '{"query": "speed"}')
    assert seen[3][0] == "running" and '"query": "speed"' in seen[3][1]
    assert seen[4][0] == "done"
    assert "0.12 s" in state.to_html()


def test_failed_run_keeps_partial_text_and_shows_the_error():
    state = RunState()
    for e in [TextDelta("Half an ans"), RunFailed("connection dropped", "provider", "Half an ans")]:
        state.apply(e)
    assert state.text == "Half an ans"  # not duplicated by partial_text
    html = state.to_html()
    assert "Half an ans" in html and "Run failed" in html and "connection dropped" in html
    state2 = RunState()
    state2.apply(RunFailed("boom", "provider", "partial only"))
    assert state2.text == "partial only"


def test_view_html_is_safe_for_hostile_model_tool_and_source_text():
    state = RunState()
    bad = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    for e in [
        TextDelta(bad + " [x](javascript:alert(3))"),
        ToolCallStarted("c1", bad),
        ToolCallArgumentsDelta("c1", bad),
        ToolCallFinished("c1", bad, bad, 0.1),
        SourcesSelected((Source(1, "s", bad, "t", origin=bad, reasons=(bad,)),)),
        Notice(bad, "warning"),
    ]:
        state.apply(e)
    html = state.to_html()
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert html.count("&lt;script&gt;") >= 5


def test_coalescer_caps_redraws_for_a_burst_of_2000_events(shell):
    clock = FakeClock(step=0.001)  # 2,000 events over 2 s of fake time
    view = CellView(live=True, max_rate=10, clock=clock)
    with capture_output() as cap:
        for i in range(2000):
            view.handle_item(TextDelta(f"w{i} "))
            clock.tick()
        view.flush()
    # at most one draw per 0.1 s of the 2 s, plus the first draw and the final flush
    assert 2 <= view.updates <= 22
    assert len(cap.outputs) == view.updates
    assert cap.outputs[0].update is False  # one display …
    assert all(o.update for o in cap.outputs[1:])  # … then only updates of that handle
    ids = {o.transient["display_id"] for o in cap.outputs}
    assert len(ids) == 1
    assert "w1999" in cap.outputs[-1].data["text/plain"]  # the final flush shows everything


def test_coalescer_without_time_passing_draws_first_and_final_only(shell):
    clock = FakeClock(step=0.0)
    view = CellView(live=True, max_rate=10, clock=clock)
    with capture_output() as cap:
        view.consume(TextDelta("x") for _ in range(500))
    assert view.updates == 2 and len(cap.outputs) == 2


def test_idle_tick_draws_a_pending_state(shell):
    clock = FakeClock(step=0.0)
    view = CellView(live=True, max_rate=10, clock=clock)
    with capture_output() as cap:
        view.handle_item(ToolCallStarted("c1", "slow_tool"))  # drawn at once (first draw)
        view.handle_item(ToolCallRunning("c1", "slow_tool", {}))  # too soon: pending
        assert view.updates == 1
        clock.now += 0.5
        view.handle_item(None)  # the stream was idle: the pending "running" goes out
        assert view.updates == 2
        view.handle_item(None)  # nothing pending: no redraw
        clock.now += 0.5
        view.handle_item(None)
        assert view.updates == 2
    assert "running" in cap.outputs[-1].data["text/html"]


def test_final_mode_displays_once_at_the_end(shell):
    clock = FakeClock(step=0.05)
    view = CellView(live=False, clock=clock)
    events = [RunStarted("r_1", "q", {}), *[TextDelta(f"t{i} ") for i in range(300)], *tool_round("c1")]
    with capture_output() as cap:
        for e in events:
            view.handle_item(e)
            clock.tick()
        assert cap.outputs == []  # nothing drawn while streaming
        view.flush()
        view.flush()  # a second flush changes nothing
    assert view.updates == 1 and len(cap.outputs) == 1
    out = cap.outputs[0]
    assert out.update is False and not (out.transient or {}).get("display_id")
    assert "t299" in out.data["text/plain"] and "search_memory" in out.data["text/html"]


def test_consume_flushes_and_reraises_on_interrupt(shell):
    def stream():
        yield TextDelta("partial")
        raise KeyboardInterrupt

    view = CellView(live=False)
    with capture_output() as cap, pytest.raises(KeyboardInterrupt):
        view.consume(stream())
    assert len(cap.outputs) == 1
    assert "partial" in cap.outputs[0].data["text/plain"] and "interrupted" in cap.outputs[0].data["text/plain"]


def test_consume_closes_the_stream_when_leaving_early(shell):
    closed = []

    def stream():
        try:
            yield TextDelta("a")
            raise KeyboardInterrupt
        finally:
            closed.append(True)

    with capture_output(), pytest.raises(KeyboardInterrupt):
        CellView(live=True).consume(stream())
    assert closed == [True]


def test_empty_stream_displays_nothing(shell):
    with capture_output() as cap:
        view = CellView(live=False)
        view.consume([])
        CellView(live=True).consume([])
    assert cap.outputs == []


def test_stored_run_replays_cards_text_and_sources():
    run = {
        "id": "r_9",
        "question": "Why <b>speed</b>?",
        "status": "ok",
        "provider": "offline",
        "model": "extractive",
        "answer": "Because [1].",
        "classification": {
            "probabilities": {"dolores": 0.1, "teddy": 0.1, "bernard": 0.7, "maeve": 0.1},
            "dominant": "bernard",
            "primary": "bernard",
            "reason": "dominant: bernard at 70%",
        },
        "sources": [{"n": 1, "id": "m1", "title": "Speed", "text": "t", "origin": "speed.md", "reasons": ["r"]}],
        "timings": {"model": 0.2},
        "error": None,
        "events": [
            {"seq": 1, "type": "layer_started", "payload": {"layer": "model", "label": "x", "type": "layer_started"}},
            {"seq": 2, "type": "tool_call_started", "payload": {"call_id": "c1", "name": "search_memory", "index": 0, "round": 0, "type": "tool_call_started"}},
            {"seq": 3, "type": "tool_call_finished", "payload": {"call_id": "c1", "name": "search_memory", "result": [1, 2], "seconds": 0.1, "preview": "", "type": "tool_call_finished"}},
            {"seq": 4, "type": "from_the_future", "payload": {"x": 1}},
        ],
    }
    view = StoredRunView(run)
    bundle = view._repr_mimebundle_()
    text = bundle["text/plain"]
    assert text.startswith("Question: Why <b>speed</b>?")
    assert text.index("[tool search_memory: done") < text.index("Because [1].")
    assert "[1] Speed — speed.md" in text and "◀ dominant" in text
    assert "Why &lt;b&gt;speed&lt;/b&gt;?" in bundle["text/html"]
    assert "offline · extractive" in bundle["text/html"]
