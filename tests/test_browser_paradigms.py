"""The paradigms notebook in a real browser: JupyterLab on loopback, headless Debian chromium
driven by Playwright. It opens ``NOTEBOOK``, runs every cell, types a new question into the
explorer's text box and sees the host bar change, and finds no JavaScript errors (console errors
or uncaught page errors).

Screenshots go to ``test-artifacts/browser-paradigms/`` at the repository root (override with
``FOURHOSTS_ARTIFACTS=DIR``); their paths are printed in the test report.

Skips naming the package when chromium or playwright is missing; ``FOURHOSTS_REQUIRE_SYSTEM=1``
(set by ``.ci/run``) turns that into a failure. The JupyterLab fixture is test_browser_ui's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import test_browser_ui

lab = test_browser_ui.lab  # the JupyterLab + chromium + playwright fixture, shared

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "04-paradigms.ipynb"
# the suite runs kernels in final mode (FOURHOSTS_LIVE=0, for nbval); this cell streams live, so
# the browser sees the live widget grid (jupyter/grid_live.py) before the final one replaces it
LIVE_CELL = "%env FOURHOSTS_LIVE=1"
COMPARE_CELL = "%%research --compare\nHow should a mid-size city cut traffic deaths in half?"
# Records, from before the compare cell runs, the most live panels seen at once with text in them.
WATCH_LIVE = """(() => {
  window.__fhLivePanels = 0;
  const seen = () => {
    const p = [...document.querySelectorAll('.fh-compare-live-panel')];
    const withText = p.filter(e => e.innerText.trim().length > 0).length;
    window.__fhLivePanels = Math.max(window.__fhLivePanels, withText);
    // the live panels' frames and columns come from the grid's CSS, not Layout widgets
    const grid = document.querySelector('.fh-compare-live-grid');
    if (p.length && grid) {
      const cs = getComputedStyle(p[0]);
      window.__fhLiveFrame = {top: cs.borderTopWidth, color: cs.borderTopColor, display: getComputedStyle(grid).display,
                              columns: getComputedStyle(grid).gridTemplateColumns.split(' ').length};
    }
  };
  new MutationObserver(seen).observe(document.body, {childList: true, subtree: true, characterData: true});
})()"""
BLEND_CELL = "%%research --blend weighted\nHow can a city act fast on road deaths while protecting the most vulnerable?"
# Records the most live part panels with text a blend showed at once, and the live panels the
# explorer's output area showed at once (blend_live.py; the explorer's Compare button). Read from
# the mutation records too, not only the document at callback time: on a loaded machine the lab
# may add and remove a live panel within one task, before the callback runs.
WATCH_MORE = """(() => {
  window.__fhBlendLive = 0; window.__fhExplorerLive = 0;
  const panels = n => n.nodeType === 1 ? [...(n.matches('.fh-compare-live-panel') ? [n] : []),
                                          ...n.querySelectorAll('.fh-compare-live-panel')] : [];
  new MutationObserver(records => {
    // before the explorer's buttons are pressed, live panels are the blend cell's parts
    const found = new Set(document.querySelectorAll('.fh-compare-live-panel'));
    for (const r of records) for (const n of r.addedNodes) for (const p of panels(n)) found.add(p);
    const withText = [...found].filter(e => !e.closest('.fh-explorer-output')
                                           && e.textContent.trim().length > 0).length;
    window.__fhBlendLive = Math.max(window.__fhBlendLive, withText);
    const p = document.querySelectorAll('.fh-explorer-output .fh-compare-live-panel').length;
    window.__fhExplorerLive = Math.max(window.__fhExplorerLive, p);
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
})()"""
NEW_QUESTION = "Why do some cities attract tech firms? Explain the evidence and the causes."
# Console noise that is not ours: the lab asks for optional resources we do not serve.
IGNORED_CONSOLE = ("Failed to load resource", "favicon", "the server responded with a status")


def _artifacts() -> Path:
    path = Path(os.environ.get("FOURHOSTS_ARTIFACTS") or ROOT / "test-artifacts")
    path = path / "browser-paradigms"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kernel_idle(page) -> None:  # noqa: ANN001
    page.wait_for_function(test_browser_ui.KERNEL_IDLE, timeout=120_000)


def _run_all_and_wait(page, base: str, token: str) -> None:  # noqa: ANN001
    test_browser_ui.open_and_run(page, base, token, NOTEBOOK, timeout=60_000, idle_timeout=120_000)
    # every code cell has run when none shows "[*]" and the kernel is idle again
    page.wait_for_function(
        "(() => { const p = [...document.querySelectorAll('.jp-InputPrompt')];"
        " return p.length > 0 && p.every(e => !e.innerText.includes('*'))"
        " && p.filter(e => /\\[\\d+\\]/.test(e.innerText)).length > 0; })()",
        timeout=300_000,
    )
    _kernel_idle(page)


def _new_cell(page, source: str) -> None:  # noqa: ANN001
    """Type ``source`` into a new cell at the end of the notebook and run it."""
    page.evaluate(
        "(() => { const nb = window.jupyterapp.shell.currentWidget.content;"
        " nb.activeCellIndex = nb.widgets.length - 1; })()")
    page.evaluate("window.jupyterapp.commands.execute('notebook:insert-cell-below')")
    page.evaluate("window.jupyterapp.commands.execute('notebook:enter-edit-mode')")
    page.keyboard.type(source)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-cell')")


def _check_blend_and_explorer_compare(page, shots: Path) -> None:  # noqa: ANN001
    """Live (after _check_compare_grid's FOURHOSTS_LIVE=1): a blend cell streams its parts
    through widgets, then leaves the one-HTML blend; the explorer's Compare button
    streams the live grid into its output area, then leaves the final grid there."""
    page.evaluate(WATCH_MORE)
    _new_cell(page, BLEND_CELL)
    page.wait_for_function(
        "(() => { const b = [...document.querySelectorAll('div.fh-blend')].pop();"
        " const a = b && b.querySelector('.fh-blend-answer');"
        " return !!a && a.innerText.trim().length > 0 && b.querySelectorAll('.fh-blend-chip').length === 2; })()",
        timeout=180_000)
    _kernel_idle(page)
    # the parts streamed live (two panels with text) … The offline engine's unified answer comes
    # in one piece just before the end, so whether its live tail is drawn is timing (its
    # streaming is checked on a fake clock in test_blend_live)
    assert page.evaluate("window.__fhBlendLive") == 2
    assert page.locator(".fh-blend-live-answer").count() == 0  # … and gave way to the final blend
    assert page.locator("div.fh-blend").last.locator("details.fh-blend-part").count() == 2
    page.screenshot(path=str(shots / "blend.png"))

    explorer = page.locator(".fh-explorer").first
    explorer.scroll_into_view_if_needed()
    explorer.locator(".fh-explorer-compare").click()
    page.wait_for_function(
        "(() => { const g = document.querySelector('.fh-explorer-output div.fh-compare-grid');"
        " const a = g ? [...g.querySelectorAll('div.fh-compare-panel .fh-answer')] : [];"
        " return a.length === 4 && a.every(e => e.innerText.trim().length > 0); })()",
        timeout=180_000)
    assert page.evaluate("window.__fhExplorerLive") == 4  # the live grid streamed in the output area
    assert page.locator(".fh-explorer-output .fh-compare-live-panel").count() == 0
    page.screenshot(path=str(shots / "explorer-compare.png"))


def _check_compare_grid(page, shots: Path) -> None:  # noqa: ANN001
    """A live `%%research --compare` cell: four live panels with text while it streams, then the
    final grid: four panels, each with a non-empty answer."""
    _new_cell(page, LIVE_CELL)
    _kernel_idle(page)
    page.evaluate(WATCH_LIVE)
    _new_cell(page, COMPARE_CELL)
    grid = page.locator("div.fh-compare-grid").last
    grid.wait_for(timeout=120_000)
    panels = grid.locator("div.fh-compare-panel")
    page.wait_for_function(
        "(() => { const g = [...document.querySelectorAll('div.fh-compare-grid')].pop();"
        " const a = g ? [...g.querySelectorAll('div.fh-compare-panel .fh-answer')] : [];"
        " return a.length === 4 && a.every(e => e.innerText.trim().length > 0); })()",
        timeout=180_000,
    )
    assert panels.count() == 4
    hosts = {panels.nth(i).get_attribute("data-host") for i in range(4)}
    assert hosts == {"dolores", "teddy", "bernard", "maeve"}
    assert page.evaluate("window.__fhLivePanels") == 4  # the live widget grid was drawn, with text
    frame = page.evaluate("window.__fhLiveFrame")  # … framed in each host's colour, 2×2 (or a row)
    assert frame["top"] == "4px" and frame["color"] != "rgba(0, 0, 0, 0)" and frame["display"] == "grid", frame
    assert frame["columns"] in (2, 4), frame
    assert page.locator(".fh-compare-live-panel").count() == 0  # … and replaced by the final grid
    # the four panels in one shot: a viewport tall enough for the 2×2 grid, its top at the top
    page.set_viewport_size({"width": 1400, "height": 2200})
    grid.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # the lab's windowed notebook renders what scrolled in
    page.screenshot(path=str(shots / "compare-grid.png"))


def test_paradigms_notebook_in_jupyterlab(lab, tmp_path):
    base, token, chromium, sync_playwright = lab
    shutil.copyfile(ROOT / "notebooks" / NOTEBOOK, tmp_path / NOTEBOOK)
    shots = _artifacts()
    errors: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}")
                    if msg.type == "error" and not any(s in msg.text for s in IGNORED_CONSOLE)
                    else None)
            _run_all_and_wait(page, base, token)

            explorer = page.locator(".fh-explorer").first
            explorer.wait_for(timeout=60_000)
            bar = explorer.locator(".fh-explorer-bar")
            page.wait_for_function(
                "document.querySelector('.fh-explorer .fh-explorer-bar .fh-hostbar') !== null",
                timeout=60_000)
            before = bar.inner_text()
            assert "Teddy" in before and "%" in before, before
            explorer.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "explorer-before.png"))

            # the analyst types a new question: after the debounce the bar says Bernard
            box = explorer.locator(".fh-explorer-text textarea")
            box.click()
            box.fill("")
            page.keyboard.type(NEW_QUESTION, delay=15)
            page.wait_for_function(
                "document.querySelector('.fh-explorer .fh-explorer-bar').innerText"
                ".includes('Answering as Bernard')",
                timeout=60_000)
            after = bar.inner_text()
            assert after != before
            why = explorer.locator(".fh-explorer-why")
            assert "bernard" in why.inner_text()
            button = explorer.locator(".fh-explorer-research")
            assert "Bernard" in button.inner_text()
            page.screenshot(path=str(shots / "explorer-after-typing.png"))

            _check_compare_grid(page, shots)
            _check_blend_and_explorer_compare(page, shots)
        finally:
            browser.close()

    print(f"screenshots: {shots}")
    assert errors == [], errors
