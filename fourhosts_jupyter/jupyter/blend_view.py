"""A blend in a cell: one chip per blended host with its weight, the mode and why it was
chosen, the unified answer, and each host's part folded away in a ``<details>``.

``BlendState`` is the compare grid's fold (``GridState``: a RunState per host) plus the plan and
the unified text. Live in a kernel it streams through widgets (``blend_live``); elsewhere
``GridView`` draws it through one coalesced display handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..paradigms import PROFILES
from ..render import _color, esc, host_bar_html, host_bar_text, markdown_html, plain, sources_html
from .grid import GridState, _growing_html


@dataclass
class BlendState(GridState):
    plan: Any = None  # BlendPlan, or its stored dict form
    unified: str = ""
    result: Any = None
    classification: Any = None
    sources: tuple = ()

    def apply(self, e: Any) -> None:
        from ..blending import BlendFinished, BlendStarted, SplitDecided, UnifiedDelta

        if isinstance(e, UnifiedDelta):
            self.events += 1
            self.unified += e.text
        elif isinstance(e, BlendStarted):
            self.events += 1
            self.comparison_id, self.question, self.kind = e.comparison_id, e.question, "blend"
            self.plan, self.hosts, self.classification = e.plan, e.plan.hosts, e.classification
            for h in e.plan.hosts:
                self.panel(h)
        elif isinstance(e, SplitDecided):
            self.events += 1
            from dataclasses import replace

            self.plan = replace(self.plan, questions=e.questions, split=e.split)
        elif isinstance(e, BlendFinished):
            self.events += 1
            self.result, self.plan = e.result, e.result.plan
            self.unified, self.sources = e.result.text, e.result.sources
            self.summary = e.result.summary()
        else:
            super().apply(e)

    @classmethod
    def from_result(cls, result: Any) -> BlendState:
        g = GridState.from_comparison(result.parts)
        s = cls(comparison_id=g.comparison_id, question=g.question, hosts=g.hosts, panels=g.panels, kind="blend")
        s.result, s.plan, s.unified, s.sources = result, result.plan, result.text, result.sources
        s.summary, s.final = result.summary(), True
        return s

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> BlendState:
        g = GridState.from_stored(stored)
        s = cls(comparison_id=g.comparison_id, question=g.question, hosts=g.hosts, panels=g.panels, kind="blend")
        s.summary, s.final = g.summary, True
        b = (g.summary or {}).get("blend") or {}
        s.plan = b
        s.unified = str(b.get("text") or "")
        from .view import _source

        s.sources = tuple(_source(x) for x in b.get("sources") or () if isinstance(x, dict))
        return s

    # -- the plan, whichever form it has ------------------------------------------------------

    def _plan(self) -> dict[str, Any]:
        p = self.plan
        if p is None:
            return {}
        if isinstance(p, Mapping):
            return dict(p)
        return {
            "mode": p.mode, "why": p.why, "confidence": p.confidence, "split": p.split,
            "weights": {h.value: w for h, w in p.weights.items()},
            "questions": {h.value: q for h, q in p.questions.items()},
        }  # fmt: skip

    def _bar(self) -> Any:
        return self.classification if self.classification is not None else self._bar_classification()

    def top_html(self) -> str:
        """The question, the four-host bar, a chip per blended host, the mode and the split."""
        p = self._plan()
        w = p.get("weights") or {}
        chips = "".join(
            f'<span class="fh-blend-chip" data-host="{esc(h.value)}" style="display:inline-block;'
            f"border:1px solid {_color(h)};color:{_color(h)};border-radius:12px;padding:1px 9px;"
            f'margin:2px 6px 2px 0;font-weight:600">{esc(PROFILES[h].emoji)} {esc(PROFILES[h].label)} '
            f"{round(float(w.get(h.value, 0)) * 100)}%</span>"
            for h in self.hosts
        )
        mode = (
            f'<div class="fh-blend-mode" style="font-size:0.9em;margin:2px 0">Blend: <b>{esc(p.get("mode", ""))}</b>'
            f' · confidence {round(float(p.get("confidence", 0)) * 100)}% — {esc(p.get("why", ""))}</div>'
            if p else ""
        )
        split = f'<div style="font-size:0.85em;opacity:0.8">Split: {esc(p["split"])}</div>' if p.get("split") else ""
        bar = self._bar()
        return (
            (f'<div style="font-weight:600">{esc(self.question)}</div>' if self.question else "")
            + (host_bar_html(bar) if bar is not None else "")
            + f'<div class="fh-blend-chips">{chips}</div>{mode}{split}'
        )

    def to_html(self) -> str:
        p = self._plan()
        live = self.summary is None
        unified = _growing_html(self.unified) if live else markdown_html(self.unified)
        parts = []
        questions = p.get("questions") or {}
        for h in self.hosts:
            sub = f" — {questions[h.value]}" if p.get("mode") == "collaborative" and h.value in questions else ""
            parts.append(
                f'<details class="fh-blend-part" data-host="{esc(h.value)}"><summary style="cursor:pointer;'
                f'color:{_color(h)}">{esc(PROFILES[h].emoji)} {esc(PROFILES[h].label)}\'s part{esc(sub)}</summary>'
                f"{self.panel_html(h)}</details>"
            )
        return (
            '<div class="fh-blend">'
            + self.top_html()
            + (f'<div class="fh-answer fh-blend-answer">{unified}</div>' if self.unified else "")
            + sources_html(self.sources)
            + "".join(parts)
            + (f'<div style="font-size:0.8em;opacity:0.6">blend {esc(self.comparison_id)}</div>' if self.comparison_id else "")
            + "</div>"
        )

    def to_text(self) -> str:
        p = self._plan()
        w = p.get("weights") or {}
        out = [f"Blend: {plain(self.question)}"]
        bar = self._bar()
        if bar is not None:
            out.append(host_bar_text(bar))
        if p:
            chips = "  ".join(f"[{PROFILES[h].label} {round(float(w.get(h.value, 0)) * 100)}%]" for h in self.hosts)
            out.append(f"{chips}\nMode: {p.get('mode')} · confidence {round(float(p.get('confidence', 0)) * 100)}% — {plain(p.get('why', ''))}")
            if p.get("split"):
                out.append(f"Split: {plain(p['split'])}")
        if self.unified:
            out.append(plain(self.unified).strip())
        if self.sources:
            out.append("Sources:\n" + "\n".join(f"  [{s.n}] {plain(s.title)}" for s in self.sources))
        out += [self.panel_text(h) for h in self.hosts]
        if self.comparison_id:
            out.append(f"blend {self.comparison_id}")
        return "\n\n".join(out)

