"""The live compare grid as widgets: finished pieces are not sent again with every redraw.

``GridView`` redraws the whole grid's HTML through one display handle, so a four-panel stream
sends the grid again at every redraw (~35× the final output for 12 kB answers). Panels side by
side cannot be separate notebook outputs, so ``LiveGridView`` draws the live grid as ipywidgets:

- one ``GridBox`` (2×2, a row of four when wide: the final grid's CSS): the top (question, host
  bar, the CSS) spanning its columns, then one ``VBox`` per host, framed in the host's colour by
  that CSS (no Layout or style widgets: each widget would be two more messages, and a reference
  in every other widget's state);
- in each panel, a head (title, p%, stage line) redrawn only when it changes, then the frozen
  tails, then the tail: ONE ``HTML`` widget showing the finished pieces not yet frozen (Markdown
  blocks, tool cards, at the end the sources and figures; ``segmented.Splitter`` says which are
  finished) and what still grows. Once it holds ``FREEZE`` characters of finished text (or has
  been sent ``SENDS`` times with ``FREEZE_MIN``: a slow stream re-sends less), its redraw sends
  just those (it is frozen, never sent again) and a new tail opens below with what grows;
- ONE tail redrawn a round, the panel whose shown tail is oldest (a panel waits ≥ ``TAIL_S``):
  ≤ ``max_rate`` (10) tail redraws a second for the whole grid, not per panel, each panel's
  every ~0.5 s while it grows; a panel that ends is drawn at once. The grid is first drawn when
  every host is classified (≤ ``SKELETON_S``), so heads and bar are not sent twice at once.

Every message costs its content and a ~0.55 kB protocol envelope (header, parent header,
signature), so the figures count both (``bench view``: four ~12 kB answers over 7 s). Content /
wire, against the final output: ``GridView`` 35.0× / 35.4×; the previous widget grid (a widget
per finished piece, 600-character merges, each panel's tail ≤ 5/s: 507 messages) 2.96× / 5.38×;
this one (137 messages) 2.28× / 2.94×. ``FREEZE`` 1800–3000 measured 2.94–3.02× on the wire: a
tail frozen every ~2–3 redraws balances re-sending its text against a new widget's messages
(open, children list, close). Redraws are paced by time, so a slower stream sends more
envelopes per byte: the same answers over 28 s, 3.25× / 5.03× (4.38× / 5.82× without SENDS).

When the stream ends (or is interrupted), the widget output is replaced by the final one-HTML
grid (``GridState``, exactly as ``GridView`` draws it) and the widgets are closed, so the saved
notebook holds plain HTML + text/plain. Final mode (nbval) is ``CellView``'s: one display.

Where widgets cannot be shown — ipywidgets missing, or no kernel comm (a terminal IPython, a
script: ``comm.create_comm`` is still the dummy that sends nothing) — ``grid_view`` returns the
plain ``GridView``. Model and tool text goes through the same renderers as the final grid.
"""

from __future__ import annotations

from typing import Any

from ..paradigms import HostParadigm
from ..render import _color
from .grid import _GRID_CSS, GridState, GridView
from .segmented import Splitter

FREEZE = 2500  # characters of finished text after which a tail is frozen and a new one opens
SENDS, FREEZE_MIN = 3, 1000  # … or after SENDS redraws, with FREEZE_MIN (a slow stream's re-sends)
SKELETON_S = 0.5  # at most this long without a grid while the hosts are classified
TAIL_S = 0.5  # seconds at least between a panel's tail redraws (≤ 2 a second a panel)
# the final grid's columns; and its type, which a rendered HTML output gets from the lab's
# content styles (a widget's HTML has the widgets' 28px single-line height)
_LIVE_CSS = _GRID_CSS.replace(".fh-compare-grid", ".fh-compare-live-grid").replace(
    "</style>", ".fh-compare-live .widget-html-content{font-size:var(--jp-content-font-size1,14px);"
    "line-height:var(--jp-content-line-height,1.6)}.fh-compare-live .widget-html{margin-top:0;margin-bottom:0}"
    ".fh-compare-live .fh-answer p{margin-top:0}</style>")  # no double gaps where two pieces meet


def _frames(s: GridState) -> str:
    """The live grid's CSS: the final grid's columns and type, each panel's frame in its host's
    colour (GridState.panel_style), the columns when not four hosts (GridState.columns)."""
    cols = s.columns()
    rules = (".fh-live-top{grid-column:1/-1}.fh-compare-live-grid.widget-gridbox{width:100%;gap:10px}"
             ".fh-compare-live-panel{min-width:0;border:1px solid rgba(127,127,127,0.3);border-radius:4px;"
             "padding:6px 8px}")  # fmt: skip
    # the host's colour after the frame's (same specificity: the later rule wins)
    rules += "".join(f".fh-live-{h.value}{{border-top:4px solid {_color(h)}}}" for h in s.hosts)
    if cols:
        rules += f".fh-compare-live-grid.widget-gridbox{{grid-template-columns:{cols}}}"
    return _LIVE_CSS.replace("</style>", rules + "</style>")


