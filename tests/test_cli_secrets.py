"""Credentials in a base URL never reach stderr, the run log, ``show``, ``runs`` or the store file
(issue 17 point 2), with the real CLI against the loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fourhosts_jupyter.testing import Reply

ENV = {"FOURHOSTS_EMBEDDER": "hashing"}  # the hashing embedder: no torch in each subprocess


def fourhosts(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fourhosts_jupyter.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **ENV})


def test_base_url_credentials_are_redacted_everywhere(openai_server, tmp_path):
    store = str(tmp_path / "s.duckdb")
    url = openai_server.base_url.replace("http://", "http://alice:secret@")
    shown_url = openai_server.base_url
    outputs = []

    # a failing call (retried once, then refused) and a call that succeeds on its retry
    openai_server.script(Reply.fail(503, "busy"), Reply.fail(400, "bad thing"))
    failed = fourhosts("research", "--store", store, "--base-url", url, "--model", "m", "What is Vision Zero?")
    openai_server.script(Reply.fail(503, "busy"), Reply.say("Speed kills [1]."))
    retried = fourhosts("research", "--store", store, "--base-url", url, "--model", "m", "What is speed?")
    assert failed.returncode == 1 and retried.returncode == 0, retried.stderr
    # the requests really carried the credentials (the client sends them as Basic auth)
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in openai_server.chat_requests)
    for out in (failed, retried):
        assert f"ServerError from the server at {shown_url}; retry 1/2" in out.stderr
    assert f"the server at {shown_url} failed: HTTP 400: bad thing" in failed.stderr
    outputs += [failed, retried]

    runs = fourhosts("runs", "--store", store, "--json")
    rows = json.loads(runs.stdout)
    assert {r["status"] for r in rows} == {"ok", "failed"}
    assert any(shown_url in (r["error"] or "") for r in rows)
    outputs += [runs, fourhosts("runs", "--store", store)]
    for r in rows:
        shown = fourhosts("show", "--store", store, "--json", r["id"])
        run = json.loads(shown.stdout)
        assert any(shown_url in json.dumps(e["payload"]) for e in run["events"])  # the notices
        outputs += [shown, fourhosts("show", "--store", store, r["id"])]

    for out in outputs:
        assert "secret" not in out.stdout + out.stderr, out.args
    for f in tmp_path.iterdir():
        if f.is_file():
            assert b"secret" not in f.read_bytes(), f


def test_show_and_runs_redact_a_store_written_before_the_fix(tmp_path):
    from fourhosts_jupyter.memory.store import Store

    store = Store(tmp_path / "old.duckdb")
    store.start_run("r_old", "q?", {})
    with store.connect() as con:  # as an older version stored it
        con.execute("UPDATE runs SET status = 'failed', error = ? WHERE id = 'r_old'",
                    ["the server at http://alice:secret@h:1/v1?api-key=secret failed"])
        con.execute("INSERT INTO run_events VALUES ('r_old', 1, 'notice', 0.1, ?::JSON)",
                    [json.dumps({"message": "retry at http://alice:secret@h:1/v1"})])
    del store
    for args in (("runs", "--json"), ("show", "r_old"), ("show", "--json", "r_old")):
        out = fourhosts(args[0], "--store", str(tmp_path / "old.duckdb"), *args[1:])
        assert out.returncode == 0, out.stderr
        assert "secret" not in out.stdout and "http://h:1/v1" in out.stdout


def test_the_cell_never_shows_base_url_credentials(openai_server, tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from fourhosts_jupyter.errors import RunError

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fourhosts_jupyter")
    magics = shell.magics_manager.registry["ResearchMagics"]
    monkeypatch.setattr(magics, "store_path", str(tmp_path / "cell.duckdb"))
    monkeypatch.setattr(magics, "provider", None)
    monkeypatch.setenv("FOURHOSTS_LIVE", "0")
    monkeypatch.setenv("FOURHOSTS_EMBEDDER", "hashing")
    url = openai_server.base_url.replace("http://", "http://alice:secret@")
    openai_server.script(Reply.fail(503, "busy"), Reply.fail(400, "bad thing"))
    with capture_output() as cap, pytest.raises(RunError) as info:
        shell.run_cell_magic("research", f"--base-url {url} --model m", "What is Vision Zero?")
    shown = "".join(str(v) for o in cap.outputs for v in o.data.values()) + cap.stdout + cap.stderr
    assert "bad thing" in str(info.value) and openai_server.base_url in str(info.value)
    assert "secret" not in shown + str(info.value)
    view = shell.run_line_magic("research", f"show --store {tmp_path / 'cell.duckdb'} {info.value.run_id}")
    bundle = view._repr_mimebundle_()
    assert "bad thing" in bundle["text/plain"] and "secret" not in "".join(bundle.values())
    assert b"secret" not in (tmp_path / "cell.duckdb").read_bytes()
