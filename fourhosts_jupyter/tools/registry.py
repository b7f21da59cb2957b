"""Tools built from plain Python functions.

    @fh.tool
    def city_population(city: str, year: int = 2024) -> int:
        '''Population of a city.

        Args:
            city: the city's name
            year: census year
        '''

The JSON schema comes from the signature, the type hints and the docstring (through pydantic);
the model is offered the ``openai`` SDK's own tool param shape; arguments are validated before
the call. ``register`` works as a decorator (with or without options) or as a plain call and
returns the function unchanged, so it stays callable in the notebook.

A process-wide :func:`default_registry` holds the built-ins and whatever the analyst registers,
so a tool defined in one cell is offered to the next ``%%research``. What a run offers is
filtered per host: built-ins only if the host's profile lists them, the analyst's tools always.
"""

from __future__ import annotations

import inspect
import re
import threading
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pydantic

from ..errors import ConfigError, ToolArgumentsError
from ..paradigms import HostParadigm
from .context import ParadigmAwareToolContext

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONTEXT_NAME = ParadigmAwareToolContext.__name__


@dataclass(frozen=True)
class Tool:
    """A function the model can call, with its schema and how to call it."""

    name: str
    description: str
    fn: Callable[..., Any]
    parameters: dict[str, Any]  # JSON schema (object)
    args_model: type[pydantic.BaseModel]
    is_async: bool
    context_param: str | None = None  # injected, never in the schema
    timeout: float | None = None  # seconds before the host multiplier; None → runner default
    retries: int | None = None  # extra attempts for retryable errors; None → runner default
    builtin: bool = False
    arg_names: tuple[str, ...] = ()

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        builtin: bool = False,
    ) -> Tool:
        if not callable(fn):
            raise ConfigError(f"{fn!r} is not a function: register a function or a coroutine function")
        name = name or getattr(fn, "__name__", "")
        if not _NAME.match(name or ""):
            raise ConfigError(
                f"tool name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-' "
                "(pass name=… when registering a lambda)"
            )
        summary, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
        sig = inspect.signature(fn)
        hints = _hints(fn)
        fields: dict[str, Any] = {}
        context_param = None
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue  # *args / **kwargs cannot be described to a model
            ann = hints.get(p.name, p.annotation)
            if _is_context(ann):
                context_param = p.name
                continue
            if ann is inspect.Parameter.empty:
                ann = Any
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (ann, pydantic.Field(default, description=arg_docs.get(p.name)))
        try:
            model = pydantic.create_model(  # type: ignore[call-overload]
                f"{name}_arguments",
                __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                **fields,
            )
            schema = model.model_json_schema()
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
            raise ConfigError(
                f"cannot describe tool {name!r} to a model: {exc}. Use JSON-friendly type hints "
                "(str, int, float, bool, list, dict, Literal, pydantic models)"
            ) from None
        return cls(
            name=name,
            description=(description or summary or f"The {name} tool.").strip(),
            fn=fn,
            parameters=_clean_schema(schema),
            args_model=model,
            is_async=inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__),
            context_param=context_param,
            timeout=timeout,
            retries=retries,
            builtin=builtin,
            arg_names=tuple(fields),
        )

    def param(self) -> dict[str, Any]:
        """The tool as ``openai.types.chat.ChatCompletionToolParam`` (a TypedDict, i.e. a dict)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated keyword arguments, or ToolArgumentsError saying what is wrong."""
        try:
            parsed = self.args_model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or '(arguments)'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: {problems}. Expected parameters: "
                f"{', '.join(self.arg_names) or '(none)'}"
            ) from None
        return {k: getattr(parsed, k) for k in self.arg_names}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class ToolRegistry:
    """Named tools. Thread-safe; re-registering a name replaces the tool (re-run cells)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._lock = threading.Lock()
        for t in tools:
            self._tools[t.name] = t
        from .runner import Breakers  # the breakers live as long as the registry

        self.breakers = Breakers()

    def register(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        builtin: bool = False,
    ) -> Any:
        """Register ``fn`` (decorator with or without options, or a call); returns ``fn``."""
        if fn is None:
            return lambda f: self.register(
                f, name=name, description=description, timeout=timeout, retries=retries, builtin=builtin
            )
        t = Tool.from_function(fn, name=name, description=description, timeout=timeout,
                               retries=retries, builtin=builtin)
        with self._lock:
            self._tools[t.name] = t
        self.breakers.reset(t.name)  # a new definition deserves a fresh breaker
        return fn

    tool = register

    def add(self, tool: Tool) -> Tool:
        with self._lock:
            self._tools[tool.name] = tool
        return tool

    def unregister(self, name: str) -> bool:
        with self._lock:
            return self._tools.pop(name, None) is not None

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self):  # noqa: ANN204
        return iter(list(self._tools.values()))

    def names(self) -> list[str]:
        return sorted(self._tools)

    def for_host(self, host: HostParadigm | str | None) -> list[Tool]:
        """What a run for ``host`` offers: the profile's built-ins that exist, plus the analyst's
        tools. Unknown names in a profile are simply not offered. ``None`` → everything."""
        tools = list(self._tools.values())
        if host is None:
            return tools
        from .host_tools import host_tools  # the profile's names, with the web tools they stand for

        allowed = set(host_tools(host))
        return [t for t in tools if not t.builtin or t.name in allowed]

    def params(self, host: HostParadigm | str | None = None) -> list[dict[str, Any]]:
        return [t.param() for t in self.for_host(host)]

    def copy(self) -> ToolRegistry:
        return ToolRegistry(self._tools.values())

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self.names())})"


_default: ToolRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ToolRegistry:
    """The process-wide registry: built-ins plus everything registered with ``fh.tool``."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from .builtins import register_builtins

                reg = ToolRegistry()
                register_builtins(reg)
                _default = reg
    return _default