def widgets_available() -> bool:
    """ipywidgets importable and a kernel's comm installed (ipykernel replaces
    ``comm.create_comm``; so does ``bench._view_bytes.KernelTraffic``)."""
    try:
        import comm
        import ipywidgets
    except ImportError:
        return False
    return bool(ipywidgets) and comm.create_comm is not getattr(comm, "_create_comm", None)


def uses_widgets(live: bool, widgets: bool | None) -> bool:
    """Whether a live view streams through widgets: ``widgets`` None decides
    (``widgets_available``); False forces the one-handle GridView."""
    return live and (widgets_available() if widgets is None else widgets)


def grid_view(*, live: bool, max_rate: float, widgets: bool | None = None, **kwargs: Any) -> GridView:
    """The compare grid's view: widgets while streaming when they can be shown, else GridView."""
    return (LiveGridView if uses_widgets(live, widgets) else GridView)(live=live, max_rate=max_rate, **kwargs)


_SLIM: dict[str, type] = {}
_SYNCED = frozenset({"value", "children"})  # what this view changes
# never synced: the front-end's views draw no Layout or style model when there is none (the CSS,
# _frames, does their work); a Layout and a style would be two widgets, and a reference in every
# other widget's state
_UNSYNCED = frozenset({"layout", "style"})
_DEFAULTS = {"placeholder": "\u200b"}  # as in the front-end's models (@jupyter-widgets/controls)


def _slim(name: str) -> type:
    """ipywidgets' ``name`` (HTML, VBox, GridBox) syncing only its model names, the traits in
    ``_SYNCED`` and those given a value other than the default when made: the front-end's model
    fills in the defaults of the rest (view names, description, placeholder, tooltip …), and no
    Layout or style widget is made — about two thirds of the state a widget opens with, and two
    widgets fewer. Nothing else is changed later."""
    if name not in _SLIM:
        import ipywidgets as w
        from traitlets import default

        base = getattr(w, name)

        class Slim(base):  # type: ignore[misc, valid-type]
            @default("keys")
            def _default_keys(self) -> list[str]:
                def wanted(k: str) -> bool:
                    if k in _UNSYNCED:
                        return False  # never read: reading makes the default Layout/style widget
                    if k in _SYNCED or k.startswith("_model_"):
                        return True  # the manager picks the model class by these
                    if k.startswith("_view_"):  # HTMLView, VBoxView, GridBoxView: the controls
                        return False  # models' own defaults
                    value = getattr(self, k)
                    return value not in (None, "", (), False) and _DEFAULTS.get(k) != value

                return [k for k in super()._default_keys() if wanted(k)]

        Slim.__name__ = Slim.__qualname__ = name
        _SLIM[name] = Slim
    return _SLIM[name]


class _Live:
    """What the cell shows while streaming: the widget, with a short text/plain for front-ends
    without the widget manager (the whole grid replaces it at the end)."""

    def __init__(self, root: Any, text: str) -> None:
        self.root, self.text = root, text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.root._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = self.text
        return bundle


class _Panel:
    """One host's live panel: head, frozen tails (finished text), the growing tail last."""

    def __init__(self, view: LiveGridView, host: HostParadigm) -> None:
        self._open(view, host)
        self.head_value = view.state.panel_head_html(host)
        self.head = view._html(self.head_value)
        # the final panel's frame (GridState.panel_style) comes from the CSS (_frames): a Layout
        # widget per panel would be two more messages each
        self.box = view._made(_slim("VBox")([self.head, self.tail],
                                            _dom_classes=("fh-compare-live-panel", f"fh-live-{host.value}")))

    def _open(self, view: LiveGridView, host: HostParadigm | None) -> None:
        """The growing tail's state (a blend's unified answer has a tail and no head)."""
        self.view, self.host = view, host
        self.splitter = Splitter()
        self.tail = view._html("")
        self.fresh = ""  # finished HTML not yet in a frozen widget (the tail shows it)
        self.growing = ""  # what still grows, below it
        self.shown = ""  # the tail's value as last sent
        self.sends = 0  # redraws of this tail since it opened
        self.tail_at = float("-inf")
        self.ended = False

    @property
    def stale(self) -> bool:
        return self.fresh + self.growing != self.shown

    def fold(self) -> None:
        """Take in what the run did since the last round (nothing is sent)."""
        s = self.view.state
        head = s.panel_head_html(self.host)
        if head != self.head_value:
            self.head.value = self.head_value = head
        if self.ended:
            return
        state = s.panel(self.host)
        finished, tail = self.splitter.split(state.blocks, final=state.done)
        self.fresh += "".join(p.html for p in finished)
        self.growing = tail.html if tail is not None else ""
        if state.done:
            self.ended = True
            self.fresh += s.panel_end_html(self.host)

    def redraw(self, now: float) -> None:
        """Send the tail. Once it holds ``FREEZE`` characters of finished text it keeps just
        them (a frozen piece, never re-sent) and a new tail below takes what grows."""
        size = len(self.fresh)
        if self.growing and (size >= FREEZE or (self.sends >= SENDS and size >= FREEZE_MIN)):
            if self.shown != self.fresh:
                self.tail.value = self.fresh
            self.tail = self.view._html(self.growing)
            self.box.children = (*self.box.children, self.tail)
            self.fresh, self.shown, self.sends = "", self.growing, 0
        else:
            self.tail.value = self.shown = self.fresh + self.growing
            self.sends += 1
        self.tail_at = now
        self.view.tail_redraws += 1


