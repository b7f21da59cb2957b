"""The terminal view: the same event stream as the cell, printed for a shell.

The answer text goes to stdout; stages, tool calls and notices go to stderr, so
``fourhosts research "…" > answer.md`` keeps a clean answer.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Iterable

from .classifier import Classification
from .events import (
    AnswerReady,
    Classified,
    Event,
    LayerStarted,
    Notice,
    RunFailed,
    SourcesSelected,
    TextDelta,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallRunning,
)
from .paradigms import HOSTS, PROFILES
from .redact import neutralise, redact

BAR_WIDTH = 40


def host_bar(c: Classification, width: int = BAR_WIDTH) -> str:
    """A one-line text bar plus the legend, e.g. '████▓▓▓▒▒░  Dolores 40% …'."""
    marks = {"dolores": "█", "teddy": "▓", "bernard": "▒", "maeve": "░"}
    cells: list[str] = []
    for h in HOSTS:
        cells += [marks[h.value]] * round(c.probabilities[h] * width)
    bar = "".join(cells)[:width].ljust(width, marks[c.ranked[-1].value])
    legend = "  ".join(
        f"{marks[h.value]} {PROFILES[h].label} {round(c.probabilities[h] * 100)}%"
        + (" ★" if h is c.primary else "")
        for h in HOSTS
    )
    return f"{bar}\n{legend}\n{c.reason}"


def render(events: Iterable[Event], out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> AnswerReady | RunFailed | None:
    last: AnswerReady | RunFailed | None = None
    wrote_text = False
    for ev in events:
        if isinstance(ev, Classified):
            print(host_bar(ev.classification), file=err)
        elif isinstance(ev, LayerStarted):
            print(f"… {ev.label}", file=err)
        elif isinstance(ev, Notice):
            print(f"! {neutralise(redact(ev.message), keep_lines=True)}", file=err)
        elif isinstance(ev, SourcesSelected):
            print(f"  {len(ev.sources)} sources selected", file=err)
        elif isinstance(ev, ToolCallRunning):
            print(f"⚙ {ev.name}({json.dumps(ev.arguments, ensure_ascii=False)[:200]})", file=err)
        elif isinstance(ev, ToolCallFinished):
            print(f"✓ {ev.name} {ev.seconds:.2f}s", file=err)
        elif isinstance(ev, ToolCallFailed):
            print(f"✗ {neutralise(ev.name)}: {neutralise(redact(ev.error), keep_lines=True)}", file=err)
        elif isinstance(ev, TextDelta):
            out.write(neutralise(ev.text, keep_lines=True))  # model text: no terminal escapes
            out.flush()
            wrote_text = True
        elif isinstance(ev, AnswerReady):
            last = ev
            if wrote_text and not ev.answer.text.endswith("\n"):
                out.write("\n")
            if ev.answer.sources:
                out.write("\nSources\n")
                for s in ev.answer.sources:
                    out.write(f"[{s.n}] {neutralise(s.title)} — {neutralise(s.origin)}\n")
        elif isinstance(ev, RunFailed):
            last = ev
            if wrote_text:
                out.write("\n")
    return last
