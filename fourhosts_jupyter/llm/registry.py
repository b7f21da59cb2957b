"""Which provider answers a run: the provider plugins, the choice, and the fallback chain.

Providers register through one hook, the same one a third-party package uses:

    from fourhosts_jupyter.llm.registry import register_provider

    @register_provider("my-llm")
    def make(settings, embedder):          # -> a Provider, or None if not configured
        ...

or, from another distribution, an entry point in the group ``fourhosts_jupyter.providers``
whose object is such a factory (its entry-point name is the provider name). The built-ins
(offline, openai, azure, compatible) are registered the same way.

The choice: ``settings.provider`` (``FOURHOSTS_PROVIDER``) names one provider or a fallback
chain such as ``azure,openai,offline``. Unset, it is automatic: a base URL means a compatible
server (or OpenAI itself); otherwise Azure if its endpoint and key are set, then OpenAI if its
key is set — both, in that order, as a chain — and offline when nothing is configured. When a
provider in a chain fails before it has streamed anything, the next one takes over and the
switch is shown as a Notice event.
"""

from __future__ import annotations

import os
import threading
from typing import Any, AsyncIterator, Callable

from ..config import Settings
from ..errors import ConfigError, ProviderError
from ..events import Notice
from .base import ModelRequest, Provider, ProviderEvent

Factory = Callable[[Settings, Any], "Provider | None"]
ENTRY_POINT_GROUP = "fourhosts_jupyter.providers"

_factories: dict[str, Factory] = {}
_lock = threading.Lock()
_plugins_loaded = False


def register_provider(name: str, factory: Factory | None = None) -> Any:
    """Register a provider factory under ``name`` (decorator or call). Returns the factory."""
    if factory is None:
        return lambda f: register_provider(name, f)
    key = name.strip().lower()
    if not key or "," in key:
        raise ConfigError(f"provider name {name!r} is not allowed: one word, no commas")
    with _lock:
        _factories[key] = factory
    return factory


