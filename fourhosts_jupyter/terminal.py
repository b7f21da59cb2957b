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
    ReasoningDelta,
    RunFailed,
    SourcesSelected,
    TextDelta,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallRunning,
)
from .memory.origins import source_line
from .paradigms import HOSTS, PROFILES
from .redact import neutralise, redact
from .render import plain

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


DIM, RESET = "\x1b[2m", "\x1b[0m"


def render(events: Iterable[Event], out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> AnswerReady | RunFailed | None:
    last: AnswerReady | RunFailed | None = None
    wrote_text = False
    thinking = False  # inside a run of reasoning-summary pieces on stderr
    dim = bool(getattr(err, "isatty", lambda: False)())
    for ev in events:
        if thinking and not isinstance(ev, ReasoningDelta):
            err.write((RESET if dim else "") + "\n")
            thinking = False
        if isinstance(ev, ReasoningDelta):  # the model's reasoning: dimmed, apart from the answer
            if not thinking:
                err.write((DIM if dim else "") + "💭 ")
                thinking = True
            err.write(plain(ev.text))
            err.flush()
            continue
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
        elif ev.type in ("evaluated", "healed", "collaboration"):  # quality/: one line each
            from .quality.panel import QualityPanel

            panel = QualityPanel()
            panel.apply(ev)
            print(panel.to_text(), file=err)
        elif ev.type == "answer_revised":  # the healed / extended answer, in full
            out.write(f"\n--- revised answer ({ev.reason}) ---\n" + neutralise(ev.text, keep_lines=True))
            wrote_text = True
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
                    out.write(source_line(s.n, s.title, s.origin, s.date) + "\n")
        elif isinstance(ev, RunFailed):
            last = ev
            if wrote_text:
                # stdout alone (a pipe, a file) must not pass a cut-off answer for a whole one
                out.write(" [cut off]\n" if ev.kind == "incomplete" else "\n")
    return last
