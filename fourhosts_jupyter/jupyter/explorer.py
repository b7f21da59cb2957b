"""The paradigm explorer: ``fh.explore()`` / ``%research explore``.

A text box; as the analyst types (debounced), the four-host bar updates and, under it, per host,
why (explanation.py: keywords, nearest exemplars, stance cues, contributions). Sliders override
the weights (renormalised, shown as "manual"; a new question drops the override); buttons
research as the chosen host, compare all four, or blend, into an output area below.

All state lives on the ``Explorer`` object (``.text``, ``.probabilities``, ``.explain()``,
``.override()``), so tests and nbval need no browser; the widgets only mirror it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

from ..classifier import DEFAULT_HOST, Classification, classify, decide
from ..explanation import Explanation, explain
from ..paradigms import HOSTS, PROFILES, HostParadigm
from ..render import BarData, host_bar_html, host_bar_text, shares

DEBOUNCE_S = 0.25  # typing pause before the bar updates
MANUAL_REASON = "manual: weights set by hand (renormalised)"


class Debouncer:
    """Call ``fn`` once, ``delay`` seconds after the last ``trigger()``.

    In a kernel the timer runs on the kernel's event loop (widget callbacks run there), so the
    update happens between messages, never concurrently; elsewhere a threading.Timer."""

    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay = delay
        self.fn = fn
        self._pending: Any = None

    def trigger(self) -> None:
        self.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            timer = threading.Timer(self.delay, self.fn)
            timer.daemon = True
            timer.start()
            self._pending = timer
        else:
            self._pending = loop.call_later(self.delay, self.fn)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class Explorer:
    """The explorer's state and, on first display, its widgets."""

    def __init__(
        self,
        text: str = "",
        *,
        embedder: Any | None = None,
        store: str | None = None,
        debounce: float = DEBOUNCE_S,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self._text = ""
        self._classification: Classification | None = None
        self._manual: dict[HostParadigm, float] | None = None
        self._widget: Any = None
        self._syncing = False  # True while code (not the analyst) moves widgets
        self._debouncer = Debouncer(debounce, self._typed)
        self.update_ms: list[float] = []  # classification time of every update (for the bench)
        self.last_action = ""
        if text:
            self.text = text

    # -- state -------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        """Set the question (from Python): classified now, widgets updated, no debounce."""
        self._debouncer.cancel()
        self._text = str(value)
        self._manual = None  # an override was for the previous question
        self._classify()
        if self._widget is not None:
            self._syncing = True
            try:
                self.text_box.value = self._text
            finally:
                self._syncing = False
            self._sync_sliders(self.probabilities)
            self._redraw()

    @property
    def classification(self) -> Classification | None:
        """The classifier's view of the current text (None while the box is empty)."""
        return self._classification

    @property
    def manual(self) -> bool:
        return self._manual is not None

    @property
    def probabilities(self) -> dict[HostParadigm, float]:
        """The manual weights (renormalised) when overridden, else the classifier's."""
        if self._manual is not None:
            return dict(self._manual)
        if self._classification is None:
            return {h: 1 / len(HOSTS) for h in HOSTS}
        return dict(self._classification.probabilities)

    @property
    def host(self) -> HostParadigm:
        """The host *Research as …* uses: the top manual weight, else the classifier's primary."""
        if self._manual is not None:
            return decide(self._manual)[0][0]
        if self._classification is None:
            return DEFAULT_HOST
        return self._classification.primary

    def explain(self) -> Explanation:
        """Why the classifier gave each host its share (of the current text)."""
        from ..errors import ConfigError

        if self._classification is None:
            raise ConfigError("the explorer has no question yet: set explorer.text = '…' first")
        return explain(self._text, embedder=self.embedder, classification=self._classification)

    def override(
        self, weights: dict[str | HostParadigm, float] | None = None, **by_name: float
    ) -> dict[HostParadigm, float]:
        """Set manual weights (any non-negative numbers; renormalised to sum to 1)."""
        from ..errors import ConfigError

        raw = {HostParadigm.parse(k): float(v) for k, v in {**(weights or {}), **by_name}.items()}
        if any(v < 0 for v in raw.values()) or sum(raw.values()) <= 0:
            raise ConfigError(
                "override weights must be non-negative with at least one above 0, "
                "e.g. explorer.override(dolores=2, teddy=1)"
            )
        self._manual = shares({h: raw.get(h, 0.0) for h in HOSTS})
        if self._widget is not None:
            self._sync_sliders(raw)
            self._redraw()
        return dict(self._manual)

    def reset(self) -> None:
        """Back to the classifier's probabilities."""
        self._manual = None
        if self._widget is not None:
            self._sync_sliders(self.probabilities)
            self._redraw()

    def bar_data(self) -> BarData:
        if self._manual is None and self._classification is not None:
            return BarData.of(self._classification)
        probs = self.probabilities
        _, dominant, secondary, blend, primary, _ = decide(probs)
        reason = MANUAL_REASON if self._manual is not None else "type a question"
        return BarData(probs, dominant, self.host, reason, False, secondary, blend)

    def _classify(self) -> None:
        if not self._text.strip():
            self._classification = None
            return
        t0 = time.perf_counter()
        with _one_blas_thread():
            self._classification = classify(self._text, embedder=self.embedder)
        self.update_ms.append((time.perf_counter() - t0) * 1000)

    # -- actions -----------------------------------------------------------------------------

    def research_as(self, host: str | HostParadigm | None = None) -> Any:
        """Research the current text as ``host`` (default: ``.host``) into the output area."""
        chosen = HostParadigm.parse(host) if host is not None else self.host
        self.last_action = f"research as {chosen.value}"
        with self._output():
            return _research(self._text, chosen, self.store)

    def compare(self) -> Any:
        """All four hosts side by side into the output area: streamed as ``%%research
        --compare`` draws it (the live grid) when the magics are loaded, else ``fh.compare``."""
        from ..api import compare

        self.last_action = "compare"
        with self._output():
            magics = _research_magics()
            if magics is None:
                return _shown(compare(self._text, hosts=None, store=self.store))
            into = _IntoOutput(self.output) if self._widget is not None else None
            return _compare_live(magics, self._text, self.store, into)

    def blend(self) -> Any:
        """The blended answer (``fh.blend``) into the output area, over the manual weights when
        they are set (so the sliders choose which hosts blend and how much each counts)."""
        from dataclasses import replace

        from ..api import blend

        self.last_action = "blend"
        c = self._classification
        if c is not None and self._manual is not None:
            ranked = tuple(sorted(HOSTS, key=lambda h: (-self._manual[h], HOSTS.index(h))))
            c = replace(c, probabilities=dict(self._manual), ranked=ranked, reason=MANUAL_REASON)
        with self._output():
            return _shown(blend(self._text, store=self.store, classification=c))

    def _output(self) -> Any:
        import contextlib

        if self._widget is None:
            return contextlib.nullcontext()
        self.output.clear_output()
        return self.output

    # -- widgets -----------------------------------------------------------------------------

    def widget(self) -> Any:
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self) -> Any:
        import ipywidgets as w

        self.text_box = w.Textarea(
            value=self._text, placeholder="Type a research question…",
            continuous_update=True, layout=w.Layout(width="100%", height="60px"),
        )  # fmt: skip
        self.text_box.add_class("fh-explorer-text")
        self.bar = w.HTML()
        self.bar.add_class("fh-explorer-bar")
        self.mode = w.HTML()
        self.mode.add_class("fh-explorer-mode")
        self.why = w.HTML()
        self.why.add_class("fh-explorer-why")
        self.sliders = {
            h: w.FloatSlider(
                value=0.25, min=0.0, max=1.0, step=0.01, readout_format=".2f",
                description=f"{PROFILES[h].emoji} {PROFILES[h].label}",
                style={"description_width": "110px"}, layout=w.Layout(width="340px"),
            )  # fmt: skip
            for h in HOSTS
        }
        for h, s in self.sliders.items():
            s.add_class(f"fh-explorer-slider-{h.value}")
            s.observe(lambda change, h=h: self._slid(h), names="value")
        reset = w.Button(description="Reset to classifier", icon="undo",
                         layout=w.Layout(width="auto"))
        reset.on_click(lambda _: self.reset())
        self.research_btn = w.Button(description="Research as …", button_style="primary")
        self.research_btn.add_class("fh-explorer-research")
        self.research_btn.on_click(lambda _: self.research_as())
        compare = w.Button(description="Compare all four")
        compare.add_class("fh-explorer-compare")
        compare.on_click(lambda _: self.compare())
        blend = w.Button(description="Blend")
        blend.add_class("fh-explorer-blend")
        blend.on_click(lambda _: self.blend())
        self.output = w.Output()
        self.output.add_class("fh-explorer-output")
        self.text_box.observe(self._on_type, names="value")
        box = w.VBox([
            self.text_box, self.bar, self.mode,
            w.HBox([w.VBox(list(self.sliders.values())), reset],
                   layout=w.Layout(flex_flow="row wrap", align_items="center")),
            self.why,
            w.HBox([self.research_btn, compare, blend]),
            self.output,
        ], layout=w.Layout(width="100%"))  # fmt: skip
        box.add_class("fh-explorer")
        self._widget = box
        self._sync_sliders(self.probabilities)
        self._redraw()
        return box

    def _on_type(self, change: Any) -> None:
        if not self._syncing:
            self._debouncer.trigger()

    def _typed(self) -> None:
        """The debounced update: classify what the box holds now."""
        self._text = self.text_box.value
        self._manual = None  # an override was for the previous question
        self._classify()
        self._sync_sliders(self.probabilities)
        self._redraw()

    def _slid(self, host: HostParadigm) -> None:
        if self._syncing:
            return
        self._manual = shares({h: s.value for h, s in self.sliders.items()})
        self._redraw()

    def _sync_sliders(self, values: dict[HostParadigm, float]) -> None:
        self._syncing = True
        try:
            for h, s in self.sliders.items():
                s.value = round(float(values.get(h, 0.0)), 2)
        finally:
            self._syncing = False

    def _redraw(self) -> None:
        self.bar.value = host_bar_html(self.bar_data())
        label = "manual" if self.manual else "classifier"
        self.mode.value = (
            f"<span class='fh-explorer-mode-{label}' style='font-size:0.85em'>"
            f"weights: <b>{label}</b></span>"
        )
        self.research_btn.description = f"Research as {PROFILES[self.host].label}"
        self.why.value = self.explain().html() if self._classification is not None else ""
        self.research_btn.tooltip = self._text[:80]  # a DOM title: set as text, never parsed

    # -- display -----------------------------------------------------------------------------

    def text_view(self) -> str:
        lines = [f"Explorer: {self._text or '(no question yet)'}"]
        lines.append(f"weights: {'manual' if self.manual else 'classifier'}")
        lines.append(host_bar_text(self.bar_data()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text_view()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        try:
            bundle.update(self.widget()._repr_mimebundle_(include=include, exclude=exclude) or {})
        except ImportError:  # no ipywidgets: the text view still works
            pass
        bundle["text/plain"] = self.text_view()
        return bundle


def _one_blas_thread() -> Any:
    """One BLAS thread for the few small matrix products of one update: with the default (one
    per core) the NumPy encoder's threads spin against each other on a busy machine. bench
    explorer, 2 cores, load 12–17: classify per update p50 227 ms / p95 2.5 s with the default
    threads; with this limit p50 56 ms / p95 149 ms (one embedding at default threads in the same
    run: 514 / 3427 ms); at load 7 with one thread: p50 10 ms / p95 29 ms."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it, the default threads
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _research(question: str, host: HostParadigm, store: str | None) -> Any:
    """Through the loaded %%research magics when there are some (their settings, live view),
    else the module-level ``research()``."""
    _needs_question(question)
    magics = _research_magics()
    if magics is not None:
        settings = magics.settings(model=None, store=store, base_url=None, api=None)
        return magics.run(
            question, settings=settings, paradigm=host, effort=None,
            model=magics.model or None, live=magics.is_live(),
        )  # fmt: skip
    from IPython.display import display

    from ..api import research

    answer = research(question, store=store, paradigm=host)
    display(answer)
    return answer


def _needs_question(question: str) -> None:
    from ..errors import ConfigError

    if not question.strip():
        raise ConfigError("the explorer has no question yet: type one in the box first")


def _compare_live(magics: Any, question: str, store: str | None, display: Any = None) -> Any:
    """The four hosts through the loaded magics' compare (their settings, live grid)."""
    from ..engine import Engine
    from ..memory.backends import open_store
    from .compose import compare_in_cell
    from .magics import user_errors

    _needs_question(question)
    settings = magics.settings(model=None, store=store, base_url=None, api=None)
    with user_errors("%research explore: "):
        engine = Engine(settings, store=open_store(settings.resolved_store_path(), lock_timeout=magics.lock_timeout),
                        provider=magics.provider)  # fmt: skip
        return compare_in_cell(magics, engine, question, None, model=magics.model or None, live=magics.is_live(),
                               display=display)


class _IntoOutput:
    """A view's display function that draws into an ipywidgets ``Output`` through its
    ``outputs`` list: the front-end's Output widget ignores ``update_display_data``
    (jupyter-widgets/ipywidgets#1844), so a handle's update replaces its own entry there."""

    def __init__(self, output: Any) -> None:
        self.output = output
        output.outputs = ()  # clear_output() empties the front-end's copy, not this list

    def __call__(self, obj: Any, display_id: bool = False) -> Any:
        self.output.outputs = (*self.output.outputs, _output_of(obj))
        slot, into = len(self.output.outputs) - 1, self

        class Handle:
            def update(self, new: Any) -> None:
                outputs = list(into.output.outputs)
                outputs[slot] = _output_of(new)
                into.output.outputs = tuple(outputs)

        return Handle() if display_id else None


def _output_of(obj: Any) -> dict[str, Any]:
    from IPython.core.interactiveshell import InteractiveShell

    data, metadata = InteractiveShell.instance().display_formatter.format(obj)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def _research_magics() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None:
        return None
    return ip.magics_manager.registry.get("ResearchMagics")


def explore(text: str = "", **options: Any) -> Explorer:
    """``fh.explore()``: an Explorer (display it, or let it be the cell's value)."""
    return Explorer(text, **options)


def _shown(result: Any) -> Any:
    from IPython.display import display

    display(result)
    return result
