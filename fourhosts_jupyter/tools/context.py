"""What a tool knows about the run that called it, and what tools did per paradigm.

A tool that declares a parameter annotated with :class:`ParadigmAwareToolContext` receives one
(the parameter never appears in the schema the model sees):

    @fh.tool
    def budget_lookup(city: str, ctx: fh.ParadigmAwareToolContext) -> dict:
        ...  # ctx.paradigm, ctx.probabilities, ctx.phase, ctx.previous, ctx.store, ctx.memory

:class:`ToolHistory` keeps every call's outcome per paradigm in this process; the same facts
are persisted in the run log (ToolCallFinished / ToolCallFailed events), and
:func:`tool_history` reads them back from the store, per paradigm, across sessions.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..paradigms import HostParadigm, Phase

if TYPE_CHECKING:
    from ..events import Source
    from ..memory.embeddings import Embedder
    from ..memory.store import Store


@dataclass(frozen=True)
class ToolResult:
    """One finished call of this run, as later tools see it."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    result: Any  # the full result (or the error payload)
    seconds: float
    round: int = 0


@dataclass(frozen=True)
class ParadigmAwareToolContext:
    """Injected into tools that ask for it. Pure data plus handles to the store."""

    paradigm: HostParadigm | None = None
    probabilities: dict[HostParadigm, float] = field(default_factory=dict)
    phase: Phase | None = None
    run_id: str = ""
    question: str = ""
    call_id: str = ""
    round: int = 0
    previous: tuple[ToolResult, ...] = ()  # earlier tool results of this run, in finish order
    memory: tuple[Source, ...] = ()  # the sources selected for this run
    store: Store | None = None
    embedder: Embedder | None = None

    @property
    def host(self) -> str | None:
        return self.paradigm.value if self.paradigm else None

    def result_of(self, name: str) -> Any:
        """The latest successful result of tool ``name`` in this run, or None."""
        for r in reversed(self.previous):
            if r.name == name and r.ok:
                return r.result
        return None

    def __repr__(self) -> str:  # the store handle and sources are noise in a repr
        return (
            f"ParadigmAwareToolContext(paradigm={self.host!r}, phase={self.phase and self.phase.value!r}, "
            f"run_id={self.run_id!r}, previous={len(self.previous)} results)"
        )


@dataclass(frozen=True)
class HistoryEntry:
    name: str
    ok: bool
    kind: str  # "ok" or a failure kind
    seconds: float
    at: float
    run_id: str = ""


class ToolHistory:
    """Recent tool outcomes per paradigm, in this process (bounded)."""

    def __init__(self, maxlen: int = 500) -> None:
        self._by_host: dict[str, deque[HistoryEntry]] = defaultdict(lambda: deque(maxlen=maxlen))
        self._lock = threading.Lock()

    def record(self, host: HostParadigm | str | None, name: str, *, ok: bool, kind: str,
               seconds: float, run_id: str = "") -> None:
        key = str(host) if host else "none"
        with self._lock:
            self._by_host[key].append(HistoryEntry(name, ok, kind, seconds, time.time(), run_id))

    def entries(self, host: HostParadigm | str | None = None) -> list[HistoryEntry]:
        with self._lock:
            if host is None:
                return [e for q in self._by_host.values() for e in q]
            return list(self._by_host.get(str(host), ()))

    def stats(self, host: HostParadigm | str | None = None) -> dict[str, dict[str, float]]:
        """Per tool: calls, failures, mean seconds (for ``host`` or all hosts)."""
        out: dict[str, dict[str, float]] = {}
        for e in self.entries(host):
            s = out.setdefault(e.name, {"calls": 0, "failures": 0, "seconds": 0.0})
            s["calls"] += 1
            s["failures"] += 0 if e.ok else 1
            s["seconds"] += e.seconds
        for s in out.values():
            s["mean_seconds"] = s.pop("seconds") / s["calls"]
        return out

    def clear(self) -> None:
        with self._lock:
            self._by_host.clear()


def tool_history(store: Store, paradigm: HostParadigm | str | None = None, limit: int = 1000):  # noqa: ANN201
    """Tool calls from the run log as a DataFrame (paradigm, run, tool, status, seconds)."""
    sql = """
        SELECT r.paradigm, e.run_id, r.started_at,
               json_extract_string(e.payload, '$.name') AS tool,
               CASE WHEN e.type = 'tool_call_finished' THEN 'done'
                    ELSE json_extract_string(e.payload, '$.kind') END AS status,
               CAST(json_extract(e.payload, '$.seconds') AS DOUBLE) AS seconds,
               json_extract_string(e.payload, '$.call_id') AS call_id
        FROM run_events e JOIN runs r ON r.id = e.run_id
        WHERE e.type IN ('tool_call_finished', 'tool_call_failed')
    """
    params: list[Any] = []
    if paradigm is not None:
        sql += " AND r.paradigm = ?"
        params.append(HostParadigm.parse(paradigm).value)
    sql += " ORDER BY r.started_at DESC, e.seq DESC LIMIT ?"
    params.append(limit)
    with store.connect() as con:
        return con.execute(sql, params).df()


HISTORY = ToolHistory()  # the process's tool history; the runner records into it by default
