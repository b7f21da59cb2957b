"""The ``fourhosts`` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fourhosts_jupyter.paradigms import HOSTS


def fourhosts(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fourhosts_jupyter.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


# The classify commands run on the hashing embedder so each subprocess skips loading torch; the
# classifier itself is tested with the local model in test_classify.py.
FAST = {"FOURHOSTS_EMBEDDER": "hashing"}


def test_classify_json_has_probabilities_keyed_by_host():
    out = fourhosts("classify", "--json", "Which framework explains why these patterns recur?", env=FAST)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert list(data["probabilities"]) == [h.value for h in HOSTS]
    assert abs(sum(data["probabilities"].values()) - 1) < 1e-3
    assert data["primary"] in data["probabilities"] and data["reason"]


def test_classify_reads_one_question_per_line_from_stdin():
    questions = ["How do I start composting today?", "", "What are the risks for every stakeholder?"]
    out = fourhosts("classify", "--json", stdin="\n".join(questions) + "\n", env=FAST)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(l) for l in out.stdout.splitlines()]
    assert [l["question"] for l in lines] == [q for q in questions if q]


def test_research_streams_an_answer_and_lists_the_run(tmp_path):
    store = str(tmp_path / "cli.duckdb")
    out = fourhosts("research", "--store", store, "What is Vision Zero?")
    assert out.returncode == 0, out.stderr
    assert "no language model was used" in out.stdout
    assert "Sources" in out.stdout and "[1]" in out.stdout
    corpus = os.path.join("fourhosts_jupyter", "data", "corpus")
    assert "— demo corpus: " in out.stdout and corpus not in out.stdout  # not a site-packages path
    assert "Dolores" in out.stderr and "%" in out.stderr  # the host distribution
    runs = fourhosts("runs", "--store", store, "--json")
    assert runs.returncode == 0
    rows = json.loads(runs.stdout)
    assert [r["question"] for r in rows] == ["What is Vision Zero?"]
    shown = fourhosts("show", "--store", store, rows[0]["id"])
    assert shown.returncode == 0 and "Vision Zero" in shown.stdout
    assert "— demo corpus: " in shown.stdout and corpus not in shown.stdout
    found = fourhosts("search", "--store", store, "--k", "3", "Vision Zero")
    assert found.returncode == 0 and "demo corpus: vision-zero-safe-system.md" in found.stdout
    assert corpus not in found.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("research", "--paradigm", "arnold", "q?"), "unknown paradigm 'arnold'"),
        (("research", "--effort", "max", "q?"), "effort 'max' is out of range"),
        (("show", "r_nope"), "no run 'r_nope'"),
    ],
)
def test_errors_are_one_line_and_non_zero(tmp_path, args, message):
    out = fourhosts(*args[:1], "--store", str(tmp_path / "e.duckdb"), *args[1:])
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_config_never_prints_a_key(tmp_path):
    secret = "sk-test-THIS-MUST-NOT-APPEAR-1234"
    out = fourhosts("config", "--store", str(tmp_path / "c.duckdb"), env={"OPENAI_API_KEY": secret})
    assert out.returncode == 0
    assert secret not in out.stdout + out.stderr
    assert "OPENAI_API_KEY" in out.stdout and "✅" in out.stdout
