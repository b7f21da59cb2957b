"""Turning a question into a probability for each host, plus query type, phase and effort.

CONTRACT (the rest of the package depends on these names):
    Classification  frozen dataclass, see below
    classify(question, *, paradigm=None, effort=None, embedder=None) -> Classification
    Effort, QueryType enums; query_type(q), phase(q), recommended_effort(q), complexity(q)

How the probabilities are made (the original's GAP was a softmax with scale 5 over four
prototype similarities, which gave near-uniform output, so its 0.4 threshold was rarely met):

1. Keyword rules exactly as the brief's §1.3 B (start 0.25, group weights 0.3/0.25/0.2 per
   match, +0.1 intent bonuses, normalise) but with word boundaries, so "use" never matches
   inside "because".
2. Similarity to per-host exemplar questions (``data/classifier/prototypes.json``): each host
   scores the mean cosine similarity of its ``k`` nearest exemplars. The exemplars of every host
   cover the same spread of domains, so topic similarity cancels out and the stance decides.
3. Stance cues (``STANCE_CUES``): words and phrases written from the host stances, with word
   boundaries; their counts give a third distribution.
4. The three are combined log-linearly: ``p ∝ exp(sim/T) · p_keyword^β · p_cue^γ``. A question
   with several clauses also scores each clause and mixes the clause average in (weight w), so
   a question that asks for two stances shows two hosts.
5. ``k``, ``T``, ``β``, ``γ`` and ``w`` are fitted per embedder on the dev half of
   ``tests/data/classify_labelled.jsonl`` (plus the dev half of ``mixed.json``, two-stance
   questions whose target is an even split) by ``python -m fourhosts_jupyter.bench classify
   --fit`` and stored in ``data/classifier/calibration.json``.
"""

from __future__ import annotations

import enum
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from .paradigms import HOSTS, HostParadigm, Phase

DOMINANT = 0.4
SECONDARY = 0.25
BLEND = 0.35
DEFAULT_HOST = HostParadigm.BERNARD


class Effort(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @classmethod
    def parse(cls, value: str | Effort | None) -> Effort | None:
        from .errors import ConfigError

        if value is None or isinstance(value, Effort):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ConfigError(
                f"effort {value!r} is out of range: use low, medium or high"
            ) from None


class QueryType(enum.StrEnum):
    FACTUAL = "factual"
    ANALYTICAL = "analytical"
    COMPARATIVE = "comparative"
    EXPLORATORY = "exploratory"
    COMPREHENSIVE = "comprehensive"


class PyramidLayer(enum.StrEnum):
    """Analytics display only (brief §2.1)."""

    MEMORY = "memory"
    IMPROVISATION = "improvisation"
    SELF_INTEREST = "self_interest"
    SUFFERING = "suffering"


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
    embedder: str = ""  # name of the embedder used ("" when keyword-only)

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
            # what the analyst's ratings changed (learning.py), when learning looked at it
            **({"learning": self.scores["learning"]} if "learning" in self.scores else {}),
        }


# ---------------------------------------------------------------------------------------------
# Keyword rules (brief §1.3 B), with word boundaries and natural inflections


def _words(*alternatives: str) -> re.Pattern[str]:
    """One case-insensitive regex matching any alternative as whole words."""
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


_D, _T, _B, _M = HostParadigm.DOLORES, HostParadigm.TEDDY, HostParadigm.BERNARD, HostParadigm.MAEVE

