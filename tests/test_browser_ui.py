"""The memory browser in a real browser: JupyterLab on loopback with a private token, a small
notebook run in it, and headless chromium checking what the analyst sees (one-line rows,
"never", paging, checkboxes that forget exactly the rows ticked).

Skips naming the package when chromium or playwright is missing; ``FOURHOSTS_REQUIRE_SYSTEM=1``
(set by ``.ci/run``) turns that into a failure. ``FOURHOSTS_BROWSER_SCREENSHOT=PATH`` keeps the
last screenshot there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from system_packages import require, unavailable

ROOT = Path(__file__).resolve().parents[1]
N = 30
PAGE = 10
HOSTILE = 'Injected <script>window.__fhPwned = 1</script><img src=x onerror="window.__fhPwned=2">'


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright, in the test extra)")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(path: Path) -> list[str]:
    from fourhosts_jupyter.memory.store import MemoryRecord, Store

    store = Store(path)
    soon = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(days=7)

    def record(i: int, first: str, expires: dt.datetime | None = None) -> MemoryRecord:
        # long, several paragraphs: pandas' HTML showed these as literal \n\n, five lines tall
        return MemoryRecord(
            id=f"mem-{i:02d}", namespace="bernard", memory_type="semantic",
            title=f"Speed note {i}", source="note", expires_at=expires,
            content=first + "\n\n" + "A second paragraph that is long enough to wrap. " * 8
            + "\n\nThird paragraph.",
        )

    ids = store.add_memories([record(i, f"Passage {i} on average-speed cameras.")
                              for i in range(N - 2)])
    # written last, so newest, so on the first page
    return ids + store.add_memories([record(N - 2, HOSTILE), record(N - 1, "Expiring.", soon)])


NOTEBOOK = """\
from fourhosts_jupyter.jupyter.browser import MemoryBrowser
from fourhosts_jupyter.memory.store import Store

