"""The rating row under a live answer, in JupyterLab with headless chromium: a real
``%%research`` run streams, the row appears under it, a typed note and a click on "4" reach
the kernel's callback and the store.

Skips naming the package when chromium or playwright is missing (``FOURHOSTS_REQUIRE_SYSTEM=1``
turns that into a failure), like tests/test_browser_ui.py whose JupyterLab fixture it uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import test_browser_ui

lab = test_browser_ui.lab  # the JupyterLab + chromium fixture, shared

SOURCE = """\
import os
os.environ["FOURHOSTS_HOME"] = {home!r}
os.environ["FOURHOSTS_LIVE"] = "1"
%load_ext fourhosts_jupyter
"""
QUESTION = "%%research -p maeve -e low\nWhich database technology should we pick for our analytics software?"


def _notebook(path: Path, home: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
              "outputs": [], "source": src}
             for i, src in enumerate([SOURCE.format(home=str(home)), QUESTION])]  # fmt: skip
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}}
    path.write_text(json.dumps(nb))


def test_rating_a_live_answer_in_jupyterlab(lab, tmp_path):
    from fourhosts_jupyter import learning
    from fourhosts_jupyter.memory.store import Store

    home = tmp_path / "home"
    home.mkdir()
    _notebook(tmp_path / "rate.ipynb", home)
    base, token, chromium, sync_playwright = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            test_browser_ui.open_and_run(page, base, token, "rate.ipynb")
            row = page.locator(".fh-rating")
            row.wait_for(timeout=180_000)  # first run: model load and the demo corpus seeded
            assert "Sources" in page.locator(".jp-OutputArea").last.inner_text()
            assert page.locator(".fh-rating-button").all_inner_texts() == ["1", "2", "3", "4", "5"]
            page.locator(".fh-rating-note input").fill("good trade-offs")
            page.locator(".fh-rating-button", has_text="4").click()
            page.wait_for_function(
                "document.querySelector('.fh-rating-status').innerText.includes('rated 4/5 with a note')",
                timeout=20_000)
        finally:
            browser.close()

    store = Store(home / "store.duckdb")
    (run_id,) = store.runs()["id"]
    assert learning.ratings(store) == {run_id: 4}
    with store.connect() as con:
        assert con.execute("SELECT comment FROM feedback").fetchall() == [("good trade-offs",)]