# (weight, pattern) per host, in the brief's order. Each match adds the group's weight, as the
# original counted every match of a group's regex.
# fmt: off
KEYWORD_GROUPS: dict[HostParadigm, tuple[tuple[float, re.Pattern[str]], ...]] = {
    _D: (
        (0.3, _words(r"implement(?:s|ed|ing|ation|ations)?", r"execut(?:e|es|ed|ing|ion)",
                     r"build(?:s|ing)?", r"built", r"creat(?:e|es|ed|ing|ion)",
                     r"actions?", r"actionable", r"decisive(?:ly)?")),
        (0.25, _words(r"chang(?:e|es|ed|ing)", r"awaken(?:s|ed|ing)?", r"freedoms?",
                      r"liberat(?:e|ion|ing)", r"transform(?:s|ed|ing|ation|ations|ative)?")),
        (0.2, _words(r"break(?:s|ing|through|throughs)?", r"broke", r"revolutionary",
                     r"movements?", r"initiatives?")),
    ),
    _T: (
        (0.3, _words(r"collect(?:s|ed|ing|ion)?", r"gather(?:s|ed|ing)?",
                     r"systematic(?:ally)?", r"methodical(?:ly)?", r"comprehensive(?:ly)?")),
        (0.25, _words(r"loyal(?:ty)?", r"protect(?:s|ed|ing|ion|ions|ive)?",
                      r"defend(?:s|ed|ing)?", r"faithful(?:ly)?", r"reliab(?:le|ly|ility)")),
        (0.2, _words(r"persist(?:s|ed|ing|ence|ent)?", r"thorough(?:ly|ness)?",
                     r"documentation", r"investigations?")),
    ),
    _B: (
        (0.3, _words(r"analy[sz](?:e|es|ed|ing)", r"analys[ie]s", r"analytical",
                     r"patterns?", r"frameworks?", r"architectur(?:e|es|al)",
                     r"model(?:s|ed|ing|led|ling)?")),
        (0.25, _words(r"rigou?r", r"rigorous(?:ly)?", r"structur(?:e|es|ed|al)",
                      r"logic(?:al|ally)?", r"precis(?:e|ely|ion)", r"systematic(?:ally)?")),
        (0.2, _words(r"reasoning", r"examination", r"understanding", r"methodolog(?:y|ies)")),
    ),
    _M: (
        (0.3, _words(r"strateg(?:y|ies|ic|ically)", r"control(?:s|led|ling)?",
                     r"optimi[sz](?:e|es|ed|ing|ation)", r"leverag(?:e|es|ed|ing)",
                     r"manag(?:e|es|ed|ing|ement)")),
        (0.25, _words(r"narratives?", r"manipulat(?:e|es|ed|ing|ion)",
                      r"calculat(?:e|es|ed|ing)", r"intelligent(?:ly)?")),
        (0.2, _words(r"edges?", r"advantages?", r"efficien(?:cy|cies|t|tly)",
                     r"maximi[sz](?:e|es|ed|ing|ation)")),
    ),
}

# +0.1 once per host when any of its intent words appear (the original's query-type bonus).
INTENTS: dict[HostParadigm, re.Pattern[str]] = {
    _D: _words(r"how to", r"implement(?:s|ed|ing|ation)?", r"build(?:s|ing)?",
               r"creat(?:e|es|ed|ing)"),
    _T: _words(r"research(?:es|ed|ing)?", r"find(?:s|ing)?", r"gather(?:s|ed|ing)?",
               r"collect(?:s|ed|ing)?"),
    _B: _words(r"analy[sz](?:e|es|ed|ing)", r"understand(?:s|ing)?", r"explain(?:s|ed|ing)?",
               r"why"),
    _M: _words(r"best", r"optimi[sz](?:e|es|ed|ing)", r"strateg(?:y|ies|ic)",
               r"approach(?:es)?"),
}
# fmt: on


def keyword_probabilities(question: str) -> dict[HostParadigm, float]:
    """The brief's keyword classifier: start at 0.25, add weights per match, normalise."""
    scores = {h: 0.25 for h in HOSTS}
    for host, groups in KEYWORD_GROUPS.items():
        for weight, rx in groups:
            scores[host] += weight * len(rx.findall(question))
        if INTENTS[host].search(question):
            scores[host] += 0.1
    total = sum(scores.values())
    return {h: scores[h] / total for h in HOSTS}


