"""fourhosts-jupyter: the Four Hosts research assistant for JupyterLab.

    %load_ext fourhosts_jupyter
    %%research --effort high
    How should a mid-size city cut traffic deaths in half within five years?

Names are imported lazily (on first attribute access) so that ``import fourhosts_jupyter``
and ``%load_ext`` stay fast; torch, sentence-transformers and faiss load on first use.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# public name → module that defines it
_EXPORTS: dict[str, str] = {
    "Answer": "answer",
    "Budget": "schedule.budget",
    "BudgetExceeded": "errors",
    "BlendResult": "blending",
    "Classification": "classifier",
    "Comparison": "comparison",
    "ConfigError": "errors",
    "Effort": "classifier",
    "Engine": "engine",
    "Explorer": "jupyter.explorer",
    "FourHostsError": "errors",
    "HostParadigm": "paradigms",
    "MemoryBrowser": "jupyter.browser",
    "PROFILES": "paradigms",
    "ParadigmAwareToolContext": "tools.context",
    "ProviderError": "errors",
    "RunError": "errors",
    "Scheduler": "schedule.scheduler",
    "Settings": "config",
    "Source": "events",
    "StorageError": "errors",
    "Store": "memory.store",
    "ToolError": "errors",
    "ToolRegistry": "tools.registry",
    "Usage": "events",
    "abatch": "api",
    "acompare": "api",
    "aresearch": "api",
    "batch": "api",
    "blend": "api",
    "cite": "citations",
    "classify": "classifier",
    "compare": "api",
    "explore": "jupyter.explorer",
    "ingest": "memory.ingest",
    "list_batches": "schedule.batch",
    "rate": "api",
    "register": "tools.registry",
    "register_table": "tools.analysis",
    "research": "api",
    "tool": "tools.registry",
}

__all__ = sorted([*_EXPORTS, "load_ipython_extension", "unload_ipython_extension"])


def __getattr__(name: str) -> "_typing.Any":
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fourhosts_jupyter' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: "_typing.Any") -> None:
    """``%load_ext fourhosts_jupyter``: register the magics (nothing heavy is imported)."""
    from .jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: "_typing.Any") -> None:
    from .jupyter import magics

    if hasattr(magics, "unload_ipython_extension"):
        magics.unload_ipython_extension(ipython)


if _typing.TYPE_CHECKING:  # for type checkers and IDEs only
    from .answer import Answer
    from .api import abatch, acompare, aresearch, batch, blend, compare, rate, research
    from .blending import BlendResult
    from .citations import cite
    from .classifier import Classification, Effort, classify
    from .comparison import Comparison
    from .config import Settings
    from .engine import Engine
    from .errors import (
        BudgetExceeded,
        ConfigError,
        FourHostsError,
        ProviderError,
        RunError,
        StorageError,
        ToolError,
    )
    from .events import Source, Usage
    from .jupyter.browser import MemoryBrowser
    from .memory.ingest import ingest
    from .memory.store import Store
    from .paradigms import PROFILES, HostParadigm
    from .schedule.batch import list_batches
    from .schedule.budget import Budget
    from .schedule.scheduler import Scheduler
    from .tools.analysis import register_table
    from .tools.context import ParadigmAwareToolContext
    from .tools.registry import ToolRegistry, register, tool
