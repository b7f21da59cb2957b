"""Learning from ratings (brief §1.4): real store, real classifier (local embedder), real CLI."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from fourhosts_jupyter import learning
from fourhosts_jupyter.classifier import classify
from fourhosts_jupyter.cli import main
from fourhosts_jupyter.errors import ConfigError
from fourhosts_jupyter.learning import Features, Record, learn
from fourhosts_jupyter.memory.store import utcnow
from fourhosts_jupyter.paradigms import HOSTS, HostParadigm

TECH = "Which database technology should we pick for our analytics software?"
HEALTH = "How should a hospital reduce patient injuries from falls?"
TECH_RATED = "What software should our team adopt for service {i}?"  # same pattern key as TECH


@pytest.fixture
def store(any_store):
    """Every test here that takes ``store`` runs on both back-ends (DuckDB, real PostgreSQL)."""
    return any_store


def loc(store) -> str:  # noqa: ANN001
    """What ``--store`` takes for the store: its file, or its URL."""
    return store.url if getattr(store, "is_postgres", False) else str(store.path)


@pytest.fixture(autouse=True)
def _learning_on(monkeypatch):
    monkeypatch.delenv(learning.LEARNING_ENV, raising=False)


def add_run(store, question: str, host: str, rating: int | None = None, i: int = 0) -> str:
    """A finished run as the engine stores it (start, finish, features), then rated."""
    run_id = f"r_{i:016x}"
    store.start_run(run_id, question, {})
    store.finish_run(run_id, status="ok", classification=None, paradigm=host, provider="offline",
                     model="extractive", answer="…", sources=[], usage={}, cost_usd=None,
                     timings={}, error=None, events=[])  # fmt: skip
    learning.record_features(store, run_id, Features.of(question))
    if rating is not None:
        learning.rate(store, run_id, rating)
    return run_id


def rate_ten(store, host: str = "maeve", rating: int = 5) -> None:
    for i in range(10):
        add_run(store, TECH_RATED.format(i=i), host, rating, i)


def test_features_follow_the_brief():
    f = Features.of("Build a dashboard that tracks our software releases")
    assert (f.form, f.action, f.domain) == ("command", True, "technology")
    f = Features.of("Why do patients miss follow-up visits at the hospital?")
    assert (f.form, f.analytical, f.action, f.domain) == ("question", True, False, "health")
    f = Features.of("remote team rituals")
    assert (f.form, f.domain, f.word_count) == ("exploration", "general", 3)
    assert Features.of(TECH).pattern == Features.of(TECH_RATED.format(i=1)).pattern


def test_ten_ratings_shift_their_domain_and_no_other(store):
    rate_ten(store)
    plain_tech, plain_health = classify(TECH), classify(HEALTH)
    tech = learning.route(store, plain_tech)
    health = learning.route(store, plain_health)
    maeve = HostParadigm.MAEVE
    assert tech.probabilities[maeve] > plain_tech.probabilities[maeve] + 0.05
    assert abs(sum(tech.probabilities.values()) - 1.0) < 1e-12
    assert tech.scores["learning"]["applied"] is True
    assert tech.scores["learning"]["weights"]["maeve"] == 1.5  # ten nudges of +0.1, clamped
    # the health question is untouched: same numbers, same host, same reason
    assert health.probabilities == plain_health.probabilities
    assert (health.primary, health.reason) == (plain_health.primary, plain_health.reason)
    assert health.scores["learning"]["applied"] is False


def test_ten_ratings_change_the_answering_host(store):
    plain = classify(TECH)
    assert plain.primary is not HostParadigm.MAEVE
    rate_ten(store)
    assert learning.route(store, plain).primary is HostParadigm.MAEVE


def test_no_ratings_shift_nothing(store):
    add_run(store, TECH_RATED.format(i=0), "maeve", None)  # a run, but nobody rated it
    plain = classify(TECH)
    c = learning.route(store, plain)
    assert c.probabilities == plain.probabilities
    assert (c.primary, c.reason, c.method) == (plain.primary, plain.reason, plain.method)
    assert c.scores["learning"]["ratings"] == 0


def test_turning_learning_off_restores_the_plain_classifier(store, monkeypatch):
    rate_ten(store)
    plain = classify(TECH)
    assert learning.route(store, plain).probabilities != plain.probabilities
    off = learning.route(store, plain, on=False)
    assert (off.probabilities, off.primary, off.reason) == (plain.probabilities, plain.primary, plain.reason)
    assert off.scores["learning"] == {"applied": False, "enabled": False}
    monkeypatch.setenv(learning.LEARNING_ENV, "0")
    env_off = learning.route(store, plain)
    assert (env_off.probabilities, env_off.reason) == (plain.probabilities, plain.reason)


def _recs(ratings: list[int], *, host=HostParadigm.BERNARD, question=TECH, days_ago: float = 0):
    at = utcnow() - dt.timedelta(days=days_ago)
    return [Record(f"r{i}", host, r, at - dt.timedelta(seconds=len(ratings) - i), Features.of(question))
            for i, r in enumerate(ratings)]  # fmt: skip


def test_weights_are_nudged_and_clamp_in_range():
    key = ("technology", HostParadigm.BERNARD)
    assert learn(_recs([4])).weights[key] == pytest.approx(1.05)
    assert learn(_recs([1, 2])).weights[key] == pytest.approx(0.85)
    assert learn(_recs([5] * 20)).weights[key] == 1.5
    assert learn(_recs([1] * 20)).weights[key] == 0.5
    # clamped at every step: twenty 1s then one 5 is 0.5 + 0.1, not 1.0 - 1.9 + 0.1
    assert learn(_recs([1] * 20 + [5])).weights[key] == pytest.approx(0.6)
    assert learn(_recs([3] * 7)).weights[key] == 1.0


def test_patterns_need_five_records_and_success_of_seven_in_ten():
    assert learn(_recs([5, 5, 5, 5])).patterns == ()  # 4 records: too few for the host
    assert learn(_recs([5, 5, 5, 2, 2])).patterns == ()  # success 0.6
    (p,) = learn(_recs([5, 5, 5, 4, 2])).patterns  # success 0.8
    assert (p.host, p.records, p.success) == (HostParadigm.BERNARD, 5, 0.8)
    assert p.bonus == pytest.approx(0.06)
    (p,) = learn(_recs([5] * 6)).patterns
    assert p.bonus == pytest.approx(0.1)  # (1.0 − 0.5)·0.2, the cap


def test_patterns_use_the_last_seven_days_only():
    old = _recs([4] * 6, days_ago=8)
    assert learn(old).patterns == ()
    assert learn(old).weights[("technology", HostParadigm.BERNARD)] == pytest.approx(1.3)  # weights persist
    recent = _recs([4] * 6, days_ago=6)
    assert len(learn(recent).patterns) == 1
    # the same ratings, seen from a week later, no longer make a pattern
    assert learn(recent, now=utcnow() + dt.timedelta(days=2)).patterns == ()


def test_old_ratings_give_no_pattern_bonus_in_the_adjustment(store):
    rate_ten(store)
    plain = classify(TECH)
    now = learning.route(store, plain).scores["learning"]
    later = learning.adjust(plain, learning.load(store, now=utcnow() + dt.timedelta(days=8)))
    assert now["patterns"] == ["maeve: technology question (100% of 10)"]
    assert later.scores["learning"]["patterns"] == []
    # weight only, no +0.1 bonus: a smaller move
    assert 0 < later.scores["learning"]["adjustment"]["maeve"] < now["adjustment"]["maeve"]


def test_the_reason_says_what_learning_moved(store):
    for i, r in enumerate([5, 5, 4, 5, 4, 5, 5, 4, 5, 4]):
        add_run(store, TECH_RATED.format(i=i), "bernard", r, i)
    plain = classify(TECH)
    c = learning.route(store, plain)
    change = c.probabilities[HostParadigm.BERNARD] - plain.probabilities[HostParadigm.BERNARD]
    expected = f"learned: Bernard rated 4.6 on technology questions, {change:+.2f}"
    assert c.reason.endswith("; " + expected)
    assert c.scores["learning"]["reason"] == expected
    assert re.fullmatch(r"learned: Bernard rated 4\.6 on technology questions, \+0\.\d\d", expected)
    assert c.method == plain.method + "+learned"


def test_a_new_rating_replaces_the_runs_earlier_one(store):
    run_id = add_run(store, TECH_RATED.format(i=0), "teddy", 1)
    learning.rate(store, run_id, 5, "changed my mind")
    assert learning.ratings(store) == {run_id: 5}
    (rec,) = learning.records(store)
    assert rec.rating == 5


def test_bad_ratings_name_the_problem(store):
    run_id = add_run(store, TECH, "teddy")
    with pytest.raises(ConfigError, match="out of range: give a whole number from 1 to 5"):
        learning.rate(store, run_id, 6)
    with pytest.raises(ConfigError, match="no run 'r_nope'"):
        learning.rate(store, "r_nope", 4)
    assert learning.ratings(store) == {}


# -- insights -----------------------------------------------------------------------------------


def test_insights_frame_per_host(store):
    from fourhosts_jupyter.insights import RatingsChart, insights

    for i, r in enumerate([2, 2, 3, 5, 5, 5, 5, 5, 5, 4]):  # older half 40 % success, newer 100 %
        add_run(store, TECH_RATED.format(i=i), "maeve", r, i)
    add_run(store, HEALTH, "teddy", 2, 50)
    add_run(store, HEALTH, "teddy", None, 51)
    df = insights(store)
    assert list(df.index) == [h.value for h in HOSTS]
    assert list(df.columns) == ["runs", "ratings", "mean_rating", "success_rate", "top_patterns",
                                "strong_domains", "trend", "recommendation"]  # fmt: skip
    m = df.loc["maeve"]
    assert (m.runs, m.ratings, m.mean_rating, m.success_rate) == (10, 10, 4.1, 0.7)
    assert m.top_patterns == "technology question 70% of 10"
    assert m.strong_domains == "technology"
    assert m.trend == "improving (+0.60)"
    assert m.recommendation == "prefer Maeve for technology questions"
    t = df.loc["teddy"]
    assert (t.runs, t.ratings, t.mean_rating, t.success_rate) == (2, 1, 2.0, 0.0)
    assert (t.top_patterns, t.strong_domains, t.trend) == ("", "", "")  # too few for any
    assert t.recommendation == "keep rating: no clear strength yet"
    assert df.loc["dolores"].ratings == 0
    assert df.loc["dolores"].recommendation == "rate its answers to learn where it is strong"
    chart = RatingsChart.of(store)
    bundle = chart._repr_mimebundle_()
    assert bundle["text/plain"] == "Ratings by host over time: 11 ratings (Teddy 1, Maeve 10)"
    import base64

    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "image/png" not in RatingsChart([])._repr_mimebundle_()


# -- command line -------------------------------------------------------------------------------


def _cli(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_classify_json_includes_the_learned_adjustment(store, capsys, monkeypatch):
    rate_ten(store)
    plain = classify(TECH)
    rc, out, _ = _cli(["classify", "--json", "--store", loc(store), TECH], capsys)
    assert rc == 0
    row = json.loads(out)
    assert row["learning"]["applied"] is True
    assert row["learning"]["plain"] == {h.value: round(plain.probabilities[h], 4) for h in HOSTS}
    learned = learning.route(store, plain)
    assert row["probabilities"] == {h.value: round(learned.probabilities[h], 4) for h in HOSTS}
    assert row["probabilities"]["maeve"] > row["learning"]["plain"]["maeve"]
    assert row["reason"] == learned.reason
    monkeypatch.setenv(learning.LEARNING_ENV, "0")
    rc, out, _ = _cli(["classify", "--json", "--store", loc(store), TECH], capsys)
    row = json.loads(out)
    assert row["learning"] == {"applied": False, "enabled": False}
    assert row["probabilities"] == {h.value: round(plain.probabilities[h], 4) for h in HOSTS}


def test_classify_json_without_a_store_says_nothing_was_learned(tmp_path, capsys):
    rc, out, _ = _cli(["classify", "--json", "--store", str(tmp_path / "none.duckdb"), TECH], capsys)
    row = json.loads(out)
    assert rc == 0 and not (tmp_path / "none.duckdb").exists()  # reading creates no store
    assert (row["learning"]["applied"], row["learning"]["ratings"]) == (False, 0)
    assert row["probabilities"] == {h.value: round(p, 4) for h, p in classify(TECH).probabilities.items()}


def test_classify_text_prints_the_learned_line(store, capsys):
    rate_ten(store)
    rc, out, _ = _cli(["classify", "--store", loc(store), TECH], capsys)
    assert rc == 0
    assert re.search(r"^learned: Maeve rated 5\.0 on technology questions, \+0\.\d\d$", out, re.M)


def test_runs_json_gives_each_runs_rating(store, capsys):
    rated = add_run(store, TECH, "maeve", 4, 1)
    unrated = add_run(store, HEALTH, "teddy", None, 2)
    rc, out, _ = _cli(["runs", "--json", "--store", loc(store)], capsys)
    rows = {r["id"]: r for r in json.loads(out)}
    assert rc == 0
    assert {k: rows[rated][k] for k in ("id", "question", "paradigm", "status", "rating")} == {
        "id": rated, "question": TECH, "paradigm": "maeve", "status": "ok", "rating": 4}
    assert rows[unrated]["rating"] is None
    assert "started_at" in rows[rated] and "error_kind" in rows[rated]  # earlier fields kept


def test_fourhosts_rate(store, capsys):
    run_id = add_run(store, TECH, "maeve")
    rc, out, _ = _cli(["rate", run_id[:8], "5", "clear", "and", "sourced", "--store", loc(store)], capsys)
    assert (rc, out) == (0, f"Rated run {run_id}: 5/5\n")
    with store.connect() as con:
        assert con.execute("SELECT rating, comment FROM feedback").fetchall() == [(5, "clear and sourced")]
    rc, _, err = _cli(["rate", run_id, "0", "--store", loc(store)], capsys)
    assert (rc, err) == (2, "fourhosts: error: rating '0' is out of range: give a whole number from 1 to 5\n")
    rc, _, err = _cli(["rate", "r_missing", "3", "--store", loc(store)], capsys)
    assert rc == 2 and err.startswith("fourhosts: error: no run 'r_missing'")
    assert learning.ratings(store) == {run_id: 5}  # nothing stored lost or added


def test_fourhosts_insights_json(store, capsys):
    add_run(store, TECH, "maeve", 5, 1)
    rc, out, _ = _cli(["insights", "--json", "--store", loc(store)], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [r["host"] for r in rows] == [h.value for h in HOSTS]
    assert (rows[3]["ratings"], rows[3]["mean_rating"], rows[0]["mean_rating"]) == (1, 5.0, None)


# -- the engine records features and learns -----------------------------------------------------


def test_a_run_stores_its_features_and_its_learned_classification(seeded_store):
    from fourhosts_jupyter.config import Settings
    from fourhosts_jupyter.engine import Engine

    rate_ten(seeded_store)
    engine = Engine(Settings.from_env(), store=seeded_store)
    answer = engine.research(TECH)
    assert answer.classification.primary is HostParadigm.MAEVE
    assert "learned: Maeve rated 5.0 on technology questions" in answer.classification.reason
    run = seeded_store.get_run(answer.run_id)
    assert run["classification"]["learning"]["applied"] is True
    assert run["paradigm"] == "maeve"
    with seeded_store.connect() as con:
        row = con.execute(
            "SELECT word_count, form, domain FROM run_features WHERE run_id = ?", [answer.run_id]
        ).fetchone()
    assert row == (len(TECH.split()), "question", "technology")
    off = Engine(Settings.from_env(learning=False), store=seeded_store).research(TECH)
    assert off.classification.probabilities == classify(TECH).probabilities
    assert "learned:" not in off.classification.reason


def test_runs_rated_before_features_were_stored_still_count(store):
    rate_ten(store)
    with store.connect() as con:  # as a store migrated by m008 holds its older runs
        con.execute("DELETE FROM run_features")
    recs = learning.records(store)
    assert len(recs) == 10
    assert {r.features for r in recs} == {Features.of(TECH_RATED.format(i=0))}
    assert learning.route(store, classify(TECH)).primary is HostParadigm.MAEVE


def test_insights_recommend_reviewing_a_declining_low_rated_host():
    from fourhosts_jupyter.insights import recommendation, trend

    recs = _recs([5, 4, 4, 5, 4, 1, 1, 2, 1, 2], host=HostParadigm.TEDDY)
    assert trend(recs) == "declining (-1.00)"
    assert recommendation("Teddy", recs, [], trend(recs)) == (
        "recent ratings fell: review its latest answers; "
        "rated 2.9 on average: try another host for its questions"
    )
    low = _recs([2, 1, 2], host=HostParadigm.TEDDY)
    assert recommendation("Teddy", low, [], trend(low)) == "rated 1.7 on average: try another host for its questions"


def test_fourhosts_insights_table_and_missing_store(store, tmp_path, capsys):
    add_run(store, TECH, "maeve", 5, 1)
    rc, out, _ = _cli(["insights", "--store", loc(store)], capsys)
    assert rc == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["runs", "ratings", "mean_rating"]
    assert [r.split()[0] for r in rows if r.split()] == ["host", "dolores", "teddy", "bernard", "maeve"]
    missing = tmp_path / "none.duckdb"
    rc, _, err = _cli(["insights", "--store", str(missing)], capsys)
    assert rc == 2 and err.startswith(f"fourhosts: error: no store at {missing}")
    assert not missing.exists()


def test_fh_rate(store):
    import fourhosts_jupyter as fh

    run_id = add_run(store, TECH, "bernard")
    assert fh.rate(run_id[:10], 3, note="ok", store=loc(store)) == run_id
    assert learning.ratings(store) == {run_id: 3}
    with pytest.raises(ConfigError, match="out of range"):
        fh.rate(run_id, "five", store=loc(store))
