"""Learning from the analyst's ratings (brief §1.4), applied after classification.

Only real ratings count (``%research rate``, the cell's rating buttons, ``fourhosts rate``,
``fh.rate``); the latest rating of a run replaces its earlier ones.

- **Features** of each question (word count, the four stance flags, form, domain) are stored
  with its run (``run_features``, migration m008_feedback).
- **Weights** per (domain, host) start at 1.0; each rating nudges the weight of the run's
  domain and answering host by (rating − 3)·0.05, clamped to [0.5, 1.5] after every step.
- **Patterns**: the rated runs of the last 7 days, grouped per host by (form, action flag,
  analytical flag, domain); a host needs at least 5 such records, and a group is kept when its
  success rate (rating ≥ 4) is at least 0.7.
- **Adjustment**: p(host) + (success − 0.5)·0.2 (at most ±0.1) for a host whose kept pattern
  matches the question, then × the domain weight, then renormalised; ``decide`` picks again.

The classifier itself is untouched: ``adjust`` takes its Classification and returns a new one
whose ``scores["learning"]`` keeps the plain probabilities and each host's change.
``FOURHOSTS_LEARNING=0`` (or ``Settings.learning`` / ``%config ResearchMagics.learning``)
turns it off.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .paradigms import HOSTS, PROFILES, HostParadigm

if TYPE_CHECKING:
    from .classifier import Classification
    from .memory.store import Store

LEARNING_ENV = "FOURHOSTS_LEARNING"
STEP = 0.05  # weight change per rating point above or below 3
WEIGHT_MIN, WEIGHT_MAX = 0.5, 1.5
WINDOW = dt.timedelta(days=7)
MIN_RECORDS = 5  # per host, inside the window, before its patterns count
MIN_SUCCESS = 0.7  # a pattern's success rate to be kept
SUCCESS_RATING = 4  # a rating at or above this is a success
BONUS_SCALE, BONUS_CAP = 0.2, 0.1
MOVED = 0.005  # a change below half a percentage point is not reported as "moved"


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


# The brief's eight domains, checked in its order; the first match wins, else "general".
# fmt: off
DOMAINS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("technology", _words(r"tech(?:nology|nologies|nical)?", r"software", r"ai", r"a\.i\.",
                          r"artificial intelligence", r"machine learning", r"ml", r"llms?",
                          r"algorithms?", r"computers?", r"computing", r"digital", r"data ?bases?",
                          r"apps?", r"cloud", r"cyber\w*", r"programming", r"code", r"coding",
                          r"internet", r"devices?", r"automation", r"robots?", r"models?")),
    ("business", _words(r"business(?:es)?", r"compan(?:y|ies)", r"market(?:s|ing)?",
                        r"customers?", r"revenue", r"profits?", r"sales", r"startups?", r"saas",
                        r"firms?", r"pricing", r"competitors?", r"enterprises?", r"employees?",
                        r"managers?", r"workplace", r"remote work", r"hybrid work")),
    ("science", _words(r"scien(?:ce|ces|tific|tists?)", r"physics", r"chemistry", r"biology",
                       r"experiments?", r"hypothes(?:is|es)", r"research(?:ers)?", r"laborator(?:y|ies)")),
    ("education", _words(r"educat(?:ion|ional|ors?)", r"schools?", r"students?", r"teach(?:ers?|ing)?",
                         r"learners?", r"universit(?:y|ies)", r"curricul(?:um|a)", r"classrooms?")),
    ("health", _words(r"health(?:care)?", r"medic(?:al|ine)", r"patients?", r"hospitals?",
                      r"diseases?", r"injur(?:y|ies)", r"deaths?", r"fatalit(?:y|ies)", r"clinical",
                      r"mental", r"wellbeing", r"safety")),
    ("environment", _words(r"environment(?:al)?", r"climate", r"emissions?", r"carbon",
                           r"pollution", r"energy", r"sustainab(?:le|ility)", r"ecolog(?:y|ical)")),
    ("creative", _words(r"creative", r"art(?:s|ists?)?", r"design(?:ers?)?", r"writ(?:e|ing|ers?)",
                        r"music", r"stor(?:y|ies)", r"novels?", r"films?")),
    ("social", _words(r"social", r"communit(?:y|ies)", r"cit(?:y|ies)", r"residents?",
                      r"neighbou?rhoods?", r"public", r"polic(?:y|ies)", r"equity", r"people",
                      r"streets?", r"traffic", r"roads?")),
)
# fmt: on
GENERAL = "general"
_COMMAND = re.compile(r"^\s*(?:create|build|make|implement)\b", re.IGNORECASE)


def domain(question: str) -> str:
    """The first of the brief's domains whose words appear in the question, else 'general'."""
    for name, rx in DOMAINS:
        if rx.search(question):
            return name
    return GENERAL


