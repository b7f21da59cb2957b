"""Which provider answers a run. Minimal: offline only (the LLM helper extends this)."""

from __future__ import annotations

from ..config import Settings
from .base import Provider
from .offline import OfflineProvider


def resolve_provider(settings: Settings, embedder=None) -> Provider:  # noqa: ANN001
    return OfflineProvider(embedder)
