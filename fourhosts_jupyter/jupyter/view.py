"""The live cell view: fold engine events into state, draw it through one display handle.

``RunState`` is a plain fold over the event stream (no IPython), so it is tested with lists
of events. ``CellView`` draws it: in live mode through ONE display handle, redrawn at most
``max_rate`` times a second by a time-based coalescer in the consuming loop (no redraw
thread) with a final flush; in final mode it displays once, at the end, so notebooks run by
nbval/nbclient record one stable output (nbval keeps only a handle's first display).

The consuming loop also accepts ``None`` items as idle ticks: a stream that yields ``None``
when nothing happened for a while lets a pending redraw go out without waiting for the next
event (e.g. a tool card switching to "running" before a slow tool).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .. import events as ev
from ..quality.panel import QualityPanel
from ..render import (
    Block,
    ToolCard,
    esc,
    footer_text,
    host_bar_html,
    host_bar_text,
    result_preview,
    run_html,
    run_text,
)

_EVENT_TYPES: dict[str, type] = {
    cls.__dataclass_fields__["type"].default: cls  # type: ignore[attr-defined]
    for cls in (
        ev.RunStarted, ev.LayerStarted, ev.LayerFinished, ev.Notice, ev.TextDelta,
        ev.ToolCallStarted, ev.ToolCallArgumentsDelta, ev.ToolCallRunning, ev.ToolCallFinished,
        ev.ToolCallFailed, ev.RunFailed, ev.Evaluated, ev.Healed, ev.Collaborated, ev.AnswerRevised,
    )
}  # fmt: skip


@dataclass
class RunState:
    """Everything the cell shows about one run, updated event by event."""

    run_id: str = ""
    question: str = ""
    classification: Any = None  # Classification, or its stored dict
    stage: str | None = None
    stage_words: str = ""
    blocks: list[Any] = field(default_factory=list)  # list[str] parts | ToolCard, in order
    cards: dict[str, ToolCard] = field(default_factory=dict)
    sources: tuple[ev.Source, ...] = ()
    notices: list[tuple[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    usage: ev.Usage = field(default_factory=ev.Usage)
    answer: Any = None
    error: tuple[str, str] | None = None  # (message, kind)
    partial_text: str = ""
    thinking: list[str] = field(default_factory=list)  # reasoning summary pieces, apart from the answer
    _thought_at: int = 0  # len(blocks) at the last reasoning piece: answer or tools came between
    events: int = 0
    quality: QualityPanel = field(default_factory=QualityPanel)  # evaluation, healing, collaboration

    @property
    def done(self) -> bool:
        return self.answer is not None or self.error is not None

    @property
    def text(self) -> str:
        return "".join("".join(b) for b in self.blocks if isinstance(b, list))

    def apply(self, e: Any) -> None:  # noqa: C901 - one branch per event type, flat on purpose
        self.events += 1
        if isinstance(e, ev.TextDelta):  # by far the most frequent: first, and cheap
            if self.blocks and isinstance(self.blocks[-1], list):
                self.blocks[-1].append(e.text)
            else:
                self.blocks.append([e.text])
        elif isinstance(e, ev.ToolCallArgumentsDelta):
            self._card(e.call_id).args_parts.append(e.delta)
        elif isinstance(e, ev.ReasoningDelta):
            if self.thinking and self._thought_at != len(self.blocks):  # a later round's reasoning
                self.thinking.append("\n\n")
            self.thinking.append(e.text)
            self._thought_at = len(self.blocks)
        elif isinstance(e, ev.ToolCallStarted):
            card = ToolCard(call_id=e.call_id, name=e.name, index=e.index, round=e.round)
            self.cards[e.call_id] = card
            self.blocks.append(card)
        elif isinstance(e, ev.ToolCallRunning):
            card = self._card(e.call_id, e.name)
            card.state, card.arguments = "running", dict(e.arguments)
        elif isinstance(e, ev.ToolCallFinished):
            card = self._card(e.call_id, e.name)
            card.state, card.seconds = "done", e.seconds
            card.result = result_preview(e.result, e.preview)
        elif isinstance(e, ev.ToolCallFailed):
            card = self._card(e.call_id, e.name)
            card.state = "circuit_open" if e.kind == "circuit_open" else "failed"
            card.seconds, card.error, card.kind = e.seconds, e.error, e.kind
        elif isinstance(e, ev.LayerStarted):
            self.stage, self.stage_words = e.layer, e.label
        elif isinstance(e, ev.LayerFinished):
            self.timings[e.layer] = e.seconds
            if e.fallback:
                detail = f": {e.detail}" if e.detail else ""
                self.notices.append(("warning", f"{e.layer} stage used its fallback{detail}"))
        elif isinstance(e, ev.Classified):
            self.classification = e.classification
        elif isinstance(e, ev.SourcesSelected):
            self.sources = tuple(e.sources)
        elif isinstance(e, ev.Notice):
            self.notices.append((e.level, e.message))
        elif isinstance(e, ev.UsageReported):
            self.usage = self.usage + e.usage
        elif isinstance(e, ev.RunStarted):
            self.run_id, self.question = e.run_id, e.question
        elif isinstance(e, ev.AnswerRevised):  # healed or extended: the new text replaces the old
            self.blocks = [b for b in self.blocks if not isinstance(b, list)] + [[e.text]]
            self.sources = tuple(s if isinstance(s, ev.Source) else _source(s) for s in e.sources)
        elif isinstance(e, (ev.Evaluated, ev.Healed, ev.Collaborated)):
            self.quality.apply(e)
        elif isinstance(e, ev.AnswerReady):
            self._finish(e.answer)
        elif isinstance(e, ev.RunFailed):
            self.error = (e.error, e.kind)
            self.partial_text = e.partial_text
            if e.partial_text and not self.text:
                self.blocks.append([e.partial_text])

    def _card(self, call_id: str, name: str = "") -> ToolCard:
        card = self.cards.get(call_id)
        if card is None:  # a stream that skipped the start event still gets a card
            card = ToolCard(call_id=call_id, name=name or "tool")
            self.cards[call_id] = card
            self.blocks.append(card)
        return card

    def _finish(self, answer: Any) -> None:
        self.answer = answer
        if answer.text and not self.text:
            self.blocks.append([answer.text])
        if not self.cards:
            for rec in answer.tool_calls:
                card = ToolCard.from_record(rec)
                self.cards[card.call_id] = card
                self.blocks.insert(0, card)
        self.sources = self.sources or tuple(answer.sources)
        if self.classification is None:
            self.classification = answer.classification
        seen = {m for _, m in self.notices}
        self.notices += [("info", n) for n in answer.notices if n not in seen]
        self.run_id = self.run_id or answer.run_id
        self.timings = {**self.timings, **(answer.timings or {})}

    # -- rendering ---------------------------------------------------------------------------

    def _render_args(self) -> dict[str, Any]:
        blocks: list[Block] = [b if isinstance(b, ToolCard) else "".join(b) for b in self.blocks]
        a = self.answer
        footer = ""
        if self.done:
            footer = footer_text(
                run_id=self.run_id,
                provider=getattr(a, "provider", ""),
                model=getattr(a, "model", ""),
                usage=getattr(a, "usage", None) or self.usage,
                seconds=self.timings.get("total"),
            )
        return dict(
            classification=self.classification,
            stage=self.stage,
            stage_words=self.stage_words,
            done=self.answer is not None,
            blocks=blocks,
            sources=self.sources,
            notices=self.notices,
            offline=bool(getattr(a, "offline", False)),
            error=self.error,
            footer=footer,
            thinking="".join(self.thinking),
            extras=(self.quality,) if self.quality else (),
        )

    def to_html(self) -> str:
        return run_html(**self._render_args())

    def to_text(self) -> str:
        return run_text(**self._render_args())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    # -- replay of a stored run --------------------------------------------------------------

    @classmethod
    def from_stored(cls, run: Mapping[str, Any]) -> RunState:
        """Rebuild the view of a past run from ``Store.get_run`` (tool cards, text, sources)."""
        state = cls(run_id=str(run.get("id", "")), question=str(run.get("question") or ""))
        state.classification = run.get("classification") or None
        for item in run.get("events") or ():
            cls_ = _EVENT_TYPES.get(item.get("type", ""))
            payload = item.get("payload")
            if cls_ is None or not isinstance(payload, dict):
                continue
            fields = cls_.__dataclass_fields__  # type: ignore[attr-defined]
            try:
                state.apply(cls_(**{k: v for k, v in payload.items() if k in fields}))
            except TypeError:  # an event written by another version: show what we can
                continue
        answer = run.get("answer") or ""
        if answer and not state.text:
            state.blocks.append([answer])
        state.sources = tuple(_source(s) for s in run.get("sources") or () if isinstance(s, dict))
        state.stage = None
        if run.get("error"):
            state.error = state.error or (str(run["error"]), str(run.get("status") or "error"))
        timings = run.get("timings") or {}
        state.timings.update(timings if isinstance(timings, dict) else {})
        return state


def _source(d: Mapping[str, Any]) -> ev.Source:
    known = ev.Source.__dataclass_fields__
    clean = {k: v for k, v in d.items() if k in known}
    clean["reasons"] = tuple(clean.get("reasons") or ())
    clean.setdefault("n", 0)
    clean.setdefault("id", "")
    clean.setdefault("title", "")
    clean.setdefault("text", "")
    return ev.Source(**clean)


class StoredRunView:
    """A past run, shown again (``%research show RUN_ID``)."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        self.run = run
        self.state = RunState.from_stored(run)

    def _args(self) -> dict[str, Any]:
        args = self.state._render_args()
        r = self.run
        args["done"] = True
        args["footer"] = footer_text(
            run_id=str(r.get("id", "")),
            provider=r.get("provider") or "",
            model=r.get("model") or "",
            seconds=self.state.timings.get("total"),
        )
        args["offline"] = (r.get("provider") or "") == "offline"
        return args

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        args = self._args()
        head = f"Question: {self.state.question}"
        return {
            "text/plain": head + "\n\n" + run_text(**args),
            "text/html": '<div style="font-weight:600">'
            + esc(self.state.question)
            + "</div>"
            + run_html(**args),
        }