@dataclass(frozen=True)
class Features:
    """What learning remembers about a question (brief §1.4)."""

    word_count: int
    action: bool
    analytical: bool
    protective: bool
    strategic: bool
    form: str  # question | command | exploration
    domain: str

    @classmethod
    def of(cls, question: str) -> Features:
        from .classifier import INTENTS, KEYWORD_GROUPS

        def flag(host: HostParadigm) -> bool:
            return bool(INTENTS[host].search(question)) or any(
                rx.search(question) for _, rx in KEYWORD_GROUPS[host]
            )

        q = question.strip()
        form = "question" if q.endswith("?") else "command" if _COMMAND.match(q) else "exploration"
        return cls(
            word_count=len(q.split()),
            action=flag(HostParadigm.DOLORES),
            protective=flag(HostParadigm.TEDDY),
            analytical=flag(HostParadigm.BERNARD),
            strategic=flag(HostParadigm.MAEVE),
            form=form,
            domain=domain(q),
        )

    @property
    def pattern(self) -> tuple[str, bool, bool, str]:
        """The brief's grouping key: (form, action flag, analytical flag, domain)."""
        return (self.form, self.action, self.analytical, self.domain)


def pattern_text(key: tuple[str, bool, bool, str]) -> str:
    form, action, analytical, dom = key
    flags = [n for n, on in (("action", action), ("analytical", analytical)) if on]
    return f"{dom} {form}" + (f" ({', '.join(flags)})" if flags else "")


def enabled(setting: bool = True) -> bool:
    """On unless the setting or ``FOURHOSTS_LEARNING=0`` (also false/no/off) turns it off."""
    value = os.environ.get(LEARNING_ENV, "").strip().lower()
    return setting and value not in ("0", "false", "no", "off")


# ---------------------------------------------------------------------------------------------
# Reading what the ratings taught


@dataclass(frozen=True)
class Record:
    """One rated run: its latest rating, the host that answered and the question's features."""

    run_id: str
    host: HostParadigm
    rating: int
    rated_at: dt.datetime
    features: Features

    @property
    def success(self) -> bool:
        return self.rating >= SUCCESS_RATING


@dataclass(frozen=True)
class Pattern:
    host: HostParadigm
    key: tuple[str, bool, bool, str]
    records: int
    success: float

    @property
    def bonus(self) -> float:
        return max(-BONUS_CAP, min(BONUS_CAP, (self.success - 0.5) * BONUS_SCALE))


@dataclass(frozen=True)
class Learned:
    """Weights and patterns from the ratings, as of ``now``."""

    weights: dict[tuple[str, HostParadigm], float] = field(default_factory=dict)
    ratings: dict[tuple[str, HostParadigm], list[int]] = field(default_factory=dict)
    patterns: tuple[Pattern, ...] = ()
    records: int = 0

    def weight(self, dom: str, host: HostParadigm) -> float:
        return self.weights.get((dom, host), 1.0)


