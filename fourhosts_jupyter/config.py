"""Settings: from the environment (and a ``.env`` file), overridable per call.

Keys are read here and handed to the ``openai`` client; they are never stored, logged or
rendered. ``key_status()`` tells whether each key variable is set, without its value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .llm.prices import PRICES_VARIABLE, Price, parse_prices
from .quality.policy import QualityPolicy

KEY_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")
SETTING_VARIABLES = (
    "FOURHOSTS_HOME",
    "FOURHOSTS_PROVIDER",
    "FOURHOSTS_MODEL",
    "OPENAI_BASE_URL",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_DEPLOYMENT",
    "OPENAI_API_VERSION",
    "FOURHOSTS_PRICES",
    "FOURHOSTS_API",
    "FOURHOSTS_LEARNING",
    "FOURHOSTS_WEB_SEARCH_TTL",
    "FOURHOSTS_WEB_PAGE_TTL",
)
APIS = ("chat", "responses")

_dotenv_loaded = False


def load_dotenv_once() -> None:
    """Read ``.env`` from the working directory (never overriding the real environment)."""
    global _dotenv_loaded
    if _dotenv_loaded or os.environ.get("FOURHOSTS_DOTENV") == "0":
        return
    _dotenv_loaded = True
    try:
        from dotenv import load_dotenv
    except ImportError:  # optional at import time; a declared dependency
        return
    load_dotenv(Path.cwd() / ".env", override=False)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know that is not the question."""

    store_path: Path | None = None  # None → $FOURHOSTS_HOME/store.duckdb or the user data dir
    provider: str | None = None  # offline | openai | azure | compatible; None → auto
    model: str | None = None
    base_url: str | None = None
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    api: str = "chat"  # which OpenAI API a model provider speaks: chat | responses (FOURHOSTS_API)
    max_tool_rounds: int = 5
    request_timeout: float = 120.0  # one model call, seconds
    stage_timeout: float = 60.0  # classify / select / compress / write, seconds
    stream_idle_timeout: float = 60.0  # longest gap between two stream chunks
    max_retries: int = 2  # our retries for a model call (the client's own are off)
    top_k: int = 0  # sources to cite; 0 → from the host's density
    context_tokens: int = 6000  # context for sources, before the host's density share
    learning: bool = True  # adjust routing by the analyst's ratings (FOURHOSTS_LEARNING=0: off)
    # Price overrides, model → Price (USD per 1M tokens), over the list prices in llm.prices;
    # also the only prices a compatible server gets. JSON text or [input, output(, cached)]
    # lists are accepted and normalised.
    prices: dict[str, Price] = field(default_factory=dict)
    # Put question, prompt, answer and tool text on telemetry spans (also FOURHOSTS_OTEL_CONTENT=1)
    otel_content: bool = False
    # How long web search results and read pages stay cached, seconds (brief §2.8: search 1 h;
    # a page a day). FOURHOSTS_WEB_SEARCH_TTL / FOURHOSTS_WEB_PAGE_TTL; 0 turns caching off.
    web_search_ttl: float = 3600.0
    web_page_ttl: float = 86400.0
    # evaluation, self-healing triggers and collaboration (quality/policy.py)
    quality: QualityPolicy = field(default_factory=QualityPolicy.from_env)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Validate early: a bad price should fail when it is set, not at the end of a run.
        object.__setattr__(self, "prices", parse_prices(self.prices, "Settings.prices"))
        api = (self.api or "chat").strip().lower()
        if api not in APIS:
            from .errors import ConfigError

            raise ConfigError(f"unknown API {self.api!r}: use chat or responses (FOURHOSTS_API, --api)")
        object.__setattr__(self, "api", api)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        load_dotenv_once()
        env = os.environ
        base = cls(
            provider=env.get("FOURHOSTS_PROVIDER") or None,
            model=env.get("FOURHOSTS_MODEL") or None,
            base_url=env.get("OPENAI_BASE_URL") or None,
            azure_endpoint=env.get("AZURE_OPENAI_ENDPOINT") or None,
            azure_deployment=env.get("AZURE_OPENAI_DEPLOYMENT") or None,
            api_version=env.get("OPENAI_API_VERSION") or None,
            prices=parse_prices(env.get(PRICES_VARIABLE), PRICES_VARIABLE),
            api=env.get("FOURHOSTS_API") or "chat",
            web_search_ttl=_seconds(env, "FOURHOSTS_WEB_SEARCH_TTL", 3600.0),
            web_page_ttl=_seconds(env, "FOURHOSTS_WEB_PAGE_TTL", 86400.0),
            quality=QualityPolicy.from_env(),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "store_path" in clean:
            from .memory.backends import is_postgres

            if not is_postgres(clean["store_path"]):  # a postgresql:// URL stays as given
                clean["store_path"] = Path(clean["store_path"]).expanduser()
        if "prices" in clean:  # merged over the environment's, per model
            clean["prices"] = {**base.prices, **parse_prices(clean["prices"], "prices")}
        return replace(base, **clean)

    def resolved_store_path(self) -> Path:
        from .memory.backends import STORE_ENV, is_postgres
        from .memory.store import default_store_path

        if self.store_path:
            return self.store_path
        shared = os.environ.get(STORE_ENV)  # a team's store for every command and kernel
        if shared:
            return shared if is_postgres(shared) else Path(shared).expanduser()  # type: ignore[return-value]
        return default_store_path()


def _seconds(env: Any, name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        from .errors import ConfigError

        raise ConfigError(
            f"{name}={raw!r} is not a number of seconds: set it to e.g. 3600, or 0 to turn the cache off"
        )
    return value


def key_status() -> dict[str, bool]:
    """Whether each key variable is set — never the value."""
    load_dotenv_once()
    return {name: bool(os.environ.get(name)) for name in KEY_VARIABLES}
