"""The sandbox for code the model (or the analyst) asks to run.

    run_code(code, host=…) -> SandboxResult      run_file(path, …)      arun_code(…)
    limits_for(host) -> SandboxLimits            probe() -> Probe (tier, reason)

Tiers and what each isolates are described in ``tiers``; limits in ``limits``.
"""

from __future__ import annotations

from .limits import SandboxLimits, limits_for
from .result import SandboxFile, SandboxResult, gate
from .runner import arun_code, run_code, run_file
from .tiers import BUBBLEWRAP, LEVEL_TEXT, RLIMITS, Probe, probe

__all__ = [
    "BUBBLEWRAP",
    "LEVEL_TEXT",
    "Probe",
    "RLIMITS",
    "SandboxFile",
    "SandboxLimits",
    "SandboxResult",
    "arun_code",
    "gate",
    "limits_for",
    "probe",
    "run_code",
    "run_file",
]
