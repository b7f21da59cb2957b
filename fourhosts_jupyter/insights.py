"""Insights per host from the analyst's ratings (brief §1.4): a table and a chart.

``insights(store)`` is a DataFrame, one row per host in host order: runs answered, ratings,
mean rating, success rate (rating ≥ 4), top-3 patterns (last 7 days, as learning uses them),
strong domains (3 or more ratings, success ≥ 0.7), and the trend (10 or more ratings: the
newer half's success rate against the older half's, ±0.1) and a recommendation. ``RatingsChart`` draws each
host's ratings over time (matplotlib, imported when drawn).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from . import learning
from .paradigms import HOSTS, PROFILES

if TYPE_CHECKING:
    from .memory.store import Store

STRONG_SAMPLES = 3
TREND_RECORDS = 10
TREND_STEP = 0.1
COLUMNS = ("host", "runs", "ratings", "mean_rating", "success_rate", "top_patterns",
           "strong_domains", "trend", "recommendation")  # fmt: skip


def _success(recs: list[learning.Record]) -> float:
    return sum(r.success for r in recs) / len(recs)


def trend(recs: list[learning.Record]) -> str:
    """improving / declining / steady from the halves' success rates; '' under 10 ratings."""
    if len(recs) < TREND_RECORDS:
        return ""
    half = len(recs) // 2
    diff = _success(recs[half:]) - _success(recs[:half])
    if diff >= TREND_STEP:
        return f"improving ({diff:+.2f})"
    if diff <= -TREND_STEP:
        return f"declining ({diff:+.2f})"
    return f"steady ({diff:+.2f})"


def strong_domains(recs: list[learning.Record]) -> list[str]:
    by: dict[str, list[learning.Record]] = {}
    for r in recs:
        by.setdefault(r.features.domain, []).append(r)
    return sorted(
        d for d, rs in by.items() if len(rs) >= STRONG_SAMPLES and _success(rs) >= learning.MIN_SUCCESS
    )


def recommendation(host_label: str, recs: list[learning.Record], strong: list[str], trend_text: str) -> str:
    """What the analyst might do next, from the same figures the row shows."""
    if not recs:
        return "rate its answers to learn where it is strong"
    out = []
    if strong:
        out.append(f"prefer {host_label} for {', '.join(strong)} questions")
    if trend_text.startswith("declining"):
        out.append("recent ratings fell: review its latest answers")
    mean = sum(r.rating for r in recs) / len(recs)
    if len(recs) >= STRONG_SAMPLES and mean < 3:
        out.append(f"rated {mean:.1f} on average: try another host for its questions")
    return "; ".join(out) or "keep rating: no clear strength yet"


def _runs_per_host(store: Store) -> dict[str, int]:
    with store.connect() as con:
        rows = con.execute(
            "SELECT paradigm, count(*) FROM runs WHERE paradigm IS NOT NULL GROUP BY paradigm"
        ).fetchall()
    return {str(h): int(n) for h, n in rows}


def insights(store: Store, now: dt.datetime | None = None):  # noqa: ANN201 - pandas.DataFrame
    """One row per host (see the module docstring)."""
    import pandas as pd

    recs = learning.records(store)
    learned = learning.learn(recs, now)
    runs = _runs_per_host(store)
    rows = []
    for host in HOSTS:
        mine = [r for r in recs if r.host is host]
        top = [p for p in learned.patterns if p.host is host]
        top.sort(key=lambda p: (-p.success, -p.records))
        strong, trend_text = strong_domains(mine), trend(mine)
        rows.append({
            "host": host.value,
            "runs": runs.get(host.value, 0),
            "ratings": len(mine),
            "mean_rating": round(sum(r.rating for r in mine) / len(mine), 2) if mine else None,
            "success_rate": round(_success(mine), 2) if mine else None,
            "top_patterns": "; ".join(
                f"{learning.pattern_text(p.key)} {p.success:.0%} of {p.records}" for p in top[:3]
            ),
            "strong_domains": ", ".join(strong),
            "trend": trend_text,
            "recommendation": recommendation(PROFILES[host].label, mine, strong, trend_text),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS)).set_index("host")


class RatingsChart:
    """Each host's ratings over time, with its running mean (a PNG and a text summary)."""

    def __init__(self, recs: list[learning.Record]) -> None:
        self.records = recs

    @classmethod
    def of(cls, store: Store) -> RatingsChart:
        return cls(learning.records(store))

    def __repr__(self) -> str:
        if not self.records:
            return "Ratings by host over time: no ratings yet (rate a run: %research rate RUN_ID 1-5)"
        counts = ", ".join(
            f"{PROFILES[h].label} {n}" for h in HOSTS if (n := sum(r.host is h for r in self.records))
        )
        return f"Ratings by host over time: {len(self.records)} ratings ({counts})"

    def figure(self) -> Any:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 3), dpi=100)
        ax = fig.subplots()
        for host in HOSTS:
            mine = [r for r in self.records if r.host is host]
            if not mine:
                continue
            means = [sum(r.rating for r in mine[: i + 1]) / (i + 1) for i in range(len(mine))]
            xs = [r.rated_at for r in mine]
            line = ax.plot(xs, means, label=f"{PROFILES[host].label} (mean)")[0]
            ax.scatter(xs, [r.rating for r in mine], color=line.get_color(), alpha=0.35, s=14)
        ax.set_ylim(0.5, 5.5)
        ax.set_ylabel("rating")
        ax.set_title("Ratings by host over time")
        if self.records:
            ax.legend(loc="lower left", fontsize="small")
        fig.autofmt_xdate()
        fig.tight_layout()
        return fig

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.figure().savefig(buf, format="png")
        return buf.getvalue()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        if self.records:
            bundle["image/png"] = base64.b64encode(self.png()).decode("ascii")
        return bundle


__all__ = ["RatingsChart", "insights", "strong_domains", "trend"]
