"""When to heal and whether hosts collaborate: the knobs of brief §2.6–§2.7, with its numbers.

Set them on ``Settings(quality=QualityPolicy(...))``, with ``%config ResearchMagics.<name>``
in a notebook, or from the environment (``FOURHOSTS_EVALUATION=0`` turns the whole stage off,
``FOURHOSTS_HEALING=0``, ``FOURHOSTS_COLLABORATION=0``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# The brief's self-healing triggers, any one of which starts a healing round.
TRIGGERS = ("needs_improvement", "low_confidence", "too_short", "no_sources", "low_metric")


@dataclass(frozen=True)
class QualityPolicy:
    evaluate: bool = True  # the evaluation stage after each answer
    judge_with_model: bool = True  # one structured model call when a model is configured
    triggers: tuple[str, ...] = TRIGGERS  # which triggers may start healing
    low_confidence: float = 0.35  # brief: confidence < 0.35
    min_chars: int = 100  # brief: answer shorter than 100 characters
    metric_floor: float = 0.5  # brief: any evaluation metric < 0.5
    healing_rounds: int = 1  # at most this many healing rounds (0: never heal)
    collaboration: bool = True
    collaborate_priorities: tuple[str, ...] = ("high",)  # brief: only high-priority requests run
    extra_k: int = 4  # sources a healing round may add

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        unknown = [t for t in self.triggers if t not in TRIGGERS]
        if unknown:
            raise ConfigError(f"unknown healing trigger {unknown[0]!r}: use any of {', '.join(TRIGGERS)}")
        if not 0.0 <= self.low_confidence <= 1.0 or not 0.0 <= self.metric_floor <= 1.0:
            raise ConfigError("low_confidence and metric_floor are shares: give a number from 0 to 1")
        if self.healing_rounds < 0 or self.min_chars < 0:
            raise ConfigError("healing_rounds and min_chars cannot be negative: give 0 or more")

    @classmethod
    def from_env(cls) -> QualityPolicy:
        env = os.environ
        return cls(
            evaluate=env.get("FOURHOSTS_EVALUATION") != "0",
            healing_rounds=0 if env.get("FOURHOSTS_HEALING") == "0" else 1,
            collaboration=env.get("FOURHOSTS_COLLABORATION") != "0",
        )