_RATED = """
    WITH latest AS (
        SELECT run_id, rating, created_at,
               row_number() OVER (PARTITION BY run_id ORDER BY created_at DESC, rating DESC) AS k
        FROM feedback
    )
    SELECT l.run_id, r.paradigm, l.rating, l.created_at, r.question,
           f.word_count, f.action, f.analytical, f.protective, f.strategic, f.form, f.domain
    FROM latest l JOIN runs r ON r.id = l.run_id
    LEFT JOIN run_features f ON f.run_id = l.run_id
    WHERE l.k = 1 AND r.paradigm IS NOT NULL
    ORDER BY l.created_at, l.run_id
"""


def records(store: Store) -> list[Record]:
    """Every rated run (latest rating each), oldest rating first."""
    with store.connect() as con:
        rows = con.execute(_RATED).fetchall()
    out = []
    for run_id, host, rating, at, question, wc, act, ana, pro, strat, form, dom in rows:
        if form is None:  # a run from before m008: its features come from its question
            feats = Features.of(question or "")
        else:
            feats = Features(int(wc), bool(act), bool(ana), bool(pro), bool(strat), form, dom)
        out.append(Record(run_id, HostParadigm(host), int(rating), at, feats))
    return out


def learn(recs: list[Record], now: dt.datetime | None = None) -> Learned:
    """Weights from every rating in order; patterns from the last 7 days before ``now``."""
    from .memory.store import utcnow

    now = now or utcnow()
    weights: dict[tuple[str, HostParadigm], float] = {}
    ratings: dict[tuple[str, HostParadigm], list[int]] = {}
    for r in recs:
        key = (r.features.domain, r.host)
        w = weights.get(key, 1.0) + (r.rating - 3) * STEP
        weights[key] = min(WEIGHT_MAX, max(WEIGHT_MIN, w))
        ratings.setdefault(key, []).append(r.rating)
    recent = [r for r in recs if now - WINDOW <= r.rated_at <= now]
    patterns: list[Pattern] = []
    for host in HOSTS:
        mine = [r for r in recent if r.host is host]
        if len(mine) < MIN_RECORDS:
            continue
        groups: dict[tuple[str, bool, bool, str], list[Record]] = {}
        for r in mine:
            groups.setdefault(r.features.pattern, []).append(r)
        for key, group in groups.items():
            rate = sum(r.success for r in group) / len(group)
            if rate >= MIN_SUCCESS:
                patterns.append(Pattern(host, key, len(group), rate))
    patterns.sort(key=lambda p: (HOSTS.index(p.host), -p.records, -p.success))
    return Learned(weights, ratings, tuple(patterns), len(recs))


def load(store: Store, now: dt.datetime | None = None) -> Learned:
    return learn(records(store), now)


# ---------------------------------------------------------------------------------------------
# Applying it


