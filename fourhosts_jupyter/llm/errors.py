"""Where ``openai`` (and transport) exceptions become ours: one table, one function.

Every ``openai.*Error`` class has an explicit row in :data:`OPENAI_ERRORS` (a test checks that
none is missing), so a new client release with a new error class fails a test instead of
leaking a foreign exception to the analyst. Callers do ``raise to_provider_error(exc) from exc``.

Messages name the problem and the fix, and never contain a key: anything that looks like one
is masked before the message leaves this module.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import openai

from ..errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
)
from ..redact import redact

# Exact class → our class. Order does not matter: lookup walks the raised class's MRO.
OPENAI_ERRORS: dict[type[BaseException], type[ProviderError]] = {
    openai.OpenAIError: ProviderError,
    openai.APIError: ProviderError,
    openai.APIStatusError: ProviderError,  # refined by status code below
    openai.APIConnectionError: ProviderConnectionError,
    openai.APITimeoutError: ProviderTimeout,
    openai.APIResponseValidationError: ProviderServerError,
    openai.AuthenticationError: ProviderAuthError,
    openai.PermissionDeniedError: ProviderAuthError,
    openai.OAuthError: ProviderAuthError,
    openai.BadRequestError: ProviderBadRequest,
    openai.NotFoundError: ProviderBadRequest,
    openai.ConflictError: ProviderServerError,
    openai.UnprocessableEntityError: ProviderBadRequest,
    openai.RateLimitError: ProviderRateLimited,
    openai.InternalServerError: ProviderServerError,
    openai.LengthFinishReasonError: ProviderError,
    openai.ContentFilterFinishReasonError: ProviderError,
    openai.InvalidWebhookSignatureError: ProviderAuthError,
    openai.WebSocketConnectionClosedError: ProviderConnectionError,
    openai.WebSocketQueueFullError: ProviderServerError,
}
# Classes that exist only in some client versions or only in the private module.
for _name, _ours in (("SubjectTokenProviderError", ProviderAuthError),):
    _cls = getattr(openai, _name, None) or getattr(openai._exceptions, _name, None)
    if isinstance(_cls, type):
        OPENAI_ERRORS[_cls] = _ours

_STATUS: dict[int, type[ProviderError]] = {
    400: ProviderBadRequest,
    401: ProviderAuthError,
    403: ProviderAuthError,
    404: ProviderBadRequest,
    408: ProviderTimeout,
    409: ProviderServerError,
    413: ProviderBadRequest,
    422: ProviderBadRequest,
    429: ProviderRateLimited,
}

def retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), if any."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None


def _advice(cls: type[ProviderError], where: str, status: int | None) -> str:
    if cls is ProviderAuthError:
        return (
            f"check the key for {where} (OPENAI_API_KEY / AZURE_OPENAI_API_KEY) and its access; "
            "`%research config` shows which keys are set"
        )
    if cls is ProviderRateLimited:
        return "the service is rate limiting: wait and retry, or lower the request rate"
    if cls is ProviderTimeout:
        return "the model took too long: retry, or raise request_timeout / stream_idle_timeout"
    if cls is ProviderConnectionError:
        return f"could not reach {where}: check the endpoint / base URL and that the server is up"
    if cls is ProviderServerError:
        return "the service had a problem: retry in a moment"
    if cls is ProviderBadRequest and status == 404:
        return "check the model / deployment name (--model) and, on Azure, the endpoint and api-version"
    if cls is ProviderBadRequest:
        return "the server refused the request: check the model name and its supported parameters"
    return "see the message above"


def _lookup(exc: BaseException) -> type[ProviderError] | None:
    for klass in type(exc).__mro__:
        if klass in OPENAI_ERRORS:
            return OPENAI_ERRORS[klass]
    return None


def to_provider_error(exc: BaseException, *, where: str = "the model service") -> ProviderError:
    """Our ProviderError for an openai / transport / asyncio exception (``raise … from exc``)."""
    if isinstance(exc, ProviderError):
        return exc
    status = getattr(exc, "status_code", None)
    cls = _lookup(exc)
    if cls is None:
        names = {k.__name__ for k in type(exc).__mro__}
        if names & {"TimeoutException", "TimeoutError"}:
            cls = ProviderTimeout
        elif names & {"TransportError", "NetworkError", "ConnectionError", "RemoteProtocolError"}:
            cls = ProviderConnectionError
        else:
            cls = ProviderError
    if cls is ProviderError and isinstance(status, int):
        cls = _STATUS.get(status, ProviderServerError if status >= 500 else ProviderError)
    detail = _message(exc)
    message = redact(f"{where} failed: {detail} — {_advice(cls, where, status)}")
    if cls is ProviderRateLimited:
        response = getattr(exc, "response", None)
        return ProviderRateLimited(
            message, status_code=status or 429, retry_after=retry_after(getattr(response, "headers", None))
        )
    return cls(message, status_code=status)


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            status = getattr(exc, "status_code", None)
            prefix = f"HTTP {status}: " if status else ""
            return prefix + inner["message"]
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def rejected_parameter(err: ProviderError, candidates: tuple[str, ...]) -> str | None:
    """For a 400/422 that names one of ``candidates`` (a parameter the server does not know),
    return it, so the caller can drop it and retry — servers differ in what they accept."""
    if not isinstance(err, ProviderBadRequest) or err.status_code not in (400, 422):
        return None
    text = str(err).lower()
    for name in candidates:
        if name.lower() in text:
            return name
    return None


# Error codes a server reports inside a stream (Responses API ``response.failed`` / ``error``
# events) → our classes; anything else is a plain ProviderError.
_STREAM_CODES: dict[str, type[ProviderError]] = {
    "server_error": ProviderServerError,
    "rate_limit_exceeded": ProviderRateLimited,
    "invalid_prompt": ProviderBadRequest,
    "invalid_request_error": ProviderBadRequest,
    "context_length_exceeded": ProviderBadRequest,
    "timeout": ProviderTimeout,
}


def stream_error(code: str | None, message: str | None, *, where: str = "the model service") -> ProviderError:
    """Our ProviderError for an error the server reported in the stream, with its code and
    message in the text (there is no HTTP status: the stream itself answered 200)."""
    cls = _STREAM_CODES.get((code or "").lower(), ProviderError)
    detail = f"{code or 'error'}: {message or 'no message'}"
    text = redact(f"{where} failed the response ({detail}) — {_advice(cls, where, None)}")
    if cls is ProviderRateLimited:
        return ProviderRateLimited(text, status_code=None)
    return cls(text)
