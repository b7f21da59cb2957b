"""What the hosts of one comparison share, so four runs cost little more CPU than one.

Four hosts answering one question at once repeat CPU work that does not overlap (two cores):
each embedded the same question (classify, then select) and each wrote its answer and its
query context back to memory mid-comparison, so the next host's select rebuilt the indexes
the write had just invalidated. A comparison therefore runs its hosts on a *comparison engine*:
the same settings, store, provider and tools, with

- one :class:`SharedEmbedder`: a text is embedded once for all hosts (the question: 1 forward
  pass instead of 8);
- write-backs deferred: each run's ``_write_context`` / ``_write_answer`` is queued and
  :meth:`flush` writes them all after every host finished, under one store connection, so no
  index is invalidated while the hosts select.

The run log is persisted by each run off the event loop already (engine ``_persist``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np


class SharedEmbedder:
    """An embedder that remembers every text it embedded (for one comparison's lifetime)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._rows: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()  # the hosts' threads ask at once: the first computes
        self.computed = 0  # texts actually embedded (the bench and tests read it)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["inner"], attr)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
            if missing:
                for t, row in zip(missing, self.inner.embed(missing)):
                    self._rows[t] = row
                self.computed += len(missing)
            if not texts:
                return self.inner.embed(texts)
            return np.stack([self._rows[t] for t in texts]).astype(np.float32, copy=False)


_classes: dict[type, type] = {}


def comparison_engine(engine: Any) -> Any:
    """A twin of ``engine`` for one comparison: shared embedder, write-backs deferred."""
    base = type(engine)
    cls = _classes.get(base)
    if cls is None:
        cls = _classes[base] = type(f"Comparison{base.__name__}", (_Deferring, base), {})
    twin = cls(engine.settings, store=engine.store, provider=engine._provider, tools=engine.tools,
               embedder=SharedEmbedder(engine.embedder), budget=engine.budget)
    twin._deferred = []
    return twin


class _Deferring:
    """Mixed in before the engine's class: its memory write-backs wait for :meth:`flush`."""

    _deferred: list[tuple[Callable[..., Any], tuple[Any, ...]]]

    def _write_context(self, *args: Any) -> None:
        self._deferred.append((super()._write_context, args))  # type: ignore[misc]

    def _write_answer(self, *args: Any) -> None:
        self._deferred.append((super()._write_answer, args))  # type: ignore[misc]

    def flush(self) -> int:
        """Write every queued write-back (one store connection); returns how many."""
        queued, self._deferred = self._deferred, []
        if queued:
            with self.store.hold():  # type: ignore[attr-defined]
                for fn, args in queued:
                    fn(*args)
        return len(queued)


__all__ = ["SharedEmbedder", "comparison_engine"]
