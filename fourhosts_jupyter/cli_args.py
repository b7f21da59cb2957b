"""Argument checking for the ``fourhosts`` command, done by argparse before anything heavy loads.

Each type function rejects a bad value with a message naming what is allowed (argparse adds the
option's name); :class:`Parser` prints that as one line and exits with 2, without the usage
block, so a mistake is one line on stderr.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``fourhosts ingest: error: …``."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a whole number of at least 1")
    return value


MAX_HITS = 10_000  # search --k: more would only allocate (FAISS sizes its result by k)


def hit_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_HITS:
        raise argparse.ArgumentTypeError(f"{text} is too many: give at most {MAX_HITS:,}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a finite number of seconds above 0")
    return value


def weights(text: str) -> tuple[float, float]:
    """``DENSE,KEYWORD``: two finite, non-negative numbers, not both zero."""
    parts = text.split(",")
    try:
        a, b = (float(x) for x in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give two numbers, e.g. 0.6,0.4") from None
    if not math.isfinite(a + b) or a < 0 or b < 0 or a + b == 0:  # also catches nan and inf
        raise argparse.ArgumentTypeError(
            f"{text!r}: give two finite numbers ≥ 0, not both 0, e.g. 0.6,0.4"
        )
    return a, b

