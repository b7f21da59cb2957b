"""``%%research`` / ``%research`` in a real IPython shell: options, errors, runs, config."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import AsyncIterator

import duckdb
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from fourhosts_jupyter.answer import Answer
from fourhosts_jupyter.errors import ProviderConnectionError, RunError
from fourhosts_jupyter.events import Usage
from fourhosts_jupyter.jupyter.magics import ResearchMagics
from fourhosts_jupyter.jupyter.view import ConfigReport, HostBar, StoredRunView
from fourhosts_jupyter.llm.base import ModelRequest, ProviderFinish, ProviderText, ProviderUsage
from fourhosts_jupyter.memory.store import Store

QUESTION = "How should a mid-size city cut traffic deaths in half within five years?"


class Scripted:
    """A provider that replays text pieces, then optionally fails (as a dropped stream does)."""

    name = "scripted"
    model = "script-1"
    offline = False

    def __init__(self, pieces: list[str], *, fail_after: int | None = None) -> None:
        self.pieces = pieces
        self.fail_after = fail_after

    async def aclose(self) -> None:
        pass

    async def stream(self, request: ModelRequest) -> AsyncIterator:
        for i, piece in enumerate(self.pieces):
            if self.fail_after is not None and i == self.fail_after:
                raise ProviderConnectionError("the connection dropped mid-stream; try again")
            await asyncio.sleep(0)
            yield ProviderText(piece)
        yield ProviderUsage(Usage(10, 5, 15, 0.0))
        yield ProviderFinish("stop")


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fourhosts_jupyter")
    return shell


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("magics-home")


def _reset(m):  # noqa: ANN001, ANN202 - the shell is shared by every test file
    for name in ("live", "paradigm", "effort", "model", "base_url", "lock_timeout", "max_rate", "api",
                 "learning", "segmented"):
        if name in m.traits():
            m.traits()[name].set(m, m.traits()[name].default_value)
    m.prices = {}
    m.provider = None


@pytest.fixture
def magics(ip, home, monkeypatch):
    m = ip.magics_manager.registry["ResearchMagics"]
    _reset(m)
    m.store_path = str(home / "store.duckdb")
    monkeypatch.setenv("FOURHOSTS_LIVE", "0")
    yield m
    _reset(m)  # what a test set with %config must not reach the next file's tests


@pytest.fixture(scope="module")
def first_run(ip, home):
    """One real offline run into the module's store (seeds it with the bundled corpus)."""
    m = ip.magics_manager.registry["ResearchMagics"]
    m.store_path = str(home / "store.duckdb")
    with capture_output() as cap:
        ip.run_cell_magic("research", "--no-stream --save first_answer", QUESTION)
    return ip.user_ns["first_answer"], cap


# -- registration, docs, import cost ----------------------------------------------------------


def test_load_ext_registers_line_and_cell_magic(ip):
    assert ip.find_cell_magic("research") is not None
    assert ip.find_line_magic("research") is not None
    assert any(isinstance(c, ResearchMagics) for c in ip.configurables)


def test_cell_magic_help_lists_every_option(ip):
    doc = ip.object_inspect("%%research")["docstring"]
    for opt in ("--paradigm", "--effort", "--model", "--no-stream", "--save", "--store", "--base-url"):
        assert opt in doc, opt
    for sub in ("runs", "show", "config", "classify", "memory search", "rate"):
        assert f"%research {sub}" in doc


