"""The explorer's Compare button streams the live grid, as ``%%research --compare`` does (the
loaded magics' settings and view), then leaves the final grid in its output area."""

from __future__ import annotations

from IPython.utils.capture import capture_output

from fourhosts_jupyter.bench._view_bytes import KernelTraffic
from fourhosts_jupyter.jupyter.explorer import Explorer
from fourhosts_jupyter.paradigms import HOSTS
from test_explorer import TWO

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_the_compare_button_streams_the_live_grid_then_the_final_grid(kernel_shell):
    # a kernel's comm (KernelTraffic installs one, as ipykernel does), the offline engine
    ex = Explorer(TWO)
    with KernelTraffic() as t:
        ex.widget()
        for _ in range(2):  # a second click starts afresh
            comparison = ex.compare()
    assert ex.last_action == "compare"
    assert sorted(h.value for h in comparison.answers) == sorted(h.value for h in HOSTS)
    # the output area's list as the front-end got it: the live grid (a widget), then the final grid
    sent = [c["data"]["state"]["outputs"] for (k, _, _), c in zip(t.messages, t.contents)
            if k == "comm_msg" and "outputs" in c["data"].get("state", {})]  # fmt: skip
    live = [o for o in sent if o and WIDGET_VIEW in o[0]["data"]]
    assert live and live[0][0]["data"]["text/plain"].startswith("Compare: ")
    # the front-end's Output widget ignores update_display_data: the swap is in its list
    [final] = ex.output.outputs
    assert list(sent[-1]) == [final] and WIDGET_VIEW not in final["data"]
    assert 'class="fh-compare-grid fh-n4"' in final["data"]["text/html"]
    assert t.count("comm_close") > 0  # the live grid's widgets were closed


def test_without_the_magics_the_compare_button_shows_the_finished_comparison(tmp_path, monkeypatch):
    from fourhosts_jupyter.jupyter import explorer

    monkeypatch.setattr(explorer, "_research_magics", lambda: None)  # a plain Python session
    ex = Explorer(TWO, store=str(tmp_path / "s.duckdb"))
    with capture_output() as cap:
        comparison = ex.compare()
    assert len(comparison.answers) == 4
    [shown] = cap.outputs
    assert not shown.update and 'class="fh-compare-grid fh-n4"' in shown.data["text/html"]