# Stance cues: words and phrases that say what the analyst wants done, written from the host
# stances (brief §1.1) rather than from the original's table. They complement the embedding,
# which is swayed by topic ("bus lanes" looks like every other bus-lane question).
# fmt: off
STANCE_CUES: dict[HostParadigm, re.Pattern[str]] = {
    _D: _words(
        r"today", r"tonight", r"tomorrow",
        r"this (?:week|weekend|month|quarter|term|year|season|afternoon|morning)",
        r"next (?:week|month|term|quarter|monday|tuesday|wednesday|thursday|friday)",
        r"next (?:saturday|sunday)",
        r"right (?:now|away)", r"immediately", r"now", r"on day one",
        r"act(?:ing)? (?:now|fast|quickly|immediately|today|decisively)",
        r"first (?:step|steps|move|moves|thing|things|week)", r"step by step", r"steps", r"to-?do",
        r"action (?:plan|list|items?)", r"roadmap", r"start(?:s|ed|ing)?", r"get(?:ting)? started",
        r"begin(?:ning)?", r"launch(?:es|ed|ing)?", r"kick(?:-| )?(?:off|start)",
        r"roll(?:ing)? out", r"rollout", r"set(?:ting)? up", r"put (?:\w+ )?into practice",
        r"ship(?:ping)?", r"deploy(?:s|ed|ing)?", r"quick(?:ly|est)?", r"fast(?:er|est)?",
        r"finally", r"get (?:\w+ )?(?:done|going|moving|running|live|off the ground)",
        r"up and running", r"stop (?:talking|waiting|planning)", r"break (?:the|our|my|out|free)",
        r"habits?", r"switch(?:ing)? to",
    ),
    _T: _words(
        r"risks?", r"risky", r"safe(?:ly|ty)?", r"safeguard(?:s|ing)?",
        r"protect(?:s|ed|ing|ion|ions)?", r"harm(?:s|ed|ful)?", r"hurt(?:s|ing)?", r"dangers?",
        r"dangerous", r"hazards?", r"threats?", r"vulnerab(?:le|ility)", r"stakeholders?",
        r"everyone", r"everybody",
        r"every (?:group|person|one|child|student|resident|department|angle|perspective)",
        r"all (?:the )?(?:groups|people|perspectives|viewpoints|considerations)",
        r"all (?:the )?(?:stakeholders|employees|staff|residents)",
        r"nobody", r"no one", r"left (?:out|behind)", r"overlooked", r"exclud(?:e|ed|es)",
        r"inclusive(?:ly)?", r"accessib(?:le|ility)", r"fair(?:ly)?", r"complete",
        r"full (?:list|record|picture|overview|inventory|history)", r"comprehensive",
        r"thorough(?:ly)?", r"checklist", r"document(?:s|ed|ing|ation)?", r"records?",
        r"audit(?:s|ed)?", r"compliance", r"liabilit(?:y|ies)", r"privacy", r"secur(?:e|ity)",
        r"precautions?", r"concerns?", r"side effects?", r"could go wrong", r"consider(?:ations?)?",
        r"affected", r"wellbeing", r"well-being", r"consent", r"rights", r"mitigat(?:e|ion|ions)",
        r"prevent(?:s|ing)?", r"ensure", r"make sure",
    ),
    _B: _words(
        r"why", r"how come", r"explain(?:s|ed|ing)?", r"explanations?", r"evidence",
        r"stud(?:y|ies)", r"research(?:ers)?",
        r"data (?:show|shows|suggest|suggests|say|says|reveal|reveals)", r"theor(?:y|ies|etical)",
        r"frameworks?", r"models?", r"patterns?", r"mechanisms?", r"causes?", r"caused",
        r"causal(?:ity)?", r"causation", r"root causes?", r"understand(?:ing)?",
        r"scien(?:ce|tific|tists)", r"empirical(?:ly)?", r"hypothes(?:is|es)",
        r"analy[sz](?:e|es|ed|ing|is)", r"correlat(?:ion|ed|es)", r"relationship between",
        r"trade-?offs?", r"how does", r"how do (?:\w+ ){1,3}work", r"factors?",
        r"predict(?:s|ors?)?", r"literature", r"consensus", r"historians?", r"conclud(?:e|ed)",
        r"reasoning", r"logic", r"concepts?", r"meta-analys[ie]s", r"valid(?:ity)?",
        r"measure(?:d|s)?", r"interpret", r"what explains", r"behind",
    ),
    _M: _words(
        r"strateg(?:y|ies|ic)", r"compet(?:e|es|ing|itor|itors|ition|itive)", r"rivals?",
        r"advantage", r"edge", r"leverage", r"levers?", r"influence", r"position(?:s|ing)?",
        r"win(?:s|ning)?", r"beat", r"outmaneuver", r"outbid", r"dominate", r"market share",
        r"upper hand", r"bargaining", r"negotiat(?:e|ion|ions|ing)", r"power", r"control",
        r"narrative", r"fram(?:e|ing)", r"spin", r"messaging", r"persuad(?:e|ing)", r"buy-in",
        r"on board", r"on our side", r"coalition", r"alliances?",
        r"optimi[sz](?:e|es|ed|ing|ation)", r"maximi[sz](?:e|es|ed|ing)",
        r"minimi[sz](?:e|es|ed|ing)", r"(?:the )?most (?:out|value)", r"efficient(?:ly)?",
        r"revenue", r"profit(?:s|able|ability)?", r"return", r"pric(?:e|es|ing)", r"moat",
        r"lock in", r"attract", r"steal", r"get ahead", r"agenda", r"lobby(?:ing)?", r"pressure",
        r"indispensable", r"best (?:play|move|approach|way)",
    ),
}
# fmt: on


