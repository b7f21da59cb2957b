"""The Isolate layer: code the model asks to run is contained in the sandbox (brief §3.4).

In the original this layer was simulated (no code ever ran). Here ``run_python`` (tools/analysis)
runs model code through :func:`isolate`, with the host's sandbox profile; the engine's isolate
step reports which isolation tier this machine provides (:func:`layer_detail`), so the analyst
sees up front when only the weaker tier is available.

    result = isolate("print(1)", host="bernard")      # SandboxResult
    result = await aisolate(code, host=…)
    gate(text)                                        # the >10,000-character digest rule
"""

from __future__ import annotations

from typing import Mapping

from ..paradigms import HostParadigm
from ..sandbox import SandboxResult, arun_code, gate, limits_for, probe, run_code
from ..sandbox.runner import WEAK_TIER_ENV, model_code_refused

__all__ = ["aisolate", "gate", "isolate", "layer_detail"]


def isolate(
    code: str,
    *,
    host: HostParadigm | str | None = None,
    allow_network: bool | None = None,
    files: Mapping[str, bytes | str] | None = None,
) -> SandboxResult:
    """Run ``code`` in the sandbox with ``host``'s profile (default: the secure profile)."""
    return run_code(code, host=host, allow_network=allow_network, files=files)


async def aisolate(
    code: str,
    *,
    host: HostParadigm | str | None = None,
    allow_network: bool | None = None,
    files: Mapping[str, bytes | str] | None = None,
) -> SandboxResult:
    """Async twin of :func:`isolate`."""
    return await arun_code(code, host=host, allow_network=allow_network, files=files)


def layer_detail(host: HostParadigm | str | None = None) -> str:
    """One line for the isolate step: tier and the host's limits, e.g.
    ``bubblewrap · 3072 MB · 240 s · network off · maximum``."""
    p = probe()
    lim = limits_for(host)
    net = "network on" if lim.network else "network off"
    tier = p.isolation_level + (f" ({p.reason})" if p.reason else "")
    if model_code_refused():
        tier += f" · model code refused ({WEAK_TIER_ENV}=1 allows it)"
    return f"{tier} · {lim.memory_mb} MB · {lim.timeout_s:g} s · {net} · {lim.level}"
