"""Model-requested code and the weaker sandbox tier (issue 17 point 3).

Under the weaker tier with no private uid the code runs as this user and can read this
process's environment through /proc/<parent>/environ: model code is refused there unless the
analyst opts in (FOURHOSTS_SANDBOX_ALLOW_WEAK=1), and every result says what the code could reach.
"""

from __future__ import annotations

import json
import os

import pytest
from system_packages import require

from fourhosts_jupyter.errors import SandboxError, ToolError
from fourhosts_jupyter.sandbox import BUBBLEWRAP, RLIMITS, SandboxLimits, run_code
from fourhosts_jupyter.sandbox import runner
from fourhosts_jupyter.sandbox.runner import WEAK_TIER_ENV
from fourhosts_jupyter.sandbox.tiers import TIER_ENV
from fourhosts_jupyter.tools.analysis import run_python

KEY = "sk-test-parent-key-must-stay-home"
SMALL = SandboxLimits(memory_mb=256, timeout_s=10, processes=32, level="maximum")
READ_PARENT = "import os\ntry:\n    print(open(f'/proc/{os.getppid()}/environ', 'rb').read().decode('latin-1'))\n" \
              "except OSError as e:\n    print(type(e).__name__)\n"


def _own_environ() -> str:
    with open(f"/proc/{os.getpid()}/environ", "rb") as fh:
        return fh.read().decode("latin-1")


@pytest.fixture
def weak_same_uid(monkeypatch):
    """The weaker tier as on a machine without bubblewrap: no private uid for the code (as for
    any non-root user, or root whose interpreter other uids cannot run)."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv(WEAK_TIER_ENV, raising=False)
    monkeypatch.setattr(runner, "interpreter_reachable_by_others", lambda: False)


def test_model_code_is_refused_on_the_weak_tier_by_default(weak_same_uid, monkeypatch):
    monkeypatch.setenv(TIER_ENV, RLIMITS)
    with pytest.raises(ToolError) as err:
        run_python(READ_PARENT)
    assert WEAK_TIER_ENV in str(err.value) and "bubblewrap" in str(err.value)
    with pytest.raises(SandboxError, match=WEAK_TIER_ENV):
        run_code(READ_PARENT, limits=SMALL, tier=RLIMITS, for_model=True)


def test_with_the_opt_in_model_code_runs_and_the_result_says_what_it_could_reach(weak_same_uid, monkeypatch):
    monkeypatch.setenv(TIER_ENV, RLIMITS)
    monkeypatch.setenv(WEAK_TIER_ENV, "1")
    result = run_python(READ_PARENT)
    assert result["status"] == "ok"
    reach = " ".join(result["could_reach"])
    assert "API keys" in reach and "/proc/<pid>/environ" in reach and "network" in reach
    assert any("could reach" in n for n in result["notes"])
    # the honest reason for the refusal: the code read this process's environment
    assert result["stdout"].rstrip("\n") == _own_environ()


def test_the_analysts_own_code_runs_on_the_weak_tier_and_is_told_its_reach(weak_same_uid):
    r = run_code("print('mine')", limits=SMALL, tier=RLIMITS)
    assert r.ok and r.stdout == "mine\n"
    assert "API keys" in " ".join(r.could_reach)
    assert json.loads(json.dumps(r.to_dict()))["could_reach"] == list(r.could_reach)


def test_the_strong_tier_runs_model_code_and_keeps_the_key_home(weak_same_uid):
    require("bwrap", "bubblewrap")
    result = run_python(READ_PARENT)
    assert result["status"] == "ok" and result["isolation_level"] == BUBBLEWRAP
    assert result["could_reach"] == []
    assert KEY not in result["stdout"] and _own_environ() not in result["stdout"]


def test_the_isolate_step_says_up_front_that_model_code_would_be_refused(weak_same_uid, monkeypatch):
    from fourhosts_jupyter.context.isolate import layer_detail

    monkeypatch.setenv(TIER_ENV, RLIMITS)
    assert f"model code refused ({WEAK_TIER_ENV}=1 allows it)" in layer_detail("bernard")
    monkeypatch.setenv(WEAK_TIER_ENV, "1")
    assert "refused" not in layer_detail("bernard")