def cue_probabilities(question: str) -> dict[HostParadigm, float]:
    """Softmax of stance-cue counts per host (every match counts)."""
    counts = np.array([len(STANCE_CUES[h].findall(question)) for h in HOSTS], dtype=np.float64)
    e = np.exp(counts - counts.max())
    p = e / e.sum()
    return {h: float(v) for h, v in zip(HOSTS, p)}


# ---------------------------------------------------------------------------------------------
# Prototype similarity


@dataclass(frozen=True)
class Calibration:
    """How similarities and keywords are mixed for one embedder (fitted on the dev split)."""

    k: int = 12  # mean of the k most similar exemplars per host
    temperature: float = 0.07  # softmax temperature on cosine similarity
    keyword_weight: float = 2.0  # exponent β on the brief's keyword distribution
    cue_weight: float = 1.0  # exponent γ on the stance-cue distribution
    clause_weight: float = 0.5  # share of the clause average in a multi-clause question

    def to_dict(self) -> dict[str, float]:
        return {
            "k": self.k,
            "temperature": self.temperature,
            "keyword_weight": self.keyword_weight,
            "cue_weight": self.cue_weight,
            "clause_weight": self.clause_weight,
        }


_DATA = "data/classifier"


@lru_cache(maxsize=1)
def exemplars() -> dict[HostParadigm, tuple[str, ...]]:
    """The exemplar questions per host, from the package data."""
    raw = json.loads(
        resources.files("fourhosts_jupyter").joinpath(_DATA, "prototypes.json").read_text("utf-8")
    )
    return {h: tuple(raw["hosts"][h.value]["exemplars"]) for h in HOSTS}


@lru_cache(maxsize=1)
def _calibrations() -> dict[str, Calibration]:
    path = resources.files("fourhosts_jupyter").joinpath(_DATA, "calibration.json")
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return {
        name: Calibration(
            k=int(c["k"]),
            temperature=float(c["temperature"]),
            keyword_weight=float(c["keyword_weight"]),
            cue_weight=float(c["cue_weight"]),
            clause_weight=float(c.get("clause_weight", 0.5)),
        )
        for name, c in raw.get("embedders", {}).items()
    }


def calibration_for(embedder_name: str) -> Calibration:
    """The fitted calibration for this embedder, else the one fitted for the local model."""
    table = _calibrations()
    return table.get(embedder_name) or table.get("default") or Calibration()