def test_load_ext_is_cheap():
    code = textwrap.dedent(
        """
        import sys, time
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        t = time.perf_counter()
        ip.run_line_magic("load_ext", "fourhosts_jupyter")
        heavy = [m for m in ("torch", "sentence_transformers", "faiss", "duckdb", "openai", "psycopg", "pgvector")
                 if m in sys.modules]
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_load_ext_gets_the_embedder_ready_in_the_background():
    code = textwrap.dedent(
        """
        import sys, threading
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "fourhosts_jupyter")
        (bg,) = [t for t in threading.enumerate() if t.name == "fourhosts-preload"]
        bg.join(120)
        from fourhosts_jupyter.memory import embeddings
        print(bg.is_alive(), embeddings._default.name, embeddings._default._numpy is not None,
              "torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # ready, and without torch: the NumPy encoder embeds questions, the corpus vectors ship
    assert out.stdout.strip().splitlines()[-1] == "False all-MiniLM-L6-v2 True False"


# -- user mistakes: one UsageError naming the problem and the fix -------------------------------


@pytest.mark.parametrize(
    ("line", "cell", "expected"),
    [
        ("", "   \n  ", "the cell is empty"),
        ("--bogus", QUESTION, "unknown option '--bogus'"),
        ("-p ford", QUESTION, "unknown paradigm 'ford': use one of dolores, teddy, bernard, maeve"),
        ("--effort max", QUESTION, "effort 'max' is out of range: use low, medium or high"),
        ("-e", QUESTION, "expected one argument"),
        ("--save 2bad", QUESTION, "not a valid Python variable name"),
        ("--save class", QUESTION, "not a valid Python variable name"),
        ("What is this", QUESTION, "put the question in the cell body"),
    ],
)
def test_bad_cell_input_is_a_usage_error(ip, magics, line, cell, expected):
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")) as info:
        ip.run_cell_magic("research", line, cell)
    assert str(info.value).startswith("%%research: ")


def test_unknown_option_message_lists_the_options(ip, magics):
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("research", "--bogus", QUESTION)
    assert "--paradigm" in str(info.value) and "%%research?" in str(info.value)


def test_configured_default_paradigm_is_validated(ip, magics):
    magics.paradigm = "ford"
    with pytest.raises(UsageError, match="unknown paradigm 'ford'"):
        ip.run_cell_magic("research", "", QUESTION)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("frobnicate", "unknown subcommand 'frobnicate'"),
        ("runs -n 0", "-n must be at least 1"),
        ("runs --bogus", "unrecognized arguments: --bogus. Usage: %research runs"),
        ("show", "the following arguments are required: run_id"),
        ("show r_doesnotexist", "no run 'r_doesnotexist'"),
        ("classify", "no question given"),
        ("classify ''", "no question given"),
        ("memory forget x", "unknown action 'forget'"),
        ("memory search", "no query given"),
        ("rate r_nope 9", "rating '9' is out of range"),
        ("runs -n 'x", "check the quotes"),
    ],
)
def test_bad_line_input_is_a_usage_error(ip, magics, line, expected):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("research", line)
    assert expected in str(info.value)


def test_usage_error_shows_no_traceback(ip, magics):
    with capture_output() as cap:
        result = ip.run_cell("%%research --effort max\nWhat now?")
    assert isinstance(result.error_in_exec, UsageError)
    assert "Traceback" not in cap.stdout + cap.stderr
    assert "effort 'max' is out of range" in cap.stdout + cap.stderr


def test_locked_store_is_a_usage_error(ip, magics, tmp_path):
    path = tmp_path / "locked.duckdb"
    Store(path).schema_version()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        magics.lock_timeout = 0.3
        with pytest.raises(UsageError, match="stayed locked by another process"):
            ip.run_line_magic("research", f"runs --store {path}")
        with pytest.raises(UsageError, match="^%%research: .*stayed locked"):
            ip.run_cell_magic("research", f"--store {path}", QUESTION)
    finally:
        holder.kill()
        holder.wait()


def test_newer_schema_store_is_a_usage_error_and_untouched(ip, magics, tmp_path):
    path = tmp_path / "newer.duckdb"
    Store(path).schema_version()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO _migrations VALUES ('9999_from_the_future', now())")
    con.close()
    with pytest.raises(UsageError, match="written by a newer fourhosts-jupyter"):
        ip.run_line_magic("research", f"runs --store {path}")
    con = duckdb.connect(str(path))
    assert ("9999_from_the_future",) in con.execute("SELECT name FROM _migrations").fetchall()
    con.close()


def test_unreadable_store_is_a_usage_error(ip, magics, tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(UsageError, match="cannot open the store"):
        ip.run_line_magic("research", f"runs --store {path}")
    assert path.read_text().startswith("these are my notes")


def test_someone_elses_duckdb_file_is_a_usage_error_and_untouched(ip, magics, tmp_path):
    path = tmp_path / "mydb.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (id INTEGER)")
    con.close()
    with pytest.raises(UsageError, match="not a fourhosts-jupyter store"):
        ip.run_line_magic("research", f"runs --store {path}")
    con = duckdb.connect(str(path))
    assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("runs",)]
    con.close()


# -- config never shows a key ------------------------------------------------------------------


def test_config_shows_which_keys_are_set_but_never_a_value(ip, magics, monkeypatch):
    secret = "sk-test-DO-NOT-SHOW-4242"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:hunter2@127.0.0.1:9999/v1?api-key=zzz")
    with capture_output() as cap:
        report = ip.run_line_magic("research", "config")
    assert isinstance(report, ConfigReport)
    bundle = report._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    everything = "".join(bundle.values()) + repr(report) + cap.stdout + cap.stderr
    for leaked in (secret, "hunter2", "zzz"):
        assert leaked not in everything
    text = bundle["text/plain"]
    assert "OPENAI_API_KEY        ✅ set" in text
    assert "AZURE_OPENAI_API_KEY  ❌ not set" in text
    assert "http://127.0.0.1:9999/v1" in text
    assert magics.store_path in text and "embedder" in text and "model" in text


