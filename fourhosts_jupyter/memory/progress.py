"""Progress of long memory work (ingest, re-embedding): a bar on a terminal or in a notebook,
and a plain line every few seconds when stderr goes to a log or a pipe (a bar's carriage
returns make an unreadable log, and no output at all looks like a hang).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

PROGRESS_EVERY = 5.0  # seconds between two log lines


class Progress:
    """``add_total(n)`` as work is found, ``update(n)`` after each committed batch."""

    def __init__(
        self,
        desc: str,
        unit: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        every: float | None = None,
    ) -> None:
        self.desc, self.unit = desc, unit
        self.total = 0
        self.done = 0
        self._stream = stream or sys.stderr
        self._every = PROGRESS_EVERY if every is None else every
        self._bar: Any = None
        self._lines = False
        self._started = self._last = time.monotonic()
        self._printed = 0
        if not enabled:
            return
        if _is_terminal(self._stream) or _in_kernel():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, desc=desc, unit=unit, leave=False, file=self._stream)
        else:
            self._lines = True

    def add_total(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._lines and time.monotonic() - self._last >= self._every:
            self._line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._lines and self._printed:
            self._line()  # the last line says where it ended

    def _line(self) -> None:
        now = time.monotonic()
        rate = self.done / max(now - self._started, 1e-9)
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        self._stream.write(
            f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}s{share}, {rate:,.0f}/s, "
            f"{now - self._started:.0f} s\n"
        )
        self._stream.flush()
        self._last = now
        self._printed += 1


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def _in_kernel() -> bool:
    """Running in a Jupyter kernel (tqdm.auto draws a widget there), not merely with ipykernel
    imported (pytest's nbval plugin imports it)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")
