"""Property test: random bytes, paths and flag values fed to ``ingest``, ``search``, ``classify``
and ``sandbox run`` through the CLI's ``main`` (in process, for speed; the hashing embedder).

Whatever comes in: no traceback (no exception other than argparse's SystemExit escapes, nothing
on stderr looks like one), a non-zero exit whenever a piece of the input is known to be
invalid, and the documents already in the store are untouched.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fourhosts_jupyter.cli import main
from fourhosts_jupyter.cli_args import MAX_HITS
from fourhosts_jupyter.memory.store import Store

# Bounded and repeatable; FOURHOSTS_PROPERTY_EXAMPLES=400 for a longer hunt.
HYPOTHESIS = settings(max_examples=int(os.environ.get("FOURHOSTS_PROPERTY_EXAMPLES", "40")), deadline=None,
                      derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = [".txt", ".md", ".html", ".csv", ".jsonl", ".pdf", ".py", ".bin", ""]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store holding two documents, and a directory for the random files."""
    root = tmp_path_factory.mktemp("prop")
    old = os.environ.get("FOURHOSTS_EMBEDDER")
    os.environ["FOURHOSTS_EMBEDDER"] = "hashing"
    for name, text in (("a.txt", "Speed cameras reduce crashes."), ("b.md", "# Trees\nStreet trees cool cities.")):
        (root / name).write_text(text)
    store = root / "store.duckdb"
    assert call(["ingest", "--store", str(store), "--quiet", str(root / "a.txt"), str(root / "b.md")])[0] == 0
    yield root, store, _documents(store)
    if old is None:
        os.environ.pop("FOURHOSTS_EMBEDDER", None)
    else:
        os.environ["FOURHOSTS_EMBEDDER"] = old


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own exit
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def _documents(store: Path) -> tuple[set, set]:
    """The documents (id, content hash) and the passages stored for documents."""
    with Store(store).connect() as con:
        docs = set(con.execute("SELECT id, content_hash FROM documents").fetchall())
        passages = set(con.execute("SELECT id, content FROM memories WHERE source = 'document'").fetchall())
    return docs, passages


# A flag value and whether it is valid; a None value means the flag is left out.
def _int_flag(name: str, maximum: int | None = None) -> st.SearchStrategy[tuple[list[str], bool]]:
    too_many = st.integers(maximum + 1, 10**15) if maximum else st.nothing()
    return st.one_of(
        st.just(([], True)),
        st.integers(1, 500).map(lambda n: ([name, str(n)], True)),
        st.integers(-10**6, 0).map(lambda n: ([name, str(n)], False)),
        too_many.map(lambda n: ([name, str(n)], False)),
        st.sampled_from(["nan", "inf", "1.5", "", "ten", "0x10"]).map(lambda v: ([name, v], False)),
    )


_SECONDS = st.one_of(
    st.just(([], True)),
    st.floats(0.5, 30).map(lambda x: (["--timeout", repr(x)], True)),
    st.sampled_from(["nan", "inf", "-inf", "0", "-1", "abc", ""]).map(lambda v: (["--timeout", v], False)),
)
_WEIGHTS = st.one_of(
    st.just(([], True)),
    st.tuples(st.floats(0.1, 5), st.floats(0, 5)).map(lambda w: (["--weights", f"{w[0]},{w[1]}"], True)),
    st.sampled_from(["nan,nan", "inf,1", "-1,1", "0,0", "1", "a,b", "1,2,3", ""]).map(
        lambda v: (["--weights", v], False)),
)
_NAMESPACE = st.one_of(
    st.just(([], True)),
    st.sampled_from(["shared", "teddy", "bernard"]).map(lambda v: (["--namespace", v], True)),
    st.text(min_size=1, max_size=8).filter(lambda v: v not in {"shared", "dolores", "teddy", "bernard", "maeve"}
                                           and not v.startswith("-")).map(lambda v: (["--namespace", v], False)),
)
_TEXT = st.text(max_size=60).filter(lambda t: not t.startswith("-"))


@st.composite
def _file(draw, root: Path) -> tuple[str, bool]:
    """A path argument: a new file of random bytes (valid as far as the CLI can tell, unless it
    is empty), a path that does not exist, or a glob that matches nothing."""
    kind = draw(st.sampled_from(["file", "file", "missing", "glob"]))
    suffix = draw(st.sampled_from(SUFFIXES))
    name = f"r{uuid.uuid4().hex[:10]}{suffix}"
    if kind == "missing":
        return str(root / "missing" / name), False
    if kind == "glob":
        return str(root / f"nomatch-{uuid.uuid4().hex[:6]}-*{suffix}"), False
    data = draw(st.binary(max_size=400))
    (root / name).write_bytes(data)
    return str(root / name), None if data else False  # None: valid or not, the content decides


@given(data=st.data())
@HYPOTHESIS
def test_random_input_never_tracebacks_nor_succeeds_when_invalid_nor_touches_other_documents(world, data):
    root, store, before = world
    command = data.draw(st.sampled_from(["ingest", "search", "classify", "sandbox"]))
    pieces: list[tuple[list[str], bool | None]] = []
    # Mostly the store, sometimes a file of random bytes passed as one (not a store: refused,
    # and left as it was).
    junk = root / f"junk-{uuid.uuid4().hex[:8]}.duckdb"
    junk_bytes = data.draw(st.one_of(st.none(), st.binary(min_size=1, max_size=300)))
    if junk_bytes is not None:
        junk.write_bytes(junk_bytes)
    target = ([], True) if junk_bytes is None else ([], False)
    target_path = str(store if junk_bytes is None else junk)
    if command == "ingest":
        path, ok = data.draw(_file(root))
        pieces = [target, data.draw(_int_flag("--chunk-words")), data.draw(_NAMESPACE), ([path], ok)]
        argv = ["ingest", "--store", target_path, "--quiet"]
    elif command == "search":
        query = data.draw(_TEXT)
        pieces = [target, data.draw(_int_flag("--k", MAX_HITS)), data.draw(_WEIGHTS),
                  ([query], bool(query.strip()) or None)]
        argv = ["search", "--store", target_path, "--json"]
    elif command == "classify":
        question = data.draw(_TEXT)
        pieces = [([question], bool(question.strip()) or False)]
        argv = ["classify", "--json"]
    else:
        path, ok = data.draw(_file(root))
        exists = Path(path).exists()  # an empty file is a valid (empty) script
        pieces = [data.draw(_SECONDS), ([path], None if exists else False)]
        argv = ["sandbox", "run"]
    for args, _ in pieces:
        argv += args
    rc, out, err = call(argv)

    assert isinstance(rc, int)
    assert "Traceback" not in err, (argv, err)
    if command == "sandbox" and out:  # the result: the code's own traceback may be in it
        assert json.loads(out)["status"], out
    else:
        assert "Traceback" not in out, (argv, out)
    if any(ok is False for _, ok in pieces):
        assert rc != 0, (argv, out, err)
    if rc != 0 and err.strip():
        assert len(err.strip().splitlines()) == 1, (argv, err)
    if command == "search" and rc == 0:
        for line in out.splitlines():
            assert "NaN" not in line and "Infinity" not in line, line
    if junk_bytes is not None:
        assert junk.read_bytes() == junk_bytes, argv
    docs, passages = _documents(store)
    assert before[0] <= docs and before[1] <= passages, argv