# -- real runs -------------------------------------------------------------------------------


def test_no_stream_run_displays_once_and_saves_the_answer(first_run):
    answer, cap = first_run
    assert isinstance(answer, Answer)
    assert answer.offline and answer.sources
    assert any(f"[{s.n}]" in answer.text for s in answer.sources)  # cites the bundled corpus
    assert len(cap.outputs) == 1 and cap.outputs[0].update is False
    data = cap.outputs[0].data
    assert "Hosts [" in data["text/plain"] and "Sources:" in data["text/plain"]
    assert "fh-hostbar" in data["text/html"] and "offline · extractive" in data["text/html"]


def test_live_run_streams_through_one_display_handle(ip, magics, first_run, monkeypatch):
    monkeypatch.delenv("FOURHOSTS_LIVE")
    magics.segmented = False  # the whole-run view (the segmented default: tests/test_segmented.py)
    magics.max_rate = 1000  # let several redraws through on a fast offline run
    with capture_output() as cap:
        ip.run_cell_magic("research", "-p teddy -e low", "Which safeguards protect pedestrians?")
    *run, rating = cap.outputs  # a live answer ends with its rating row (jupyter/feedback.py)
    assert rating.data["text/plain"].startswith("Rate this answer: %research rate r_")
    assert len(run) >= 2
    assert run[0].update is False and all(o.update for o in run[1:])
    assert len({o.transient["display_id"] for o in run}) == 1
    final = run[-1].data["text/plain"]
    assert "Answering as Teddy — forced" in final and "Sources:" in final


def test_live_can_be_switched_off_with_config(ip, magics, first_run, monkeypatch):
    monkeypatch.delenv("FOURHOSTS_LIVE")
    ip.run_line_magic("config", "ResearchMagics.live = False")
    assert magics.live is False
    with capture_output() as cap:
        ip.run_cell_magic("research", "", "What does a safe system approach mean?")
    assert len(cap.outputs) == 1


def test_failed_run_shows_partial_answer_then_raises(ip, magics, first_run):
    magics.provider = Scripted(["Half ", "an ", "answer", " never sent"], fail_after=3)
    with capture_output() as cap, pytest.raises(RunError) as info:
        ip.run_cell_magic("research", "", QUESTION)
    assert info.value.kind == "provider" and info.value.partial_text == "Half an answer"
    assert "connection dropped" in str(info.value)
    assert len(cap.outputs) == 1  # shown before raising
    shown = cap.outputs[0].data["text/plain"]
    assert "Half an answer" in shown and "Run failed (provider)" in shown
    # through run_cell the error is one line, not a traceback through our code
    with capture_output() as cap2:
        result = ip.run_cell(f"%%research\n{QUESTION}")
    assert isinstance(result.error_in_exec, RunError)
    assert "Traceback" not in cap2.stdout + cap2.stderr and "RunError" in cap2.stdout + cap2.stderr


def test_a_cut_off_answer_is_shown_then_the_cell_fails_as_incomplete(ip, magics, first_run, openai_server):
    # A real provider over loopback: the stream ends cleanly with no finish reason, no [DONE].
    from fourhosts_jupyter.llm.openai_chat import OpenAIChatProvider
    from openai_server import Reply

    openai_server.script(Reply.cut("The answer rests on three pillars.", after=4, text_chunk=7))
    magics.provider = OpenAIChatProvider("compatible", base_url=openai_server.base_url, model="m",
                                         max_retries=0)
    with capture_output() as cap, pytest.raises(RunError) as info:
        ip.run_cell_magic("research", "", QUESTION)
    assert info.value.kind == "incomplete" and info.value.partial_text == "The answer rests on t"
    assert len(cap.outputs) == 1  # shown before raising
    shown = cap.outputs[0].data["text/plain"]
    assert "The answer rests on t" in shown and "Run failed (incomplete)" in shown and "cut off" in shown
    assert "cut off" in cap.outputs[0].data["text/html"]
    run = Store(magics.store_path).get_run(info.value.run_id)
    assert (run["status"], run["error_kind"]) == ("failed", "incomplete")
    runs = ip.run_line_magic("research", "runs -n 1").iloc[0]
    assert (runs["id"], runs["status"], runs["error_kind"]) == (run["id"], "failed", "incomplete")
    replay = ip.run_line_magic("research", f"show {run['id']}")._repr_mimebundle_()["text/plain"]
    assert "The answer rests on t" in replay and "Run failed (incomplete)" in replay