def provider_names() -> list[str]:
    _load_plugins()
    return sorted(_factories)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    _register_builtins()
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_provider(ep.name, ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the package
            import logging

            logging.getLogger(__name__).warning("provider plugin %s could not load: %s", ep.name, exc)


# -- the built-in plugins --------------------------------------------------------------------


def _register_builtins() -> None:
    register_provider("offline", _offline)
    register_provider("openai", _openai)
    register_provider("azure", _azure)
    register_provider("compatible", _compatible)


def _offline(settings: Settings, embedder: Any) -> Provider:
    from .offline import OfflineProvider

    return OfflineProvider(embedder)


def _common(settings: Settings) -> dict[str, Any]:
    reasoning = settings.extra.get("reasoning")
    if reasoning is None and os.environ.get("FOURHOSTS_REASONING"):
        reasoning = os.environ["FOURHOSTS_REASONING"].strip().lower() in ("1", "true", "yes")
    return {
        "request_timeout": settings.request_timeout,
        "stream_idle_timeout": settings.stream_idle_timeout,
        "max_retries": settings.max_retries,
        "reasoning": reasoning,
        "prices": settings.prices,
    }


def _provider_class(settings: Settings) -> Any:
    """The Chat Completions provider, or the Responses one (``settings.api``)."""
    if settings.api == "responses":
        from .openai_responses import OpenAIResponsesProvider

        return OpenAIResponsesProvider
    from .openai_chat import OpenAIChatProvider

    return OpenAIChatProvider


def _is_openai_url(url: str | None) -> bool:
    return not url or "api.openai.com" in url


def _openai(settings: Settings, embedder: Any) -> Provider | None:
    make = _provider_class(settings)

    key = os.environ.get("OPENAI_API_KEY")
    if not _is_openai_url(settings.base_url):
        return _compatible(settings, embedder)
    if not key:
        return None
    return make("openai", model=settings.model, api_key=key, base_url=settings.base_url,
                              **_common(settings))


def _compatible(settings: Settings, embedder: Any) -> Provider | None:
    make = _provider_class(settings)

    if not settings.base_url:
        return None
    # A local server usually needs no key; if OPENAI_API_KEY is set it is sent, as the client would.
    return make("compatible", model=settings.model, api_key=os.environ.get("OPENAI_API_KEY"),
                              base_url=settings.base_url, **_common(settings))


def _azure(settings: Settings, embedder: Any) -> Provider | None:
    make = _provider_class(settings)

    key = os.environ.get("AZURE_OPENAI_API_KEY")
    if not settings.azure_endpoint or not key:
        return None
    return make(
        "azure",
        model=_azure_deployment(settings),
        api_key=key,
        azure_endpoint=settings.azure_endpoint,
        api_version=settings.api_version,
        **_common(settings),
    )


def _azure_deployment(settings: Settings) -> str | None:
    """An explicit ``--model`` wins; then AZURE_OPENAI_DEPLOYMENT; then FOURHOSTS_MODEL."""
    from_env = os.environ.get("FOURHOSTS_MODEL") or None
    explicit = settings.model if settings.model and settings.model != from_env else None
    return explicit or settings.azure_deployment or settings.model


_MISSING = {
    "openai": "OPENAI_API_KEY is not set: export it (or put it in .env), or pass --base-url for a local server",
    "azure": "Azure OpenAI needs AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY: set both",
    "compatible": "a compatible server needs a base URL: pass --base-url URL or set OPENAI_BASE_URL",
}


# -- choosing ---------------------------------------------------------------------------------


def provider_chain(settings: Settings) -> list[str]:
    """The provider names to try, in order, for these settings."""
    if settings.provider:
        names = [n.strip().lower() for n in settings.provider.split(",") if n.strip()]
        if names:
            return names
    if settings.base_url:
        return ["openai" if _is_openai_url(settings.base_url) else "compatible"]
    chain = []
    if settings.azure_endpoint and os.environ.get("AZURE_OPENAI_API_KEY"):
        chain.append("azure")
    if os.environ.get("OPENAI_API_KEY"):
        chain.append("openai")
    return chain or ["offline"]


def resolve_provider(settings: Settings, embedder: Any = None) -> Provider:
    """The provider for a run: one provider, or a FallbackProvider over a chain."""
    _load_plugins()
    names = provider_chain(settings)
    providers: list[Provider] = []
    skipped: list[str] = []
    for name in names:
        factory = _factories.get(name)
        if factory is None:
            known = ", ".join(sorted(_factories))
            raise ConfigError(f"unknown provider {name!r}: use one of {known} (or a comma-separated chain)")
        p = factory(settings, embedder)
        if p is None:
            skipped.append(_MISSING.get(name, f"provider {name!r} is not configured"))
        else:
            providers.append(p)
    if not providers:
        raise ConfigError("; ".join(skipped) + " (or use FOURHOSTS_PROVIDER=offline)")
    if len(providers) == 1:
        return providers[0]
    return FallbackProvider(providers)


class FallbackProvider:
    """Tries providers in order; switches when one fails before streaming anything.

    Once a provider failed, later rounds of the same run start with the one that worked.
    A failure after text was streamed is raised (a partial answer is not silently replaced).
    """

    def __init__(self, providers: list[Provider]) -> None:
        if not providers:
            raise ConfigError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self._active = 0

    @property
    def active(self) -> Provider:
        return self.providers[self._active]

    @property
    def name(self) -> str:
        return self.active.name

    @property
    def model(self) -> str:
        return self.active.model

    @property
    def offline(self) -> bool:
        return self.active.offline

    @property
    def api(self) -> str | None:
        return getattr(self.active, "api", None)

    @property
    def chain(self) -> str:
        return " → ".join(p.name for p in self.providers)

    def __repr__(self) -> str:
        return f"FallbackProvider({self.chain}; active={self.name})"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent | Notice]:
        while True:
            provider = self.active
            streamed = False
            try:
                async for ev in provider.stream(request):
                    if not isinstance(ev, Notice):
                        streamed = True
                    yield ev
                return
            except ProviderError as exc:
                if streamed or self._active + 1 >= len(self.providers):
                    raise
                self._active += 1
                nxt = self.active
                yield Notice(
                    f"{provider.name} ({provider.model}) failed: {exc}. Switched to "
                    f"{nxt.name} ({nxt.model or 'default model'}).",
                    "warning",
                )

    async def aclose(self) -> None:
        for p in self.providers:
            await p.aclose()