class LiveGridView(GridView):
    """``GridView`` whose live mode streams through widgets (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redraws = 0  # coalesced redraw rounds
        self.tail_redraws = 0  # tails sent (≤ one a round, and each ended panel's last)
        self.widgets: list[Any] = []  # every widget made, closed at the end
        self._root: Any = None
        self._since: float | None = None  # when the comparison started (the first round)
        self._handle: Any = None

    # -- widgets -----------------------------------------------------------------------------

    def _made(self, widget: Any) -> Any:
        self.widgets.append(widget)
        return widget

    def _html(self, value: str) -> Any:
        return self._made(_slim("HTML")(value=value))

    def _build(self) -> None:
        s: GridState = self.state
        self._css = _frames(s)
        self._top = self._made(_slim("HTML")(value=self._css + s.top_html(),
                                             _dom_classes=("fh-live-top",)))
        self._top_value = self._top.value
        self._panels = {h: _Panel(self, h) for h in s.hosts}
        # one GridBox, the top spanning its columns (a VBox around both would be two more messages)
        self._root = self._made(_slim("GridBox")([self._top, *self._above(), *(p.box for p in self._panels.values())],
                                                 _dom_classes=(
                                                     "fh-compare-live", "fh-compare-live-grid", f"fh-n{len(s.hosts)}")))

    def _above(self) -> list[Any]:
        """Widgets between the top and the panels (a blend's unified answer)."""
        return []

    def _tails(self) -> list[Any]:
        """Everything with a growing tail: the panels (and what ``_above`` adds)."""
        return list(self._panels.values())

    def _live_text(self) -> str:
        names = ", ".join(h.value for h in self.state.hosts)
        return f"Compare: {self.state.question} ({names}: streaming; the grid is drawn here when they finish)"

    # -- drawing -----------------------------------------------------------------------------

    def _show(self) -> None:
        if not self.live:
            super()._show()
            return
        if self._root is None:
            if not self.state.hosts or not self.state.comparison_id:
                return  # nothing to lay out before CompareStarted
            # wait (≤ SKELETON_S) for every host's classification: drawn at once, the heads and the
            # bar would be sent again a round later
            now = self.clock()
            self._since = now if self._since is None else self._since
            ready = all(p.classification is not None or p.done for p in map(self.state.panel, self.state.hosts))
            if not ready and now - self._since < SKELETON_S:
                return
            self._build()
        self.redraws += 1
        top = self._css + self.state.top_html()
        if top != self._top_value:
            self._top.value = self._top_value = top
        # every panel takes in its events; ONE growing tail is sent a round (≤ max_rate a second
        # for the grid), the panel's whose shown tail is oldest; a panel that has ended is drawn
        # at once (its last redraw: once per panel)
        now = self.clock()
        tails = self._tails()
        for p in tails:
            p.fold()
            if p.ended and p.stale:
                p.redraw(now)
        due = [p for p in tails if p.stale and now - p.tail_at >= TAIL_S]
        if due:
            min(due, key=lambda p: p.tail_at).redraw(now)
        if self._handle is None:
            display = self._display
            if display is None:
                from IPython.display import display
            self._handle = display(_Live(self._root, self._live_text()), display_id=True)
        self.updates += 1
        self._shown = True
        self._dirty = any(p.stale for p in tails)  # the next tick draws the next
        self._last = now

    def flush(self) -> None:
        """The end: the live widgets give way to the final one-HTML grid, then close."""
        if not self.live:
            super().flush()  # final mode: one display
            return
        if self._handle is not None:
            self._handle.update(self.state)
        elif self.state.events:  # ended before the first live round: the grid, as one output
            display = self._display
            if display is None:
                from IPython.display import display
            self._handle = display(self.state, display_id=True)
        else:
            return
        self.updates += 1
        self._dirty = False
        self.close()

    def close(self) -> None:
        """Close every widget this view made (their comms, in the kernel and the front-end)."""
        for widget in reversed(self.widgets):
            widget.close()
        self.widgets.clear()