def tool(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Register a function in the default registry: ``@fh.tool`` or ``@fh.tool(timeout=5)``."""
    return default_registry().register(fn, **options)


def register(fn: Callable[..., Any], /, **options: Any) -> Callable[..., Any]:
    """Call form of :func:`tool`: ``fh.register(my_function)``."""
    return default_registry().register(fn, **options)


# -- helpers ---------------------------------------------------------------------------------


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolved forward references: fall back per parameter
        out: dict[str, Any] = {}
        globalns = getattr(fn, "__globals__", {})
        for pname, ann in getattr(fn, "__annotations__", {}).items():
            if isinstance(ann, str):
                if _CONTEXT_NAME in ann:
                    out[pname] = ParadigmAwareToolContext
                    continue
                try:
                    ann = eval(ann, dict(globalns), {"typing": typing})  # noqa: S307 - the analyst's own annotation
                except Exception:  # noqa: BLE001
                    ann = Any
            out[pname] = ann
        return out


def _is_context(ann: Any) -> bool:
    if ann is ParadigmAwareToolContext:
        return True
    if isinstance(ann, str):
        return _CONTEXT_NAME in ann
    if getattr(ann, "__name__", None) == _CONTEXT_NAME:  # a reloaded module's class
        return True
    return any(_is_context(a) for a in typing.get_args(ann) if a is not type(None))


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles (noise to a model); keep everything else."""

    def walk(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            return {
                k: walk(v, in_properties=(k == "properties"))
                for k, v in node.items()
                if not (k == "title" and not in_properties and isinstance(v, str))
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = walk(schema)
    out.setdefault("properties", {})
    out["type"] = "object"
    return out


_ARGS_HEAD = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args)\s*:?\s*$", re.I)
_OTHER_HEAD = re.compile(r"^(Returns?|Yields?|Raises?|Examples?|Notes?|See Also|Attributes|Warnings?)\s*:?\s*$", re.I)
_SPHINX = re.compile(r"^:param\s+(?:[\w\[\], ]+\s+)?(\w+)\s*:\s*(.*)$")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from Google-, Sphinx- or NumPy-style docstrings."""
    lines = doc.splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    mode = "summary"  # summary | args | sphinx | other
    numpy = False
    current: str | None = None
    arg_indent: int | None = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if line and set(line) == {"-"}:
            continue  # a NumPy section underline
        if _ARGS_HEAD.match(line) and (line.endswith(":") or underlined):
            mode, numpy, current, arg_indent = "args", underlined, None, None
            continue
        if _OTHER_HEAD.match(line) and (line.endswith(":") or underlined):
            mode, current = "other", None
            continue
        m = _SPHINX.match(line)
        if m is not None:
            mode, current = "sphinx", m.group(1)
            args[current] = m.group(2).strip()
            continue
        if mode == "summary":
            summary.append(line)
        elif mode == "sphinx":
            if line.startswith(":"):
                mode, current = "other", None
            elif line and current:
                args[current] = (args[current] + " " + line).strip()
        elif mode == "args" and line:
            if arg_indent is None:
                arg_indent = indent
            m = _ARG_LINE.match(line)
            if indent <= arg_indent and m is not None:
                current = m.group(1)
                args[current] = "" if numpy else m.group(2).strip()  # NumPy: "name : type"
            elif indent <= arg_indent and numpy:
                current = line.split(":")[0].strip()
                args[current] = ""
            elif current is not None:
                args[current] = (args[current] + " " + line).strip()
    paragraphs = re.split(r"\n\s*\n", "\n".join(summary).strip())
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return text, {k: v for k, v in args.items() if v}
