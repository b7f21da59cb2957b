"""Tools the model can call: registry (schemas from functions), runner (timeouts, breakers,
retries, fallbacks), the injected paradigm context and the built-in memory tools."""

from __future__ import annotations

from .context import ParadigmAwareToolContext, ToolHistory, ToolResult, tool_history
from .registry import Tool, ToolRegistry, default_registry, register, tool
from .runner import CircuitBreaker, ToolOutcome, ToolRunner

__all__ = [
    "CircuitBreaker",
    "ParadigmAwareToolContext",
    "Tool",
    "ToolHistory",
    "ToolOutcome",
    "ToolRegistry",
    "ToolResult",
    "ToolRunner",
    "default_registry",
    "register",
    "tool",
    "tool_history",
]
