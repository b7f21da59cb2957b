"""Built-in tools: search_memory, remember, forget over the memory store (and the analysis
tools run_python and sql, defined in tools/analysis.py, registered here too).

They use the memory layers' public functions only (``context.select.select``,
``context.write.write_memory``, ``Store.forget``), with the store, host and embedder of the
run that calls them (from the injected context). Which hosts are offered them is decided by
each host's profile (``PROFILES[host].tools``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from .context import ParadigmAwareToolContext
from .registry import ToolRegistry


def _store(ctx: ParadigmAwareToolContext):  # noqa: ANN202
    if ctx.store is None:
        raise ToolError("no memory store is attached to this run; memory tools need one")
    return ctx.store


def search_memory(query: str, ctx: ParadigmAwareToolContext, k: int = 5) -> list[dict[str, Any]]:
    """Search the research memory (notes, ingested documents, past answers) for passages
    relevant to a query, ranked for the current host.

    Args:
        query: what to look for, in a few words or a sentence
        k: how many passages to return (1-20)
    """
    from ..context.select import select
    from ..memory.origins import display_origin

    k = max(1, min(20, int(k)))
    found = select(_store(ctx), query, host=ctx.paradigm, k=k, embedder=ctx.embedder)
    return [
        {
            "id": s.id,
            "title": s.title,
            "text": s.text,
            "score": round(float(s.score), 4),
            "origin": display_origin(s.origin),  # what the model cites
            "namespace": s.namespace,
        }
        for s in found
    ]


def remember(content: str, ctx: ParadigmAwareToolContext, title: str = "") -> dict[str, Any]:
    """Save a finding to long-term research memory so later questions can use it.

    Args:
        content: the finding, stated so it makes sense on its own
        title: a short title for the note
    """
    from ..context.write import write_memory

    if not content.strip():
        raise ToolError("remember needs non-empty content")
    memory_id = write_memory(
        _store(ctx),
        content,
        namespace=ctx.host or "shared",
        key="tool_note",
        density=100,  # an explicit note is meant to last
        source="tool:remember",
        title=title or content[:60],
        metadata={"kind": "note", "run_id": ctx.run_id, "call_id": ctx.call_id},
        embedder=ctx.embedder,
    )
    if memory_id is None:
        return {"saved": False, "reason": "an identical note is already stored"}
    return {"saved": True, "id": memory_id}


def forget(memory_id: str, ctx: ParadigmAwareToolContext) -> dict[str, Any]:
    """Delete one memory by its id (as returned by search_memory or remember).

    Args:
        memory_id: the id of the memory to delete
    """
    removed = _store(ctx).forget([memory_id])
    return {"forgotten": bool(removed), "id": memory_id}


BUILTINS = (search_memory, remember, forget)


def register_builtins(registry: ToolRegistry) -> ToolRegistry:
    """The memory tools, the scholarly search (tools/papers.py) when its packages are installed,
    plus the analysis tools (``run_python``, ``sql``) from tools/analysis.py."""
    for fn in BUILTINS:
        registry.register(fn, builtin=True, timeout=20.0)
    from .web import register_web_tools

    register_web_tools(registry)  # search_web, read_page: only with the [web] extra installed
    register_papers(registry)
    try:
        from .analysis import run_python, sql
    except ImportError:  # the analysis tools are optional here
        return registry
    # The sandbox and the SQL engine enforce their own limits (the host's sandbox profile, up to
    # 240 s); the runner's timeout (× host multiplier) is only the outer guard.
    registry.register(run_python, builtin=True, timeout=300.0, retries=0)
    registry.register(sql, builtin=True, timeout=45.0, retries=0)
    return registry


def register_papers(registry: ToolRegistry) -> bool:
    """``search_papers`` if httpx and feedparser (the ``[web]`` extra) are installed. It falls
    back between its own back-ends, so the runner does not retry it (no network fails fast)."""
    from importlib.util import find_spec

    if find_spec("httpx") is None or find_spec("feedparser") is None:
        return False
    from .papers import search_papers

    registry.register(search_papers, builtin=True, timeout=40.0, retries=0)
    return True
