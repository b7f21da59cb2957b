"""Turning a question into a probability for each host, plus query type, phase and effort.

CONTRACT (the rest of the package depends on these names):
    Classification  frozen dataclass, see below
    classify(question, *, paradigm=None, effort=None, embedder=None) -> Classification
    Effort, QueryType enums; query_type(q), phase(q), recommended_effort(q), complexity(q)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .paradigms import HOSTS, HostParadigm, Phase

DOMINANT = 0.4
SECONDARY = 0.25
BLEND = 0.35
DEFAULT_HOST = HostParadigm.BERNARD


class Effort(str, enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | Effort | None) -> Effort | None:
        from .errors import ConfigError

        if value is None or isinstance(value, Effort):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ConfigError(f"effort {value!r} is out of range: use low, medium or high") from None


class QueryType(str, enum.Enum):
    FACTUAL = "factual"
    ANALYTICAL = "analytical"
    COMPARATIVE = "comparative"
    EXPLORATORY = "exploratory"
    COMPREHENSIVE = "comprehensive"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Classification:
    question: str
    probabilities: dict[HostParadigm, float]  # in host order, sums to 1
    ranked: tuple[HostParadigm, ...]  # by probability, highest first
    dominant: HostParadigm | None  # p >= 0.4
    secondary: tuple[HostParadigm, ...]  # other hosts with p > 0.25, by p
    blend: tuple[HostParadigm, ...]  # the hosts with p >= 0.35 when two qualify, else ()
    primary: HostParadigm  # the host that answers: forced, dominant, or the explicit default
    reason: str  # why primary was chosen (always set; says so when it is the default)
    query_type: QueryType
    phase: Phase
    effort: Effort
    complexity: float
    method: str  # e.g. "embedding+keyword", "keyword", "forced"
    forced: bool = False
    scores: dict[str, Any] = field(default_factory=dict)  # raw component scores, for inspection

    @property
    def is_default(self) -> bool:
        return self.dominant is None and not self.forced

    def summary(self) -> str:
        """'Dolores 25% | Teddy 20% | …' in host order, as the original reported it."""
        from .paradigms import PROFILES

        return " | ".join(
            f"{PROFILES[h].label} {round(self.probabilities[h] * 100)}%" for h in HOSTS
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "probabilities": {h.value: round(self.probabilities[h], 4) for h in HOSTS},
            "ranked": [h.value for h in self.ranked],
            "dominant": self.dominant.value if self.dominant else None,
            "secondary": [h.value for h in self.secondary],
            "blend": [h.value for h in self.blend],
            "primary": self.primary.value,
            "reason": self.reason,
            "query_type": self.query_type.value,
            "phase": self.phase.value,
            "effort": self.effort.value,
            "complexity": round(self.complexity, 3),
            "method": self.method,
            "forced": self.forced,
        }
