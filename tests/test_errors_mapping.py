"""Every ``openai`` exception class is mapped to our tree, and the mapping keeps what matters."""

from __future__ import annotations

import inspect

import httpx2
import openai
import pytest

from fourhosts_jupyter.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
)
from fourhosts_jupyter.llm.errors import OPENAI_ERRORS, rejected_parameter, retry_after, to_provider_error

REQUEST = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def _openai_error_classes() -> set[type[BaseException]]:
    found = set()
    for module in (openai, openai._exceptions):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("openai") and not obj.__name__.startswith("_"):
                found.add(obj)
    return found


def test_every_openai_error_class_has_an_explicit_row():
    classes = _openai_error_classes()
    assert openai.RateLimitError in classes and len(classes) >= 15
    missing = sorted(c.__name__ for c in classes if c not in OPENAI_ERRORS)
    assert not missing, f"map these openai exceptions in llm/errors.py: {missing}"
    for ours in OPENAI_ERRORS.values():
        assert issubclass(ours, ProviderError)


def _status_error(cls: type, status: int, headers: dict[str, str] | None = None, message: str = "nope"):
    response = httpx2.Response(status, headers=headers or {}, request=REQUEST,
                               json={"error": {"message": message, "type": "x"}})
    return cls(message, response=response, body={"error": {"message": message}})


@pytest.mark.parametrize(
    ("cls", "status", "ours", "retryable"),
    [
        (openai.RateLimitError, 429, ProviderRateLimited, True),
        (openai.AuthenticationError, 401, ProviderAuthError, False),
        (openai.PermissionDeniedError, 403, ProviderAuthError, False),
        (openai.BadRequestError, 400, ProviderBadRequest, False),
        (openai.NotFoundError, 404, ProviderBadRequest, False),
        (openai.UnprocessableEntityError, 422, ProviderBadRequest, False),
        (openai.InternalServerError, 500, ProviderServerError, True),
        (openai.InternalServerError, 503, ProviderServerError, True),
    ],
)
def test_status_errors_map_to_our_classes(cls, status, ours, retryable):
    err = to_provider_error(_status_error(cls, status))
    assert type(err) is ours
    assert err.retryable is retryable
    assert err.status_code == status
    assert "nope" in str(err)


def test_a_bare_status_error_is_refined_by_its_code():
    err = to_provider_error(_status_error(openai.APIStatusError, 502))
    assert isinstance(err, ProviderServerError) and err.retryable
    assert isinstance(to_provider_error(_status_error(openai.APIStatusError, 408)), ProviderTimeout)


def test_rate_limit_keeps_retry_after_in_seconds_or_milliseconds():
    assert to_provider_error(_status_error(openai.RateLimitError, 429, {"retry-after": "7"})).retry_after == 7.0
    assert to_provider_error(_status_error(openai.RateLimitError, 429, {"retry-after-ms": "1500"})).retry_after == 1.5
    assert to_provider_error(_status_error(openai.RateLimitError, 429)).retry_after is None
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past


def test_connection_and_timeout_errors_including_raw_transport_ones():
    assert isinstance(to_provider_error(openai.APITimeoutError(request=REQUEST)), ProviderTimeout)
    assert isinstance(to_provider_error(openai.APIConnectionError(request=REQUEST)), ProviderConnectionError)
    assert isinstance(to_provider_error(httpx2.ReadTimeout("slow", request=REQUEST)), ProviderTimeout)
    assert isinstance(to_provider_error(httpx2.RemoteProtocolError("gone", request=REQUEST)), ProviderConnectionError)
    assert type(to_provider_error(ValueError("odd"))) is ProviderError


def test_messages_never_carry_a_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdefghijklmnop1234")
    exc = _status_error(openai.AuthenticationError, 401, message="Incorrect API key provided: sk-live-abcdefghijklmnop1234")
    err = to_provider_error(exc, where="OpenAI")
    assert "abcdefghijklmnop" not in str(err)
    assert "OPENAI_API_KEY" in str(err)  # the fix names the variable, not its value


def test_rejected_parameter_is_recognised_only_for_400_and_422():
    err = to_provider_error(_status_error(openai.BadRequestError, 400, message="Unrecognized request argument supplied: stream_options"))
    assert rejected_parameter(err, ("stream_options", "reasoning_effort")) == "stream_options"
    server = to_provider_error(_status_error(openai.InternalServerError, 500, message="stream_options broke"))
    assert rejected_parameter(server, ("stream_options",)) is None