MemoryBrowser(Store({path!r}), page_size={page})
"""


def _notebook(path: Path, store_path: Path) -> None:
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "browse", "metadata": {},
                   "outputs": [], "source": NOTEBOOK.format(path=str(store_path), page=PAGE)}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


KERNEL_IDLE = ("(() => { const w = window.jupyterapp.shell.currentWidget;"
               " const k = w && w.sessionContext && w.sessionContext.session"
               " && w.sessionContext.session.kernel; return k && k.status === 'idle'; })()")


def open_and_run(page, base: str, token: str, notebook: str, *, timeout: int = 30_000,  # noqa: ANN001
                 idle_timeout: int | None = None) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel to be idle, then run every cell
    (the way an analyst opens a notebook and presses Run All). Waits up to ``timeout`` ms for
    the notebook, ``idle_timeout`` (else ``timeout``) for the kernel."""
    page.goto(f"{base}/lab/tree/{notebook}?token={token}")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')",
                           timeout=timeout)
    page.wait_for_function(KERNEL_IDLE, timeout=idle_timeout or timeout)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a free loopback port with a private token, serving ``tmp_path``; with
    the chromium to look at it and playwright to drive it (checked first: no server for a skip)."""
    chromium, sync_playwright = require("chromium", "chromium"), _playwright()
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           # private config and runtime: nothing from, or left in, the user's ~/.jupyter
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
           f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about Jupyter news?" toast over the screenshot
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("JupyterLab did not start:\n"
                                         + (tmp_path / "lab.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield base, token, chromium, sync_playwright
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_memory_browser_in_jupyterlab(lab, tmp_path):
    from fourhosts_jupyter.jupyter.memory_rows import preview
    from fourhosts_jupyter.memory.store import Store

    store_path = tmp_path / "store.duckdb"
    ids = _seed(store_path)
    assert len(ids) == N
    _notebook(tmp_path / "browse.ipynb", store_path)
    base, token, chromium, sync_playwright = lab
    shot = Path(os.environ.get("FOURHOSTS_BROWSER_SCREENSHOT") or tmp_path / "browser.png")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_and_run(page, base, token, "browse.ipynb")
            rows = page.locator(".fh-memory-browser .fh-mb-row:visible")
            rows.first.wait_for(timeout=30_000)

            # paging: one page of rows, and controls that say where we are
            assert rows.count() == PAGE
            label = page.locator(".fh-mb-page")
            assert f"Page 1 of {N // PAGE}" in label.inner_text()
            assert f"of {N} memories" in label.inner_text()

            # one line per row: the summary is as tall as one line of text (20px), not five
            line = page.locator(".fh-mb-row:visible summary")
            heights = [line.nth(i).bounding_box()["height"] for i in range(PAGE)]
            assert max(heights) < 2 * 20, heights
            previews = page.locator(".fh-mb-row:visible .fh-mb-text").all_text_contents()
            newest = Store(store_path).memories(limit=PAGE)["content"]
            assert previews == [preview(t) for t in newest]
            assert not any("\\n" in t or "\n" in t for t in previews), previews

            # readable dates: "never" for no expiry, a date for the one that expires, no NaT
            expires = page.locator(".fh-mb-row:visible .fh-mb-expires").all_inner_texts()
            assert expires.count("never") == PAGE - 1, expires
            assert "NaT" not in page.locator(".fh-memory-browser").inner_text()

            # untrusted text is shown, never run
            assert page.locator(".fh-mb-cell script, .fh-mb-cell img").count() == 0
            assert page.evaluate("window.__fhPwned === undefined")
            assert "<script>" in page.locator(".fh-memory-browser").inner_text()

            # expand on demand: the whole passage, paragraphs kept
            first = page.locator(".fh-mb-row:visible").nth(0)
            first.locator("summary").click()
            full = first.locator(".fh-mb-full")
            full.wait_for(state="visible")
            assert full.bounding_box()["height"] > 3 * 20
            assert "Third paragraph." in full.inner_text()

            # select two rows in the table and forget them, confirming the count
            chosen = [page.locator(".fh-mb-row:visible").nth(i) for i in (1, 3)]
            gone = [r.locator(".fh-mb-cell").get_attribute("data-id") for r in chosen]
            for r in chosen:
                r.locator(".fh-mb-check input").check()
            forget = page.locator(".fh-mb-forget")
            page.wait_for_function(
                "document.querySelector('.fh-mb-forget').innerText.includes('(2)')", timeout=10_000)
            forget.click()
            confirm = page.locator(".fh-mb-confirm")
            confirm.wait_for(state="visible")
            assert "Forget 2" in confirm.inner_text()
            page.screenshot(path=str(shot.with_name(shot.stem + "-confirm.png")))
            confirm.click()
            page.wait_for_function(
                "document.querySelector('.fh-mb-status').innerText.includes('forgot 2 memories')",
                timeout=10_000)
            assert f"of {N - 2} memories" in label.inner_text()
            assert rows.count() == PAGE

            # the next page
            page.locator(".fh-memory-browser button", has_text="Next").click()
            page.wait_for_function(
                "document.querySelector('.fh-mb-page').innerText.startsWith('Page 2 of 3')",
                timeout=10_000)
            page.screenshot(path=str(shot))

            # a narrow window: rows stay inside the cell (ipywidgets' HTML box used to grow to the
            # passage's full width and scroll the checkbox out of sight), the passage keeps room
            page.set_viewport_size({"width": 1000, "height": 1000})
            first.locator("summary").click()  # expanded rows too
            page.wait_for_timeout(300)
            fit = page.evaluate(
                "[...document.querySelectorAll('.fh-mb-row')].filter(r => r.offsetParent)"
                ".map(r => [r.scrollWidth - r.clientWidth, r.scrollLeft,"
                " r.querySelector('.fh-mb-check').getBoundingClientRect().width,"
                " r.querySelector('.fh-mb-text').getBoundingClientRect().width])")
            assert len(fit) == PAGE
            assert all(over == 0 and left == 0 and box > 0 and text >= 150
                       for over, left, box, text in fit), fit
            page.screenshot(path=str(shot.with_name(shot.stem + "-narrow.png")))
        finally:
            browser.close()

    left = set(Store(store_path).memories(limit=None)["id"])
    assert left == set(ids) - set(gone) and len(left) == N - 2