class _PrototypeCache:
    """Exemplar embeddings, computed once per embedder name on first use (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, embedder: Any) -> tuple[np.ndarray, np.ndarray]:
        name = getattr(embedder, "name", type(embedder).__name__)
        hit = self._by_name.get(name)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._by_name.get(name)
            if hit is None:
                ex = exemplars()
                texts = [q for h in HOSTS for q in ex[h]]
                labels = np.array([i for i, h in enumerate(HOSTS) for _ in ex[h]], dtype=np.int64)
                matrix = np.asarray(embedder.embed(texts), dtype=np.float32)
                hit = self._by_name[name] = (matrix, labels)
            return hit


_PROTOTYPES = _PrototypeCache()


class _QuestionCache:
    """A small LRU of text embeddings: the engine, the CLI and the view often ask twice."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def embed(self, embedder: Any, texts: Sequence[str]) -> np.ndarray:
        """Rows for ``texts``; the ones not cached are embedded in a single batch."""
        name = getattr(embedder, "name", type(embedder).__name__)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for t in texts:
                vec = self._items.get((name, t))
                if vec is not None:
                    self._items.move_to_end((name, t))
                    found[t] = vec
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            rows = np.asarray(embedder.embed(missing), dtype=np.float32)
            with self._lock:
                for t, vec in zip(missing, rows):
                    found[t] = self._items[(name, t)] = vec
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        return np.stack([found[t] for t in texts])


_QUESTIONS = _QuestionCache()

# A question that asks for two things ("…, and how do we…") is split into clauses; each clause
# is classified too and the clause average is mixed in, so two stances in one question show up
# as two hosts instead of the embedding picking one. Clauses under 4 words are ignored.
_CLAUSE_SPLIT = re.compile(
    r"(?:[;?!.:]\s+|,\s*(?=(?:and|but|while|then|so)\b)"
    r"|\s+(?=(?:and then|and how|and what|and which|and who|and why|while|but)\b))",
    re.IGNORECASE,
)


def clauses(question: str) -> list[str]:
    """The question's clauses (at least two of at least 4 words each), else []."""
    parts = [p.strip(" ,") for p in _CLAUSE_SPLIT.split(question) if p and len(p.split()) >= 4]
    return parts if len(parts) >= 2 else []


def host_similarities(
    vectors: np.ndarray, matrix: np.ndarray, labels: np.ndarray, k: int
) -> np.ndarray:
    """Mean cosine similarity of the k nearest exemplars of each host: (n, 4) for (n, dim)."""
    sims = np.atleast_2d(vectors) @ matrix.T
    out = np.empty((sims.shape[0], len(HOSTS)), dtype=np.float64)
    for i in range(len(HOSTS)):
        s = sims[:, labels == i]
        kk = min(k, s.shape[1])
        out[:, i] = np.partition(s, s.shape[1] - kk, axis=1)[:, s.shape[1] - kk :].mean(axis=1)
    return out


def combine(
    sims: np.ndarray | None, keyword: Sequence[float], cue: Sequence[float], cal: Calibration
) -> np.ndarray:
    """p ∝ exp(sim / T) · p_keyword^β · p_cue^γ, computed stably in log space.

    With ``sims=None`` (no embedder) only the two keyword distributions are mixed."""
    logits = cal.keyword_weight * np.log(np.asarray(keyword, dtype=np.float64))
    logits = logits + cal.cue_weight * np.log(np.asarray(cue, dtype=np.float64))
    if sims is not None:
        logits = logits + np.asarray(sims, dtype=np.float64) / cal.temperature
    logits = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def mix_clauses(whole: np.ndarray, parts: np.ndarray | None, weight: float) -> np.ndarray:
    """(1 − w)·p(question) + w·mean(p(clause)); the question alone when it has no clauses."""
    if parts is None or len(parts) == 0:
        return whole
    return (1.0 - weight) * whole + weight * parts.mean(axis=0)


def evidence(texts: Sequence[str]) -> np.ndarray:
    """(len(texts), 4): keyword and stance-cue matches per host, every match counted."""
    return np.array(
        [
            [
                len(STANCE_CUES[h].findall(t)) + sum(len(rx.findall(t)) for _, rx in KEYWORD_GROUPS[h])
                for h in HOSTS
            ]
            for t in texts
        ],
        dtype=np.float64,
    ).reshape(len(texts), len(HOSTS))


