"""Why the classifier gave each host its probability: ``explain(question)`` → ``Explanation``.

Per host: the brief's keywords that fired, the nearest exemplar questions with their cosine
similarity, the stance cues that matched, and each component's share of the log-linear score
(classifier.combine: ``sim/T + β·log p_keyword + γ·log p_cue``). Contributions are centred
over the four hosts (a component that scores every host alike contributes 0 to all), so a
positive number pushed this host up relative to the others. The clause mix and the two-intent
step (two_intents.py) come after the log-linear score and are reported as notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import classifier as C
from .paradigms import HOSTS, HostParadigm

NEAREST = 3  # exemplar questions shown per host


@dataclass(frozen=True)
class HostReason:
    host: HostParadigm
    probability: float
    keywords: tuple[str, ...]  # the brief's keyword words that matched (each match once)
    cues: tuple[str, ...]  # stance cues that matched
    exemplars: tuple[tuple[str, float], ...]  # nearest exemplar questions, cosine similarity
    similarity: float | None  # mean similarity of the k nearest exemplars (None: no embedder)
    contributions: dict[str, float]  # centred log-score terms: similarity, keywords, cues


@dataclass(frozen=True)
class Explanation:
    question: str
    classification: C.Classification
    hosts: tuple[HostReason, ...]  # in host order
    notes: tuple[str, ...] = field(default_factory=tuple)  # clause mix, two intents, fallbacks

    @property
    def probabilities(self) -> dict[HostParadigm, float]:
        return dict(self.classification.probabilities)

    def host(self, host: HostParadigm | str) -> HostReason:
        h = HostParadigm.parse(host)
        return next(r for r in self.hosts if r.host is h)

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per host (the DataFrame's and the text table's content)."""
        return [
            {
                "host": r.host.value,
                "p": round(r.probability, 3),
                "keywords": ", ".join(r.keywords),
                "cues": ", ".join(r.cues),
                "nearest exemplar": r.exemplars[0][0] if r.exemplars else "",
                "similarity": round(r.exemplars[0][1], 3) if r.exemplars else None,
                "from similarity": round(r.contributions.get("similarity", 0.0), 2),
                "from keywords": round(r.contributions["keywords"], 2),
                "from cues": round(r.contributions["cues"], 2),
            }
            for r in self.hosts
        ]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows()).set_index("host")

    def text(self) -> str:
        lines = [f"Why: {self.question}"]
        for r in self.hosts:
            parts = [f"{r.host.value:<8}{round(r.probability * 100):>4}%"]
            c = r.contributions
            parts.append(
                f"sim {c.get('similarity', 0.0):+.2f} kw {c['keywords']:+.2f} cue {c['cues']:+.2f}"
            )
            if r.keywords:
                parts.append("keywords: " + ", ".join(r.keywords))
            if r.cues:
                parts.append("cues: " + ", ".join(r.cues))
            if r.exemplars:
                q, s = r.exemplars[0]
                parts.append(f'nearest: "{q}" ({s:.2f})')
            lines.append("  " + " | ".join(parts))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def html(self) -> str:
        from .render import esc

        head = "".join(
            f"<th style='text-align:left;padding:2px 8px'>{esc(h)}</th>"
            for h in ("host", "p", "from similarity", "from keywords", "from cues",
                      "keywords", "cues", "nearest exemplars")
        )  # fmt: skip
        body = []
        for r in self.hosts:
            c = r.contributions
            near = "<br>".join(f"{esc(q)} <i>({s:.2f})</i>" for q, s in r.exemplars)
            cells = (
                esc(r.host.value), f"{round(r.probability * 100)}%",
                f"{c.get('similarity', 0.0):+.2f}", f"{c['keywords']:+.2f}", f"{c['cues']:+.2f}",
                esc(", ".join(r.keywords)), esc(", ".join(r.cues)), near,
            )  # fmt: skip
            body.append(
                "<tr>"
                + "".join(f"<td style='padding:2px 8px;vertical-align:top'>{x}</td>" for x in cells)
                + "</tr>"
            )
        notes = "".join(f"<div style='opacity:0.8'>{esc(n)}</div>" for n in self.notes)
        return (
            "<div class='fh-explain'><table style='border-collapse:collapse;font-size:0.9em'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text(), "text/html": self.html()}


def _matches(rx: Any, text: str) -> list[str]:
    return [m.group(0).lower() for m in rx.finditer(text)]


def explain(
    question: str, *, embedder: Any | None = None, classification: C.Classification | None = None
) -> Explanation:
    """Classify ``question`` (or reuse ``classification`` of it) and say why, host by host."""
    c = classification or C.classify(question, embedder=embedder)
    q = c.question
    if embedder is None and c.embedder:
        from .memory.embeddings import get_embedder

        embedder = get_embedder()
    cal = C.calibration_for(c.embedder)
    kw = np.array([C.keyword_probabilities(q)[h] for h in HOSTS])
    cue = np.array([C.cue_probabilities(q)[h] for h in HOSTS])
    terms = {
        "keywords": cal.keyword_weight * np.log(kw),
        "cues": cal.cue_weight * np.log(cue),
    }
    nearest: list[tuple[tuple[str, float], ...]] = [() for _ in HOSTS]
    sims = c.scores.get("similarity")
    if sims is not None and embedder is not None:
        # Both are cached by now (the classification just embedded them): no model forward.
        matrix, labels = C._PROTOTYPES.get(embedder)
        vec = C._QUESTIONS.embed(embedder, [q])[0]
        ex = C.exemplars()
        all_sims = matrix @ vec
        for i, h in enumerate(HOSTS):
            idx = np.flatnonzero(labels == i)
            top = idx[np.argsort(-all_sims[idx])[:NEAREST]]
            offset = int(idx[0])
            nearest[i] = tuple((ex[h][int(j) - offset], float(all_sims[j])) for j in top)
        terms["similarity"] = np.array([sims[h.value] for h in HOSTS]) / cal.temperature
    centred = {name: t - t.mean() for name, t in terms.items()}
    hosts = []
    for i, h in enumerate(HOSTS):
        words: list[str] = []
        for _, rx in C.KEYWORD_GROUPS[h]:
            words.extend(_matches(rx, q))
        words.extend(_matches(C.INTENTS[h], q))
        hosts.append(
            HostReason(
                host=h,
                probability=float(c.probabilities[h]),
                keywords=tuple(dict.fromkeys(words)),
                cues=tuple(dict.fromkeys(_matches(C.STANCE_CUES[h], q))),
                exemplars=nearest[i],
                similarity=float(sims[h.value]) if sims is not None else None,
                contributions={name: float(v[i]) for name, v in centred.items()},
            )
        )
    notes = []
    if c.scores.get("clauses"):
        notes.append(
            f"clauses scored separately and mixed in at {cal.clause_weight:.0%}: "
            + " | ".join(c.scores["clauses"])
        )
    two = c.scores.get("two_intents")
    if two:
        notes.append(
            f"two intents: {two['hosts'][0]} + {two['hosts'][1]} (the segment "
            f"\"{two['segment']}\" leads with {two['hosts'][1]} at {two['segment_p']:.0%}); "
            "the two share the probability"
        )
    if "embedding_error" in c.scores:
        notes.append(f"keywords only: the embedder failed ({c.scores['embedding_error']})")
    if c.forced:
        notes.append(c.reason)
    return Explanation(question=q, classification=c, hosts=tuple(hosts), notes=tuple(notes))
