"""A careless user's arguments (issue 17 points 5, 7, 9, 11): each mistake is one line on stderr
and a non-zero exit, checked before anything heavy loads; `runs` and `show` print questions and
titles cut and neutralised."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fourhosts_jupyter.cli import main
from fourhosts_jupyter.memory.store import Store


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "ok.txt").write_text("Speed cameras cut crashes on urban roads.")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.xyz").write_text("not a supported format")
    (tmp_path / "q.jsonl").write_text('{"id": "1", "text": "speed"}\n[1, 2]\n')
    (tmp_path / "latin.py").write_bytes('# -*- coding: latin-1 -*-\nprint("café")\n'.encode("latin-1"))
    return tmp_path


BAD = [
    (["ingest", "--chunk-words", "-5", "{d}/ok.txt"], "--chunk-words: -5 is not allowed"),
    (["ingest", "--chunk-words", "0", "{d}/ok.txt"], "--chunk-words: 0 is not allowed"),
    (["ingest", "{d}/empty.txt"], "the file is empty"),
    (["ingest", "{d}/*.pdf"], "the pattern matches no file"),
    (["ingest", "{d}/nothing"], "the directory holds no file that can be ingested"),
    (["ingest", "{d}/nonexistent.txt"], "no such file or directory"),
    (["ingest", "--namespace", "nobody", "{d}/ok.txt"], "unknown namespace 'nobody'"),
    (["search", "--k", "0", "speed"], "--k: 0 is not allowed"),
    (["search", "--k", "-5", "speed"], "--k: -5 is not allowed"),
    (["search", "--k", "999999999999", "speed"], "--k: 999999999999 is too many: give at most 10,000"),
    (["search", "--weights", "nan,nan", "speed"], "give two finite numbers"),
    (["search", "--weights", "inf,1", "speed"], "give two finite numbers"),
    (["search", "--weights", "1e308,1e308", "speed"], "give two finite numbers"),
    (["search", "--queries", "{d}/q.jsonl"], "line 2: not a JSON object"),
    (["search", "--host", "arnold", "speed"], "unknown paradigm 'arnold'"),
    (["runs", "-n", "0"], "--limit: 0 is not allowed"),
    (["runs", "-n", "-1"], "--limit: -1 is not allowed"),
    (["sandbox", "run", "--timeout", "nan", "{d}/latin.py"], "--timeout: nan is not allowed"),
    (["sandbox", "run", "--timeout", "inf", "{d}/latin.py"], "--timeout: inf is not allowed"),
    (["sandbox", "run", "--timeout", "-1", "{d}/latin.py"], "--timeout: -1 is not allowed"),
    (["classify", "--paradigm", "arnold", "q?"], "unknown paradigm 'arnold'"),
    (["classify", " "], "no question given"),
    (["research", "--effort", "max", "q?"], "effort 'max' is out of range"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_a_bad_argument_is_one_line_and_a_non_zero_exit(argv, message, files, capsys):
    store = files / "store.duckdb"
    with_store = argv[0] not in ("sandbox", "classify")
    argv = [a.format(d=files) for a in argv] + (["--store", str(store)] if with_store else [])
    rc, out, err = run(argv, capsys)
    assert rc == 2, (out, err)
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""
    assert not store.exists()  # rejected before the store was opened


def test_bad_arguments_are_refused_before_torch_loads(files):
    """In a fresh process: after rejecting bad arguments, no heavy module was imported."""
    argvs = [[a.format(d=files) for a in argv] for argv, _ in BAD]
    code = (
        "import json, sys, time\n"
        "from fourhosts_jupyter.cli import main\n"
        f"for argv in {argvs!r}:\n"
        "    t = time.perf_counter()\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(json.dumps(sorted(m for m in ('torch', 'sentence_transformers', 'faiss') if m in sys.modules)))\n"
    )
    env = {**os.environ, "FOURHOSTS_HOME": str(files / "home")}
    env.pop("FOURHOSTS_EMBEDDER", None)  # the default embedder would load torch
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_sandbox_runs_a_latin1_file_with_a_coding_line(files, capsys):
    rc, out, err = run(["sandbox", "run", str(files / "latin.py")], capsys)
    assert rc == 0, err
    assert json.loads(out)["stdout"] == "café\n"


def test_sandbox_refuses_a_file_that_is_not_python_text(files, capsys):
    (files / "bad.py").write_bytes(b'print("\xff")\n')
    rc, out, err = run(["sandbox", "run", str(files / "bad.py")], capsys)
    assert rc == 2 and out == "" and "save it as UTF-8" in err
    assert len(err.strip().splitlines()) == 1


# -- show: ids that are ambiguous or unknown ---------------------------------------------------


@pytest.fixture
def two_runs(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    store.start_run("r_ab", "first question?", {})
    store.start_run("r_abc", "second question?", {})
    return str(store.path)


@pytest.mark.parametrize("run_id, message", [("", "no run ''"), ("r", "'r' is ambiguous"),
                                             ("r_x", "no run 'r_x'"), ("%", "no run '%'")])
def test_show_refuses_an_ambiguous_or_unknown_id(two_runs, run_id, message, capsys):
    rc, out, err = run(["show", "--store", two_runs, run_id], capsys)
    assert rc == 2 and message in err and out == ""
    assert len(err.strip().splitlines()) == 1


def test_show_takes_an_exact_id_or_a_unique_prefix(two_runs, capsys):
    assert run(["show", "--store", two_runs, "r_ab"], capsys)[1].startswith("r_ab ")
    assert run(["show", "--store", two_runs, "r_abc"], capsys)[1].startswith("r_abc ")


# -- runs and show on hostile text -----------------------------------------------------------


def test_runs_and_show_cut_and_neutralise_questions_and_titles(tmp_path, capsys):
    store = Store(tmp_path / "hostile.duckdb")
    evil = "\x1b[2J\x1b]0;pwned\x07Why?\r\n" + "x" * 50_000
    store.start_run("r_evil", evil, {})
    store.finish_run("r_evil", status="ok", classification=None, paradigm="bernard", provider="offline",
                     model="offline", answer="Answer \x1b[31mred\x1b[0m\nsecond line",
                     sources=[{"n": 1, "title": "T\x1b[8mhidden", "origin": "o\x9b1m"}],
                     usage={}, cost_usd=None, timings={}, error=None, events=[])
    store.start_run("r_short", "Short?", {})
    rc, out, _ = run(["runs", "--store", str(store.path)], capsys)
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 3 and max(len(l) for l in lines) < 200  # not padded to 50k characters
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "\\x1b[2J" in out and lines[1].startswith("r_short ") and lines[1].split()[2:] == ["running", "-", "-", "Short?"]

    rc, out, _ = run(["show", "--store", str(store.path), "r_evil"], capsys)
    assert rc == 0
    assert not any(ch in out for ch in "\x1b\x07\r\x9b")
    assert "\\x1b[31mred" in out and "T\\x1b[8mhidden" in out and "Answer" in out
    assert "red\\x1b[0m\nsecond line" in out  # the answer keeps its lines


# -- the same checks at the Python entry point ------------------------------------------------


def test_ingest_refuses_chunk_words_below_one(tmp_path):
    from fourhosts_jupyter.errors import ConfigError
    from fourhosts_jupyter.memory.embeddings import get_embedder
    from fourhosts_jupyter.memory.ingest import ingest

    (tmp_path / "ok.txt").write_text("Speed cameras cut crashes.")
    for words in (0, -5):
        with pytest.raises(ConfigError, match="chunk_words"):
            ingest(tmp_path / "ok.txt", tmp_path / "s.duckdb", embedder=get_embedder("hashing"),
                   chunk_words=words, progress=False)
    assert not (tmp_path / "s.duckdb").exists()


def test_an_empty_file_is_a_failure_not_a_passage_made_of_its_name(tmp_path):
    from fourhosts_jupyter.memory.embeddings import get_embedder
    from fourhosts_jupyter.memory.ingest import ingest

    (tmp_path / "empty.txt").write_text(" \n\n ")
    store = Store(tmp_path / "s.duckdb")
    report = ingest(tmp_path / "empty.txt", store, embedder=get_embedder("hashing"), progress=False)
    assert [f.reason for f in report.failed] == ["no text found (the file is empty)"]
    assert store.count_memories() == 0


def test_the_terminal_view_neutralises_model_text_notices_and_source_titles():
    import io
    from types import SimpleNamespace

    from fourhosts_jupyter.events import AnswerReady, Notice, Source, TextDelta
    from fourhosts_jupyter.terminal import render

    source = Source(n=1, id="m", title="T\x1b]0;pwned\x07", text="x", origin="o\x1b[2J")
    answer = SimpleNamespace(text="Hi\x1b[31m red\nline two", sources=(source,))
    out, err = io.StringIO(), io.StringIO()
    render([Notice("at http://alice:secret@h/v1 \x1b[1A"), TextDelta("Hi\x1b[31m red\n"),
            TextDelta("line two"), AnswerReady(answer)], out=out, err=err)
    text = out.getvalue() + err.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "secret" not in text
    assert "Hi\\x1b[31m red\nline two" in out.getvalue() and "[1] T\\x1b]0;pwned\\x07 — o\\x1b[2J" in text


def test_runs_and_show_never_create_a_store(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "s.duckdb"
    assert run(["runs", "--store", str(missing)], capsys)[:2] == (0, 'no runs yet: try  fourhosts research "your question"\n')
    assert run(["runs", "--json", "--store", str(missing)], capsys)[:2] == (0, "[]\n")
    rc, out, err = run(["show", "--store", str(missing), "r_x"], capsys)
    assert rc == 2 and "no run 'r_x'" in err
    assert not (tmp_path / "nowhere").exists()
