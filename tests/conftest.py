"""Test-wide set-up: offline, a private state directory, final-render mode for notebook kernels.

These variables are set at import time so that kernels started by nbval inherit them.
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["FOURHOSTS_DOTENV"] = "0"  # a developer's .env must not leak keys into tests
os.environ["FOURHOSTS_LIVE"] = "0"  # notebooks under nbval render the final result once
# The evaluation stage (quality/) adds model calls and events after each answer; suites that
# count them exactly predate it. Its own tests and notebook turn it on explicitly.
os.environ.setdefault("FOURHOSTS_EVALUATION", "0")
os.environ.setdefault("FOURHOSTS_HOME", tempfile.mkdtemp(prefix="fourhosts-test-home-"))
for _key in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
    os.environ.pop(_key, None)  # a developer's real key must never reach a test
os.environ.pop("FOURHOSTS_STORE", None)  # nor a developer's team store (it beats FOURHOSTS_HOME)

import pytest  # noqa: E402
from openai_server import openai_server  # noqa: E402,F401 - the loopback Chat Completions server
from pg_fixtures import any_store, pg_server, pg_url  # noqa: E402,F401 - a real PostgreSQL


@pytest.fixture
def store(tmp_path):
    from fourhosts_jupyter.memory.store import Store

    return Store(tmp_path / "store.duckdb")


@pytest.fixture(scope="session")
def _seeded_template(tmp_path_factory):
    """One store seeded with the bundled corpus per test session (embedding it is the slow part)."""
    from fourhosts_jupyter.memory.seed import ensure_seeded
    from fourhosts_jupyter.memory.store import Store

    path = tmp_path_factory.mktemp("seeded") / "template.duckdb"
    assert ensure_seeded(Store(path)) > 0
    return path


@pytest.fixture
def seeded_store(_seeded_template, tmp_path):
    """A private copy of the seeded store (the derived index is rebuilt from it on first use)."""
    import shutil

    from fourhosts_jupyter.memory.store import Store

    path = tmp_path / "store.duckdb"
    shutil.copyfile(_seeded_template, path)
    return Store(path)


@pytest.fixture(params=["duckdb", "postgres"])
def seeded_any(request, _seeded_template, tmp_path):
    """``seeded_store`` on each back-end: the DuckDB copy, or the same memories copied into a
    fresh PostgreSQL database."""
    import shutil

    from fourhosts_jupyter.memory.store import Store

    path = tmp_path / "store.duckdb"
    shutil.copyfile(_seeded_template, path)
    if request.param == "duckdb":
        return Store(path)
    from fourhosts_jupyter.memory.backends import open_store
    from fourhosts_jupyter.memory.store_copy import copy_store
    from pg_fixtures import new_database

    pg = open_store(new_database(request.getfixturevalue("pg_server")))
    copy_store(Store(path), pg, progress=False)
    return pg


@pytest.fixture
def kernel_shell(_seeded_template, tmp_path, monkeypatch):
    """An IPython shell with the extension loaded, as a live kernel cell meets it: a seeded
    store, the offline engine, live views (no FOURHOSTS_LIVE), redraws unthrottled."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "fourhosts_jupyter")
    m = ip.magics_manager.registry["ResearchMagics"]
    path = tmp_path / "store.duckdb"
    shutil.copyfile(_seeded_template, path)
    old = (m.store_path, m.max_rate)
    m.store_path, m.max_rate = str(path), 1000
    monkeypatch.delenv("FOURHOSTS_LIVE", raising=False)
    monkeypatch.setenv("FOURHOSTS_PROVIDER", "offline")
    yield ip
    m.store_path, m.max_rate = old
