"""Questions that carry two hosts' intents ("… act fast while protecting the most vulnerable …").

The classifier's log-linear mix is decisive by design, so such a question used to get one host
near 1.0. Here the question is cut into segments (sentences, commas, and the joins "and",
"but", "while", "then", "without", "so that", "that also"); each segment of at least
``MIN_WORDS`` words is classified on its own. When a segment is led, with p ≥ ``TAU``, by a host
other than the whole question's top host, the question asks for both: the two share the mass
(``p' = (1 − LAMBDA)·p + LAMBDA·½(e_top + e_other)``), so each gets ≥ LAMBDA/2 = 0.35 and they rank
first and second, in the whole question's order (the top host never changes, so single-intent
accuracy cannot drop; only a false detection adds a blend).

``TAU`` and ``LAMBDA`` were chosen on ``tests/data/classifier_two_intent_dev.jsonl`` and the dev
half of ``classify_labelled.jsonl`` (false detections on single-intent questions); the held-out
two-intent file was measured once, after. See ``python -m fourhosts_jupyter.bench classify``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MIN_WORDS = 4  # shorter pieces ("after the redesign") embed as noise
# One-clause questions ("the quickest safe way to evacuate …"), ``detect_one_clause``: OFF. Chosen
# on the one-clause dev set (tests/data/classifier_two_intent_oneclause_dev.jsonl) and the dev
# half of classify_labelled.jsonl, then measured once on the held-out halves (2026-11-30, MiniLM):
# one-clause two-intent dev 0.125 → 0.792, held-out 0.167 → 0.722; two-intent held-out
# 0.967 → 1.000; single-intent accuracy and dominance unchanged (0.972 / 0.994 held-out), but
# single-intent held-out questions with a second host ≥ 0.3 (an automatic blend) 0.077 → 0.105,
# over the 0.10 ceiling tests/test_two_intents.py holds. Turning it on is that trade.
ONE_CLAUSE = False
ONE_CLAUSE_WORDS = 2  # one clause: the second host's own words, at least this many …
ONE_CLAUSE_FLOOR = 0.1  # … or one word, beside one of the top host's, and p ≥ this
TAU = 0.6  # a segment must lead with at least this probability to count as an intent
LAMBDA = 0.7  # share of the mass moved onto the two hosts

_SEGMENT_SPLIT = re.compile(
    r"(?:[;?!.:]\s+|,\s+|\s+(?=(?:and|but|while|then|without|so that|that also)\b))",
    re.IGNORECASE,
)


def segments(question: str) -> list[str]:
    """The question's segments of ≥ MIN_WORDS words (at least two), else []."""
    parts = [
        p.strip(" ,") for p in _SEGMENT_SPLIT.split(question) if p and len(p.split()) >= MIN_WORDS
    ]
    return parts if len(parts) >= 2 else []


@dataclass(frozen=True)
class TwoIntents:
    """A detected pair: host indexes (in HOSTS order) and the segment that carried the second."""

    first: int
    second: int
    segment: str
    segment_p: float


def detect(
    whole: np.ndarray,
    segment_p: np.ndarray,
    segs: list[str],
    evidence: np.ndarray | None = None,
) -> TwoIntents | None:
    """The pair when a segment is led by a host other than the question's top host: with
    p ≥ TAU, or, when ``evidence`` (per segment and host: keyword + stance-cue matches) shows
    words of the leading host and none of the top host, with any lead (the embedding of a short
    segment leans on its topic: "act fast on the heatwave shelters" looks like protection)."""
    if len(segs) == 0:
        return None
    first = int(np.argmax(whole))
    best: TwoIntents | None = None
    for i, (text, row) in enumerate(zip(segs, segment_p)):
        lead = int(np.argmax(row))
        if lead == first:
            continue
        worded = evidence is not None and evidence[i, lead] > 0 and evidence[i, first] == 0
        if (row[lead] >= TAU or worded) and (best is None or row[lead] > best.segment_p):
            best = TwoIntents(first, lead, text, float(row[lead]))
    return best


def lift(whole: np.ndarray, pair: TwoIntents) -> np.ndarray:
    """Move LAMBDA of the mass onto the two hosts, evenly; their order is kept."""
    target = np.zeros_like(whole)
    target[pair.first] = target[pair.second] = 0.5
    return (1.0 - LAMBDA) * whole + LAMBDA * target


def detect_one_clause(whole: np.ndarray, evidence: np.ndarray, question: str) -> TwoIntents | None:
    """One clause, two intents ("the quickest safe way to evacuate the flooded ward"): nothing
    to cut, so the words decide. ``evidence``: the whole question's keyword + stance-cue matches
    per host. The other host with the most matches is the second intent when it has at least
    ``ONE_CLAUSE_WORDS`` of them, or one beside at least one of the top host's while the
    classifier already gives it p ≥ ``ONE_CLAUSE_FLOOR``. Chosen on the one-clause dev set and
    the dev half of classify_labelled.jsonl (false detections); see tests/test_two_intents.py."""
    first = int(np.argmax(whole))
    other = max((i for i in range(len(whole)) if i != first), key=lambda i: (evidence[i], whole[i]))
    strong = evidence[other] >= ONE_CLAUSE_WORDS
    weak = evidence[other] >= 1 and evidence[first] >= 1 and whole[other] >= ONE_CLAUSE_FLOOR
    if not (strong or weak):
        return None
    return TwoIntents(first, other, question, float(whole[other]))
