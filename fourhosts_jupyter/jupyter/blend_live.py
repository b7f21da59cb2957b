"""The live blend as widgets: the live compare grid of the blended hosts' parts, with the
unified answer streaming above them, each finished piece sent once.

``GridView`` over a ``BlendState`` redraws the whole blend (top, unified answer, every part)
through one display handle, ~38× the final output for a two-host blend with a 12 kB answer
(``bench view``). ``LiveBlendView`` is ``grid_live.LiveGridView`` with the blend's top (chips,
mode, split: ``BlendState.top_html``) and one more tail between the top and the parts: the
unified answer, split by ``segmented.Splitter`` and frozen like a panel's tail (``_Panel``). The
parts stream as the grid's panels do.

At the end the widgets give way to the final blend (``BlendState`` as ``GridView`` draws it:
the unified answer, sources, each part folded in a ``<details>``), so the saved notebook holds the
same plain HTML + text/plain as before. Final mode (nbval) and places without widgets draw
``GridView`` as before (``blend_view``).
"""

from __future__ import annotations

from typing import Any

from .blend_view import BlendState
from .grid import GridView
from .grid_live import LiveGridView, _Panel, _slim, uses_widgets


class _Unified(_Panel):
    """The unified answer's tails: a panel without a head, fed by the blend's text."""

    def __init__(self, view: LiveBlendView) -> None:  # not _Panel.__init__: that builds a host's head
        self._open(view, None)
        # spans the grid's columns, like the top (grid_live._frames: .fh-live-top)
        self.box = view._made(_slim("VBox")([self.tail], _dom_classes=("fh-live-top", "fh-blend-live-answer")))

    def fold(self) -> None:
        if self.ended:
            return
        s: BlendState = self.view.state
        done = s.summary is not None  # BlendFinished
        finished, tail = self.splitter.split([[s.unified]] if s.unified else [], final=done)
        self.fresh += "".join(p.html for p in finished)
        self.growing = tail.html if tail is not None else ""
        self.ended = done


class LiveBlendView(LiveGridView):
    """``LiveGridView`` for a blend (see the module docstring)."""

    def _build(self) -> None:
        self._unified = _Unified(self)
        super()._build()

    def _above(self) -> list[Any]:
        return [self._unified.box]

    def _tails(self) -> list[Any]:
        return [self._unified, *super()._tails()]

    def _live_text(self) -> str:
        names = ", ".join(h.value for h in self.state.hosts)
        return f"Blend: {self.state.question} ({names}: streaming; the blend is drawn here when it finishes)"


def blend_view(*, live: bool, max_rate: float, widgets: bool | None = None, **kwargs: Any) -> GridView:
    """A blend's view: widgets while streaming when they can be shown, else ``GridView``."""
    cls = LiveBlendView if uses_widgets(live, widgets) else GridView
    return cls(live=live, max_rate=max_rate, state=BlendState(), **kwargs)