def probabilities(
    question: str, embedder: Any | None = None
) -> tuple[dict[HostParadigm, float], str, dict[str, Any]]:
    """(probabilities, method, raw scores). Falls back to keywords alone if embedding fails."""
    from . import two_intents

    parts = clauses(question)
    segs = two_intents.segments(question)
    texts = [question, *parts, *segs]  # one embedding batch; segments feed the two-intent step
    n = 1 + len(parts)
    kw = np.array([[keyword_probabilities(t)[h] for h in HOSTS] for t in texts])
    cue = np.array([[cue_probabilities(t)[h] for h in HOSTS] for t in texts])
    scores: dict[str, Any] = {
        "keyword": {h.value: round(float(kw[0, i]), 4) for i, h in enumerate(HOSTS)},
        "cue": {h.value: round(float(cue[0, i]), 4) for i, h in enumerate(HOSTS)},
        "clauses": parts,
    }

    def finish(all_p: np.ndarray) -> np.ndarray:
        p = mix_clauses(all_p[0], all_p[1:n], cal.clause_weight)
        pair = two_intents.detect(p, all_p[n:], segs, evidence(segs))
        if pair is None and not segs and two_intents.ONE_CLAUSE:
            pair = two_intents.detect_one_clause(p, evidence([question])[0], question)
        if pair is None:
            return p
        scores["two_intents"] = {
            "hosts": [HOSTS[pair.first].value, HOSTS[pair.second].value],
            "segment": pair.segment,
            "segment_p": round(pair.segment_p, 4),
            "before": {h.value: round(float(v), 4) for h, v in zip(HOSTS, p)},
        }
        return two_intents.lift(p, pair)

    if embedder is None:
        from .memory.embeddings import get_embedder

        embedder = get_embedder()
    cal = calibration_for(getattr(embedder, "name", ""))
    try:
        matrix, labels = _PROTOTYPES.get(embedder)
        vectors = _QUESTIONS.embed(embedder, texts)
    except Exception as exc:  # noqa: BLE001 - any embedder failure means "keywords alone"
        scores["embedding_error"] = f"{type(exc).__name__}: {exc}"
        p = finish(combine(None, kw, cue, cal))
        return {h: float(v) for h, v in zip(HOSTS, p)}, "keyword", scores
    sims = host_similarities(vectors, matrix, labels, cal.k)
    p = finish(combine(sims, kw, cue, cal))
    scores["similarity"] = {h.value: round(float(v), 4) for h, v in zip(HOSTS, sims[0])}
    scores["calibration"] = cal.to_dict()
    scores["embedder"] = embedder.name
    return {h: float(v) for h, v in zip(HOSTS, p)}, "embedding+keyword", scores


# ---------------------------------------------------------------------------------------------
# Heuristics (brief §2.2), with word boundaries

# fmt: off
_FACTUAL = _words(r"what is", r"define", r"definition of", r"who is", r"when did", r"where is",
                  r"how many", r"how much")
_ANALYTICAL = _words(r"analy[sz](?:e|es|ed|ing)", r"analysis", r"explain(?:s|ed|ing)?",
                     r"how does", r"why does", r"impact of", r"effects? of",
                     r"evaluat(?:e|es|ed|ing|ion)")
_COMPARATIVE = _words(r"compar(?:e|es|ed|ing|ison)", r"versus", r"vs", r"difference between",
                      r"better than", r"pros and cons")
