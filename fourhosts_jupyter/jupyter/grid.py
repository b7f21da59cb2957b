"""The compare grid: one panel per host side by side, drawn through ONE coalesced display.

``GridState`` folds a comparison's events (CompareStarted, HostEvent, CompareFinished) into a
``RunState`` per host (the same fold as a single run's cell) and draws them as
``div.fh-compare-grid`` > ``div.fh-compare-panel[data-host=…]`` (answer text in ``.fh-answer``;
the browser test looks for these). ``GridView`` draws it through one display handle, at most
``max_rate`` redraws a second for the whole grid, or once at the end (final mode, for nbval).
No IPython import here except in ``CellView._show``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import events as ev
from ..paradigms import HOSTS, PROFILES, HostParadigm
from ..render import (
    ToolCard,
    _color,
    _finished_html,
    esc,
    host_bar_html,
    host_bar_text,
    markdown_html,
    markdown_segments,
    plain,
    stage_html,
    stage_text,
    tool_card_html,
    tool_card_text,
)
from .view import CellView, RunState

# 2 columns (2×2 for four hosts); 4 columns when the output area is wide. Plain CSS, no script.
_GRID_CSS = (
    "<style>.fh-compare-grid{display:grid;gap:10px;grid-template-columns:repeat(2,minmax(0,1fr))}"
    "@media (min-width:1500px){.fh-compare-grid.fh-n4{grid-template-columns:repeat(4,minmax(0,1fr))}}"
    "@media (max-width:700px){.fh-compare-grid{grid-template-columns:minmax(0,1fr)}}</style>"
)
_SMALL = "font-size:0.8em;opacity:0.7"


def _growing_html(text: str) -> str:
    # Per panel, not render.streaming_markdown_html's one shared cache (four answers grow at
    # once): finished blocks come from the LRU cache, only the last block is parsed again.
    parts = markdown_segments(text)
    return "".join(_finished_html(p) for p in parts[:-1]) + markdown_html(parts[-1] if parts else "")


def _probability(state: RunState, host: HostParadigm) -> float | None:
    c = state.classification
    if c is None:
        return None
    probs = c.get("probabilities", {}) if isinstance(c, Mapping) else c.probabilities
    value = probs.get(host.value, probs.get(host)) if isinstance(probs, Mapping) else None
    return float(value) if value is not None else None


@dataclass
class GridState:
    """Every panel of a comparison, updated event by event."""

    comparison_id: str = ""
    question: str = ""
    hosts: tuple[HostParadigm, ...] = HOSTS
    panels: dict[HostParadigm, RunState] = field(default_factory=dict)
    comparison: Any = None  # Comparison, when every host has finished
    summary: dict[str, Any] | None = None  # the footer as stored (a redrawn grid)
    kind: str = "compare"
    events: int = 0
    final: bool = False  # drawn from a finished comparison or the run log: every panel is done

    def panel(self, host: HostParadigm) -> RunState:
        state = self.panels.get(host)
        if state is None:
            state = self.panels[host] = RunState()
        return state

    def apply(self, e: Any) -> None:
        from ..comparison import CompareFinished, CompareStarted, HostEvent

        self.events += 1
        if isinstance(e, HostEvent):
            self.panel(e.host).apply(e.event)
        elif isinstance(e, CompareStarted):
            self.comparison_id, self.question, self.hosts, self.kind = e.comparison_id, e.question, e.hosts, e.kind
            for h in e.hosts:
                self.panel(h)
        elif isinstance(e, CompareFinished):
            self.comparison = e.comparison
            self.summary = e.comparison.summary()

    @property
    def done(self) -> bool:
        return self.summary is not None

    # -- construction from a finished comparison / the run log ------------------------------

    @classmethod
    def from_comparison(cls, c: Any) -> GridState:
        g = cls(comparison_id=c.id, question=c.question, hosts=tuple(c.hosts), kind=c.kind)
        for h in c.hosts:
            r = c.results.get(h)
            s = g.panel(h)
            if r is None:
                continue
            if r.answer is not None:
                s.apply(ev.AnswerReady(r.answer))
            else:
                s.apply(ev.RunFailed(r.error, r.kind, r.partial_text))
        g.comparison, g.summary, g.final = c, c.summary(), True
        return g

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> GridState:
        """Redraw a stored comparison (``%research show C_ID``) from its runs."""
        hosts = tuple(HostParadigm(h) for h in stored.get("hosts") or () if h in {x.value for x in HOSTS})
        g = cls(comparison_id=str(stored["id"]), question=str(stored.get("question") or ""),
                hosts=hosts, kind=str(stored.get("kind") or "compare"))  # fmt: skip
        for run in stored.get("runs") or ():
            host = (run.get("options") or {}).get("paradigm") or run.get("paradigm")
            if host in {h.value for h in hosts}:
                g.panels[HostParadigm(host)] = RunState.from_stored(run)
        g.summary, g.final = dict(stored.get("summary") or {}), True
        return g

    # -- rendering ---------------------------------------------------------------------------

    def _bar_classification(self) -> Any:
        """The question's classification, as the grid's bar: each panel's run was forced to its
        host, so the bar marks the classifier's own top host, not the first panel's."""
        for h in self.hosts:
            c = self.panel(h).classification
            if c is not None:
                d = dict(c) if isinstance(c, Mapping) else c.to_dict()
                ranked = d.get("ranked") or []
                top = d.get("dominant") or (ranked[0] if ranked else None)
                names = ", ".join(x.value for x in self.hosts)
                return {**d, "forced": False, "primary": top,
                        "reason": f"{len(self.hosts)} hosts side by side ({names})"}  # fmt: skip
        return None

    def panel_style(self, host: HostParadigm) -> str:
        return (f"min-width:0;border:1px solid rgba(127,127,127,0.3);border-top:4px solid {_color(host)};"
                "border-radius:4px;padding:6px 8px")  # fmt: skip

    def panel_head_html(self, host: HostParadigm) -> str:
        """The panel's title (emoji, label, stance, p%) and its stage line."""
        s = self.panel(host)
        p = PROFILES[host]
        prob = _probability(s, host)
        pct = f" · {round(prob * 100)}%" if prob is not None else ""
        return (
            f'<div class="fh-panel-head" style="font-weight:600;color:{_color(host)}">'
            f"{esc(p.emoji)} {esc(p.label)} ({esc(p.stance)}){esc(pct)}</div>"
            + stage_html(s.stage, s.stage_words, done=self.final or s.answer is not None, failed=s.error is not None)
        )

    def panel_end_html(self, host: HostParadigm) -> str:
        """What closes a panel: its error, its sources, its figures (empty while it runs)."""
        s = self.panel(host)
        parts = []
        if s.error is not None:
            parts.append(f'<div style="color:#DC2626">❌ {esc(s.error[1])}: {esc(s.error[0])}</div>')
        if s.sources:
            cites = "; ".join(f"[{x.n}] {x.title}" for x in s.sources)
            parts.append(f'<div style="{_SMALL};margin-top:4px">Sources: {esc(cites)}</div>')
        a = s.answer
        if a is not None:
            figures = [f"{len(a.text):,} chars"]
            if a.usage.total_tokens:
                figures.append(f"{a.usage.total_tokens:,} tokens")
            if a.timings.get("total") is not None:
                figures.append(f"{a.timings['total']:.2f} s")
            figures.append(f"run {a.run_id}")
            parts.append(f'<div style="{_SMALL}">{esc(" · ".join(figures))}</div>')
        return "".join(parts)

    def panel_html(self, host: HostParadigm) -> str:
        s = self.panel(host)
        parts = [
            f'<div class="fh-compare-panel" data-host="{esc(host.value)}" style="{self.panel_style(host)}">',
            self.panel_head_html(host),
        ]
        live = not (self.final or s.done)
        last = len(s.blocks) - 1
        for i, b in enumerate(s.blocks):
            if isinstance(b, ToolCard):
                parts.append(tool_card_html(b))
            elif b:
                text = "".join(b)
                html = _growing_html(text) if live and i == last else _finished_html(text)
                parts.append(f'<div class="fh-answer">{html}</div>')
        parts += [self.panel_end_html(host), "</div>"]
        return "".join(parts)

    def panel_text(self, host: HostParadigm) -> str:
        s = self.panel(host)
        p = PROFILES[host]
        prob = _probability(s, host)
        pct = f" {round(prob * 100)}%" if prob is not None else ""
        lines = [f"== {p.label} ({p.stance}){pct} =="]
        if not (self.final or s.done):
            lines.append(stage_text(s.stage, s.stage_words))
        for b in s.blocks:
            if isinstance(b, ToolCard):
                lines.append(tool_card_text(b))
            elif b:
                lines.append(plain("".join(b)).strip())
        if s.error is not None:
            lines.append(f"failed ({plain(s.error[1])}): {plain(s.error[0])}")
        if s.sources:
            lines.append("Sources: " + "; ".join(f"[{x.n}] {plain(x.title)}" for x in s.sources))
        return "\n".join(lines)

    def footer_html(self) -> str:
        if not self.summary:
            return ""
        from .grid_footer import footer_html

        return footer_html(self.summary, self.hosts)

    def footer_text(self) -> str:
        if not self.summary:
            return ""
        from .grid_footer import footer_text

        return footer_text(self.summary, self.hosts)

    def top_html(self) -> str:
        """The question and the four-host bar, above the panels."""
        c = self._bar_classification()
        head = f'<div style="font-weight:600">{esc(self.question)}</div>' if self.question else ""
        return head + (host_bar_html(c) if c is not None else "")

    def columns(self) -> str | None:
        """The grid's columns when not four hosts (four: 2×2, or a row when wide, by _GRID_CSS)."""
        n = len(self.hosts)
        return None if n == 4 else f"repeat({max(1, n)},minmax(0,1fr))"

    def to_html(self) -> str:
        n = len(self.hosts)
        cols = "" if self.columns() is None else f' style="grid-template-columns:{self.columns()}"'
        panels = "".join(self.panel_html(h) for h in self.hosts)
        return (
            f'<div class="fh-compare">{_GRID_CSS}{self.top_html()}'
            f'<div class="fh-compare-grid fh-n{n}"{cols}>{panels}</div>'
            f"{self.footer_html()}</div>"
        )

    def to_text(self) -> str:
        c = self._bar_classification()
        parts = [f"Compare: {plain(self.question)}"]
        if c is not None:
            parts.append(host_bar_text(c))
        parts += [self.panel_text(h) for h in self.hosts]
        footer = self.footer_text()
        if footer:
            parts.append(footer)
        return "\n\n".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}


class GridView(CellView):
    """Draws a comparison (or a blend): ``live``, one handle redrawn ≤ ``max_rate``/s; else one
    display. The drawing and coalescing are ``CellView``'s, over a ``GridState``."""

    def __init__(self, *, state: GridState | None = None, **kwargs: Any) -> None:
        super().__init__(state=state if state is not None else GridState(), **kwargs)

    def _interrupted(self) -> None:
        pass  # a stopped comparison is drawn as it stood: the grid has no notice line
