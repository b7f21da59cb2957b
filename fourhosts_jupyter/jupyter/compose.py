"""``%%research --compare`` / ``--blend`` (and the automatic blend): compositions of runs drawn
into a cell through one coalesced display (``grid.GridView``; a live compare or blend in a kernel
streams through widgets, ``grid_live`` / ``blend_live``). Called by ``ResearchMagics``."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from .grid import GridState
from .grid_live import grid_view


def run_composed(
    magics: Any, args: Any, question: str, *, settings: Any, paradigm: Any, effort: Any, live: bool
) -> tuple[bool, Any]:
    """(True, Comparison | BlendResult) when this cell is a compare or a blend; (False, None)
    when it is a plain run (no flag, and the question does not call for a blend)."""
    from ..engine import Engine
    from ..memory.backends import open_store
    from .magics import user_errors

    if args.compare is not None and args.blend is not None:
        raise UsageError("%%research: --compare and --blend do not go together; choose one")
    if paradigm is not None and args.paradigm and (args.compare is not None or args.blend is not None):
        raise UsageError("%%research: -p/--paradigm picks one host; leave it out with --compare or --blend")
    if args.synthesize and args.compare is None:
        raise UsageError("%%research: --synthesize goes with --compare (a blend always writes one answer)")
    model = args.model or magics.model or None
    with user_errors("%%research: "):
        store = open_store(settings.resolved_store_path(), lock_timeout=magics.lock_timeout)
        engine = Engine(settings, store=store, provider=magics.provider)
        if args.compare is not None:
            from ..comparison import parse_hosts

            return True, compare_in_cell(magics, engine, question, parse_hosts(args.compare), effort=effort,
                                         model=model, live=live, synthesize=args.synthesize)  # fmt: skip
        from ..blending import parse_mode, stream_blend

        mode = parse_mode(args.blend) if args.blend is not None else None
        classification = None
        if args.blend is None:  # automatic: only when the question itself calls for a blend
            if paradigm is not None or not getattr(magics, "auto_blend", True):
                return False, None
            from ..classifier import classify

            classification = classify(question, embedder=engine.embedder)
            if not classification.blend:
                return False, None
        from .blend_live import blend_view

        view = blend_view(live=live, max_rate=magics.max_rate, widgets=None if magics.segmented else False)
        state = view.consume(stream_blend(engine, question, mode=mode, force=args.blend is not None,
                                          classification=classification, effort=effort, model=model))  # fmt: skip
        if state.result is None:
            raise UsageError("%%research: the blend ended early (see the cell)")
        _checked(state.result.parts, state)
        return True, state.result


def compare_in_cell(magics: Any, engine: Any, question: str, hosts: Any, *, effort: Any = None,
                    model: str | None = None, live: bool, synthesize: bool = False, display: Any = None) -> Any:
    """A comparison streamed into the cell (or, with its ``display``, the explorer's output
    area) as ``--compare`` draws it: the live grid (widgets in a kernel), then the final grid."""
    from ..comparison import stream_compare

    view = grid_view(live=live, max_rate=magics.max_rate, widgets=None if magics.segmented else False,
                     display=display)
    state = view.consume(stream_compare(engine, question, hosts, effort=effort, model=model,
                                        synthesize=synthesize))  # fmt: skip
    return _checked(state.comparison, state)


def _checked(comparison: Any, state: GridState) -> Any:
    from .magics import CellRunError

    if comparison is None:
        raise CellRunError("the comparison ended early, before every host had finished", kind="incomplete")
    if not comparison.answers:
        first = next(iter(comparison.results.values()))
        raise CellRunError(f"every host failed; {first.host}: {first.error}", kind=first.kind or "failed",
                           run_id=first.run_id, partial_text=first.partial_text)  # fmt: skip
    return comparison


def show_comparison(comparison_id: str, store: Any) -> GridState:
    """``%research show C_ID``: the whole grid (or blend) again, from the run log."""
    from ..memory.comparisons import get_comparison
    from ..redact import redact_run

    stored = get_comparison(store, comparison_id)
    if stored is None:
        from ..memory.backends import where

        raise UsageError(
            f"%research show: no comparison {comparison_id!r} in {where(store)}; list runs with %research runs"
        )
    stored["runs"] = [redact_run(r) for r in stored["runs"]]
    if stored.get("kind") == "blend":
        from .blend_view import BlendState

        return BlendState.from_stored(stored)
    return GridState.from_stored(stored)