_PHASES: tuple[tuple[Phase, re.Pattern[str]], ...] = (
    (Phase.DISCOVERY, _words(r"what is", r"define", r"problems?")),
    (Phase.EXPLORATION, _words(r"find(?:s|ing)?", r"search(?:es|ed|ing)?",
                               r"gather(?:s|ed|ing)?", r"collect(?:s|ed|ing)?")),
    (Phase.SYNTHESIS, _words(r"analy[sz](?:e|es|ed|ing)", r"examin(?:e|es|ed|ing)",
                             r"investigat(?:e|es|ed|ing)", r"summari[sz](?:e|es|ed|ing)",
                             r"conclud(?:e|es|ed|ing)", r"synthesi[sz](?:e|es|ed|ing)",
                             r"combin(?:e|es|ed|ing)", r"integrat(?:e|es|ed|ing)")),
    (Phase.VALIDATION, _words(r"implement(?:s|ed|ing)?", r"appl(?:y|ies|ied|ying)",
                              r"us(?:e|es|ed|ing)", r"execut(?:e|es|ed|ing)")),
)
_EFFORT = {
    QueryType.FACTUAL: Effort.LOW,
    QueryType.ANALYTICAL: Effort.HIGH,
    QueryType.COMPARATIVE: Effort.MEDIUM,
    QueryType.EXPLORATORY: Effort.MEDIUM,
    QueryType.COMPREHENSIVE: Effort.HIGH,
}
_TYPE_COMPLEXITY = {
    QueryType.FACTUAL: 0.1,
    QueryType.ANALYTICAL: 0.4,
    QueryType.COMPARATIVE: 0.3,
    QueryType.EXPLORATORY: 0.2,
    QueryType.COMPREHENSIVE: 0.5,
}
_INDICATORS = tuple(
    _words(p) for p in (r"compar(?:e|es|ed|ing)", r"analy[sz](?:e|es|ed|ing)",
                        r"evaluat(?:e|es|ed|ing)", r"explain why", r"how does",
                        r"relationship between", r"impact of", r"pros and cons")
)
_PYRAMID: tuple[tuple[PyramidLayer, float, re.Pattern[str]], ...] = (
    (PyramidLayer.MEMORY, 0.8, _words(r"remember(?:s|ed|ing)?", r"recall(?:s|ed|ing)?",
                                      r"history", r"histories")),
    (PyramidLayer.IMPROVISATION, 0.7, _words(r"creat(?:e|es|ed|ing)", r"improvis(?:e|es|ed|ing)",
                                             r"imagin(?:e|es|ed|ing)")),
    (PyramidLayer.SELF_INTEREST, 0.6, _words(r"benefits?", r"advantages?", r"gains?")),
    (PyramidLayer.SUFFERING, 0.7, _words(r"pain(?:s|ful)?", r"struggl(?:e|es|ed|ing)",
                                         r"difficult(?:y|ies)?")),
)
# fmt: on


def query_type(question: str) -> QueryType:
    """factual, analytical, comparative (checked in that order), else exploratory."""
    if _FACTUAL.search(question):
        return QueryType.FACTUAL
    if _ANALYTICAL.search(question):
        return QueryType.ANALYTICAL
    if _COMPARATIVE.search(question):
        return QueryType.COMPARATIVE
    return QueryType.EXPLORATORY


def phase(question: str) -> Phase:
    """Research phase from the prompt's words; discovery when nothing matches."""
    for ph, rx in _PHASES:
        if rx.search(question):
            return ph
    return Phase.DISCOVERY


def recommended_effort(question: str) -> Effort:
    """factual → low, analytical → high, comparative/exploratory → medium."""
    return _EFFORT[query_type(question)]


def complexity(question: str) -> float:
    """0.3 + min(words/100, 0.3) + a per-type amount + 0.1 per indicator phrase, capped at 1."""
    words = len(question.split())
    value = 0.3 + min(words / 100, 0.3) + _TYPE_COMPLEXITY[query_type(question)]
    value += 0.1 * sum(1 for rx in _INDICATORS if rx.search(question))
    return min(1.0, value)


def pyramid_layer(question: str) -> tuple[PyramidLayer, float]:
    """(layer, confidence) for analytics: the first matching family, else memory at 0.3."""
    for layer, confidence, rx in _PYRAMID:
        if rx.search(question):
            return layer, confidence
    return PyramidLayer.MEMORY, 0.3


# ---------------------------------------------------------------------------------------------
# The classifier


def _pct(p: float) -> str:
    return f"{round(p * 100)}%"