def test_runs_show_rate_and_memory_search(ip, magics, first_run, home):
    answer, _ = first_run
    runs = ip.run_line_magic("research", "runs -n 50")
    assert isinstance(runs, pd.DataFrame) and answer.run_id in set(runs["id"])
    assert len(ip.run_line_magic("research", "runs -n 1")) == 1

    shown = ip.run_line_magic("research", f"show {answer.run_id}")
    assert isinstance(shown, StoredRunView)
    text = shown._repr_mimebundle_()["text/plain"]
    assert text.startswith(f"Question: {QUESTION}") and "Sources:" in text and "◀" in text

    with capture_output() as cap:
        ip.run_line_magic("research", f"rate {answer.run_id} 4 clear and cited")
    assert f"Rated run {answer.run_id}: 4/5" in cap.stdout
    with Store(home / "store.duckdb").connect() as con:
        rows = con.execute("SELECT rating FROM feedback WHERE run_id = ?", [answer.run_id]).fetchall()
    assert rows == [(4,)]

    hits = ip.run_line_magic("research", 'memory search "lower speed limits"')
    assert isinstance(hits, pd.DataFrame) and len(hits) > 0
    assert {"rank", "score", "title", "origin", "text", "reasons"} <= set(hits.columns)
    assert hits["title"].str.contains("Speed Management").iloc[:3].any()


def test_demo_corpus_sources_are_named_in_the_cell_the_run_log_and_memory_search(ip, magics, first_run):
    from fourhosts_jupyter.memory.seed import corpus_files

    answer, cap = first_run
    corpus_dir = str(corpus_files()[0].parent)
    assert answer.sources and all(s.origin.startswith(corpus_dir) for s in answer.sources)  # stored as is
    shown = ip.run_line_magic("research", f"show {answer.run_id}")._repr_mimebundle_()
    for bundle in (cap.outputs[-1].data, shown):
        for mime in ("text/html", "text/plain"):
            assert "demo corpus: " in bundle[mime] and corpus_dir not in bundle[mime], mime
    hits = ip.run_line_magic("research", 'memory search "lower speed limits"')
    speed = hits[hits["title"].str.contains("Speed Management")]
    assert len(speed) and set(speed["origin"]) == {"demo corpus: speed-management.md"}


def test_ingest_adds_files_and_names_a_bad_one(ip, magics, home, tmp_path):
    good = tmp_path / "parking.md"
    good.write_text("# Parking notes\n\nThe ward asked for fewer parking spaces near the school gates.\n")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"not a pdf at all")
    with capture_output() as cap:
        ip.run_line_magic("research", f"ingest {good} {bad}")
    assert "ok" in cap.stdout and str(good) in cap.stdout
    assert "FAILED" in cap.stdout and str(bad) in cap.stdout
    hits = ip.run_line_magic("research", 'memory search "parking near the school gates"')
    assert hits["title"].iloc[0] == "Parking notes"


def test_classify_shows_the_host_bar(ip, magics):
    bar = ip.run_line_magic("research", "classify How do we protect every stakeholder and guard against risks?")
    assert isinstance(bar, HostBar)
    text = bar._repr_mimebundle_()["text/plain"]
    assert text.startswith("Hosts [") and len(text.splitlines()[0]) == len("Hosts []") + 40
    assert "Teddy (Protection)" in text and "◀" in text
    magics.paradigm = "maeve"
    forced = ip.run_line_magic("research", "classify 'How do we protect every stakeholder?'")
    assert forced.classification.primary.value == "maeve" and forced.classification.forced


def test_a_price_set_with_config_reaches_the_provider(ip, magics, openai_server, monkeypatch):
    # %config ResearchMagics.prices → Settings.prices → the provider the registry builds.
    from fourhosts_jupyter.errors import ConfigError
    from fourhosts_jupyter.llm.prices import PRICES_VARIABLE, Price
    from fourhosts_jupyter.llm.registry import resolve_provider

    monkeypatch.delenv(PRICES_VARIABLE, raising=False)
    ip.run_line_magic("config", 'ResearchMagics.prices = {"llama3.1:8b": [1.0, 2.0]}')
    provider = resolve_provider(magics.settings(model="llama3.1:8b", base_url=openai_server.base_url))
    assert provider.prices == {"llama3.1:8b": Price(1.0, 2.0)}
    ip.run_line_magic("config", 'ResearchMagics.prices = {"llama3.1:8b": [1.0, None]}')
    with pytest.raises(ConfigError, match="prices"):
        magics.settings(model="llama3.1:8b")