def _ipython_display() -> Callable[..., Any]:
    from IPython.display import display

    return display


class CellView:
    """Draws a run in a cell. ``live``: one handle, coalesced redraws; else one final display."""

    def __init__(
        self,
        *,
        live: bool = True,
        max_rate: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        display: Callable[..., Any] | None = None,
        state: Any = None,
    ) -> None:
        self.live = live
        self.interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self.clock = clock
        self._display = display
        self.state = state if state is not None else RunState()  # anything with apply/events
        self.handle: Any = None
        self.updates = 0  # displays + redraws sent, for tests and the benchmark
        self._last = float("-inf")
        self._dirty = False
        self._shown = False

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return self.state._repr_mimebundle_(include, exclude)

    def _show(self) -> None:
        display = self._display or _ipython_display()
        if self.live and self.handle is not None:
            self.handle.update(self.state)
        elif self.live:
            self.handle = display(self.state, display_id=True)
        else:
            display(self.state)
        self._shown = True
        self.updates += 1
        self._dirty = False
        self._last = self.clock()

    def handle_item(self, item: Any) -> None:
        """One event (or a ``None`` idle tick) from the stream."""
        if item is not None:
            self.state.apply(item)
            self._dirty = True
        if self.live and self._dirty and self.clock() - self._last >= self.interval:
            self._show()

    def flush(self) -> None:
        """Final draw: the last state in live mode, the only display in final mode."""
        if self.live:
            if self._dirty or not self._shown:
                if self.state.events or self._shown:
                    self._show()
        elif not self._shown and self.state.events:
            self._show()

    def _interrupted(self) -> None:
        self.state.notices.append(("warning", "interrupted: the run was stopped"))
        self._dirty = True

    def consume(self, stream: Iterable[Any]) -> Any:
        """Drive the view from a stream of events; always flushes, even when interrupted.
        Returns the state."""
        it = iter(stream)
        try:
            for item in it:
                self.handle_item(item)
        except KeyboardInterrupt:
            self._interrupted()
            raise
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # stops the engine's worker when we leave early
            self.flush()
        return self.state


class HostBar:
    """The four-host probability bar for one classification (``%research classify``)."""

    def __init__(self, classification: Any) -> None:
        self.classification = classification

    def __repr__(self) -> str:
        return host_bar_text(self.classification)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {
            "text/plain": host_bar_text(self.classification),
            "text/html": host_bar_html(self.classification),
        }


class ConfigReport:
    """``%research config``: settings and whether each key variable is set — never a key."""

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.rows = list(rows)

    def __repr__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=0)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        cells = "".join(
            f'<tr><th style="text-align:left;padding-right:12px">{esc(k)}</th>'
            f'<td style="text-align:left">{esc(v)}</td></tr>'
            for k, v in self.rows
        )
        return {"text/plain": repr(self), "text/html": f'<table class="fh-config">{cells}</table>'}