def decide(
    probs: dict[HostParadigm, float], forced: HostParadigm | None = None
) -> tuple[
    tuple[HostParadigm, ...],
    HostParadigm | None,
    tuple[HostParadigm, ...],
    tuple[HostParadigm, ...],
    HostParadigm,
    str,
]:
    """(ranked, dominant, secondary, blend, primary, reason) from a probability table.

    Shared with callers that adjust probabilities (e.g. learned weights) and decide again."""
    ranked = tuple(sorted(HOSTS, key=lambda h: (-probs[h], HOSTS.index(h))))
    top = ranked[0]
    dominant = top if probs[top] >= DOMINANT else None
    secondary = tuple(h for h in ranked if h is not dominant and probs[h] > SECONDARY)
    blend_hosts = tuple(h for h in ranked if probs[h] >= BLEND)
    blend = blend_hosts if len(blend_hosts) >= 2 else ()
    if forced is not None:
        primary = forced
        reason = (
            f"forced: {forced} (paradigm option); "
            f"the classifier's top was {top} at {_pct(probs[top])}"
        )
    elif dominant is not None:
        primary = dominant
        reason = f"dominant: {dominant} at {_pct(probs[dominant])}"
        if blend:
            reason += " (blend: " + " + ".join(f"{h} {_pct(probs[h])}" for h in blend) + ")"
        elif secondary:
            reason += " (secondary: " + ", ".join(f"{h} {_pct(probs[h])}" for h in secondary) + ")"
    else:
        primary = DEFAULT_HOST
        reason = (
            f"no host reached {_pct(DOMINANT)} (top: {ranked[0]} {_pct(probs[ranked[0]])}, "
            f"{ranked[1]} {_pct(probs[ranked[1]])}); defaulting to {DEFAULT_HOST}"
        )
    return ranked, dominant, secondary, blend, primary, reason


def classify(
    question: str,
    *,
    paradigm: str | HostParadigm | None = None,
    effort: str | Effort | None = None,
    embedder: Any | None = None,
) -> Classification:
    """Classify a question: probabilities for the four hosts and the host that will answer.

    ``paradigm`` forces the answering host (the probabilities are still computed and shown);
    ``effort`` overrides the recommended effort. ``embedder`` defaults to the session's
    (``get_embedder()``); any object with ``name`` and ``embed(texts)`` works.
    """
    from .errors import ConfigError

    if not isinstance(question, str) or not question.strip():
        raise ConfigError(
            "the question is empty: type a question after %%research "
            "(or pass one to fourhosts classify)"
        )
    question = question.strip()
    forced = HostParadigm.parse(paradigm) if paradigm is not None else None
    chosen_effort = Effort.parse(effort)

    probs, method, scores = probabilities(question, embedder)
    ranked, dominant, secondary, blend, primary, reason = decide(probs, forced)
    if forced is not None:
        method = f"forced ({method} computed)"
    qtype = query_type(question)
    return Classification(
        question=question,
        probabilities=probs,
        ranked=ranked,
        dominant=dominant,
        secondary=secondary,
        blend=blend,
        primary=primary,
        reason=reason,
        query_type=qtype,
        phase=phase(question),
        effort=chosen_effort or _EFFORT[qtype],
        complexity=complexity(question),
        method=method,
        forced=forced is not None,
        scores=scores,
        embedder=str(scores.get("embedder", "")),
    )


def explain(question: str, *, embedder: Any | None = None) -> Any:
    """Why each host got its probability: an ``explanation.Explanation`` (typed, per host)."""
    from .explanation import explain as _explain

    return _explain(question, embedder=embedder)


__all__ = [
    "BLEND",
    "DEFAULT_HOST",
    "DOMINANT",
    "SECONDARY",
    "Calibration",
    "Classification",
    "Effort",
    "PyramidLayer",
    "QueryType",
    "calibration_for",
    "classify",
    "complexity",
    "cue_probabilities",
    "decide",
    "exemplars",
    "explain",
    "keyword_probabilities",
    "phase",
    "pyramid_layer",
    "query_type",
    "recommended_effort",
]
