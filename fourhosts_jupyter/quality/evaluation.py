"""What an evaluation found: its parts, the confidence computed from them, and how it reads.

A plain value (stored in the run log, shown in the cell and by ``fourhosts show``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One scored aspect (0–1) with a one-line reason."""

    name: str
    score: float
    reason: str = ""


@dataclass(frozen=True)
class Evaluation:
    """The measurable checks of one answer and the confidence computed from them."""

    confidence: float
    claims: int = 0  # sentences that cite at least one source
    supported: int = 0  # … whose cited passage shares most of their content words
    citations: int = 0  # [n] markers in the answer
    valid_citations: int = 0  # … that name a listed source
    sources_cited: int = 0  # distinct sources cited
    key_terms: int = 0  # content words of the question
    key_terms_covered: int = 0  # … found in the cited claims
    relevance: float | None = None  # question ↔ cited passages, 0–1 (embedding similarity)
    chars: int = 0
    metrics: tuple[Metric, ...] = ()  # what the triggers look at (judge or offline)
    verdict: str = ""  # VALID | INVALID from the model's self-check ('' offline)
    judged_by: str = "checks"  # checks | model
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def needs_improvement(self) -> bool:
        return self.verdict == "INVALID"

    def parts(self) -> str:
        """"3 of 4 claims supported, 2 sources, key terms covered 5/6" — what the figure rests on."""
        out = [f"{self.supported} of {self.claims} claims supported"]
        if self.citations != self.valid_citations:
            out.append(f"{self.citations - self.valid_citations} of {self.citations} citations name no source")
        out.append(f"{self.sources_cited} source{'' if self.sources_cited == 1 else 's'}")
        out.append(f"key terms covered {self.key_terms_covered}/{self.key_terms}")
        if self.relevance is not None:
            out.append(f"relevance {self.relevance:.2f}")
        if self.judged_by == "model":
            out.append("model: " + ", ".join(f"{m.name} {m.score:.2f}" for m in self.metrics)
                       + (f", {self.verdict}" if self.verdict else ""))
        return ", ".join(out)

    def summary(self) -> str:
        return f"confidence {self.confidence:.2f} ({self.parts()})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = [asdict(m) for m in self.metrics]
        d["notes"] = list(self.notes)
        d["summary"] = self.summary()
        d["parts"] = self.parts()
        return d