def adjust(c: Classification, learned: Learned, features: Features | None = None) -> Classification:
    """The classification with the learned adjustment applied (``c`` itself if nothing moved)."""
    from .classifier import decide

    feats = features or Features.of(c.question)
    plain = dict(c.probabilities)
    bonus = {h: 0.0 for h in HOSTS}
    matched = []
    for p in learned.patterns:
        if p.key == feats.pattern:
            bonus[p.host] += p.bonus
            matched.append(p)
    raw = {h: max(0.0, plain[h] + bonus[h]) * learned.weight(feats.domain, h) for h in HOSTS}
    total = sum(raw.values())
    after = {h: raw[h] / total for h in HOSTS} if total > 0 else plain
    change = {h: after[h] - plain[h] for h in HOSTS}
    mover = max(HOSTS, key=lambda h: (abs(change[h]), -HOSTS.index(h)))
    moved = abs(change[mover]) >= MOVED
    info: dict[str, Any] = {
        "applied": moved,
        "domain": feats.domain,
        "pattern": pattern_text(feats.pattern),
        "plain": {h.value: round(plain[h], 4) for h in HOSTS},
        "adjustment": {h.value: round(change[h], 4) for h in HOSTS},
        "weights": {h.value: round(learned.weight(feats.domain, h), 4) for h in HOSTS},
        "patterns": [f"{p.host.value}: {pattern_text(p.key)} ({p.success:.0%} of {p.records})" for p in matched],
        "ratings": learned.records,
    }
    if not moved:
        return replace(c, scores={**c.scores, "learning": info})
    forced = c.primary if c.forced else None
    ranked, dominant, secondary, blend, primary, reason = decide(after, forced)
    said = learned.ratings.get((feats.domain, mover))
    if said:
        why = f"{PROFILES[mover].label} rated {sum(said) / len(said):.1f} on {feats.domain} questions"
    else:  # moved only because another host's weight changed in this domain
        why = f"{PROFILES[mover].label} on {feats.domain} questions"
    info["reason"] = f"learned: {why}, {change[mover]:+.2f}"
    return replace(
        c,
        probabilities=after,
        ranked=ranked,
        dominant=dominant,
        secondary=secondary,
        blend=blend,
        primary=primary,
        reason=f"{reason}; {info['reason']}",
        method=f"{c.method}+learned",
        scores={**c.scores, "learning": info},
    )


def disabled(c: Classification) -> Classification:
    """The plain classification, marked as not adjusted (learning turned off)."""
    return replace(c, scores={**c.scores, "learning": {"applied": False, "enabled": False}})


def route(
    store: Store | None, c: Classification, *, run_id: str | None = None, on: bool = True
) -> Classification:
    """Record the run's features (when ``run_id``) and apply what the store's ratings taught."""
    feats = Features.of(c.question)
    if store is None:
        return adjust(c, Learned(), feats) if enabled(on) else disabled(c)
    with store.hold():  # one connection for both (opening the file is most of the cost)
        if run_id:
            record_features(store, run_id, feats)
        if not enabled(on):
            return disabled(c)
        return adjust(c, load(store), feats)


def record_features(store: Store, run_id: str, feats: Features) -> None:
    from .memory.store import utcnow

    with store.connect() as con:
        con.execute(
            "INSERT OR REPLACE INTO run_features VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, feats.word_count, feats.action, feats.analytical, feats.protective,
             feats.strategic, feats.form, feats.domain, utcnow()],
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Rating


def rate(store: Store, run_id: str, rating: int | str, note: str = "") -> str:
    """Store a 1–5 rating (and note) for a run; returns the run's full id.

    A ConfigError names the problem: a rating out of range, or no such run."""
    from .errors import ConfigError

    text = str(rating).strip()
    if text not in {"1", "2", "3", "4", "5"}:
        raise ConfigError(f"rating {rating!r} is out of range: give a whole number from 1 to 5")
    run = store.get_run(run_id)
    if run is None:
        from .memory.backends import where

        raise ConfigError(f"no run {run_id!r} in {where(store)}: list runs with  fourhosts runs")
    store.add_feedback(run["id"], int(text), note or "")
    return str(run["id"])


def ratings(store: Store) -> dict[str, int]:
    """run id → its latest rating."""
    with store.connect() as con:
        # plain SQL (not DuckDB's arg_max) so the PostgreSQL store answers it too
        rows = con.execute(
            "SELECT run_id, rating FROM (SELECT run_id, rating, row_number() OVER (PARTITION BY "
            "run_id ORDER BY created_at DESC, rating DESC) AS k FROM feedback) t WHERE k = 1"
        ).fetchall()
    return {r: int(v) for r, v in rows}


__all__ = [
    "DOMAINS",
    "Features",
    "Learned",
    "Pattern",
    "Record",
    "adjust",
    "disabled",
    "domain",
    "enabled",
    "learn",
    "load",
    "pattern_text",
    "rate",
    "ratings",
    "record_features",
    "records",
    "route",
]
