"""One exception tree for the package.

    FourHostsError
    ├── ConfigError              bad option, unknown paradigm, effort out of range, empty question
    ├── ProviderError            a model call failed
    │   ├── ProviderAuthError        key missing or refused
    │   ├── ProviderRateLimited      429; carries ``retry_after``
    │   ├── ProviderTimeout          no answer in time
    │   ├── ProviderConnectionError  connection refused / dropped mid-stream
    │   ├── ProviderServerError      5xx
    │   ├── ProviderBadRequest       the server refused the request as malformed
    │   └── ProviderIncomplete       the model's turn ended early (no finish reason, cut off,
    │                                incomplete / failed response); carries ``reason``
    ├── ToolError                a tool could not run
    │   ├── UnknownTool
    │   ├── ToolArgumentsError       malformed JSON or failed validation
    │   ├── ToolTimeout
    │   └── CircuitOpen
    ├── StorageError             the DuckDB store
    │   ├── StoreLocked              another process holds the write lock too long
    │   ├── StoreNewerSchema         the file was written by a newer fourhosts-jupyter
    │   ├── StoreForeign             a DuckDB file neither empty nor ours (left untouched)
    │   ├── StoreFull                no space (or a file-size limit); a re-run resumes
    │   └── StoreUnreadable          not a DuckDB file / no permission
    ├── IngestError              one file could not be ingested (names the file)
    ├── SandboxError             the sandbox could not start (or would not run model code)
    ├── Cancelled                work on a thread noticed its stage was stopped (cancel.py)
    ├── BudgetExceeded           a task or model call would pass its token / USD budget; refused
    │                            before it ran (schedule/budget.py)
    └── RunError                 a research run failed (keeps the partial answer)

Every message says what went wrong and what to do about it.
"""

from __future__ import annotations


class FourHostsError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(FourHostsError, ValueError):
    """A user-supplied option or setting is invalid."""


class ProviderError(FourHostsError):
    """A model provider call failed."""

    retryable: bool = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ProviderAuthError(ProviderError):
    pass


class ProviderRateLimited(ProviderError):
    retryable = True

    def __init__(
        self, message: str, *, status_code: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    retryable = True


class ProviderConnectionError(ProviderError):
    retryable = True


class ProviderServerError(ProviderError):
    retryable = True


class ProviderBadRequest(ProviderError):
    pass


class ProviderIncomplete(ProviderError):
    """The model's turn ended before it finished: a stream closed with no finish reason, an
    empty reply, or a Responses API ``incomplete`` / ``failed`` status. The partial text is kept
    by the engine; ``reason`` says why in the server's words when it gave any."""

    def __init__(
        self, message: str, *, status_code: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.reason = reason


class ToolError(FourHostsError):
    """A tool call failed; the message is sent back to the model."""

    retryable: bool = False
    kind: str = "tool_error"


class UnknownTool(ToolError):
    kind = "unknown_tool"


class ToolArgumentsError(ToolError):
    kind = "bad_arguments"


class ToolTimeout(ToolError):
    retryable = True
    kind = "timeout"


class CircuitOpen(ToolError):
    kind = "circuit_open"


class WebError(ToolError):
    kind = "web_error"


class FetchRefused(WebError):
    kind = "refused"


class FetchTooLarge(WebError):
    kind = "too_large"


class FetchTimeout(WebError):
    kind = "timeout"


class UnsupportedContent(WebError):
    kind = "unsupported_content"


class NetworkUnavailable(WebError):
    kind = "network_unavailable"


class SearchUnavailable(WebError):
    kind = "search_unavailable"


class StorageError(FourHostsError):
    """The store could not be read or written."""


class StoreLocked(StorageError):
    pass


class StoreNewerSchema(StorageError):
    pass


class StoreUnreadable(StorageError):
    pass


class StoreForeign(StorageError):
    pass


class StoreFull(StorageError):
    pass


class IngestError(FourHostsError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class SandboxError(FourHostsError):
    pass


class Cancelled(FourHostsError):
    pass


class BudgetExceeded(FourHostsError):
    """Work refused *before* it ran because it would pass a budget. ``scope`` names the budget
    (run, session, batch, …), ``needed`` the estimate and ``left`` what remained, in ``unit``."""

    kind = "budget"

    def __init__(self, message: str, *, scope: str = "", unit: str = "tokens",
                 needed: float = 0.0, left: float = 0.0) -> None:
        super().__init__(message)
        self.scope = scope
        self.unit = unit
        self.needed = needed
        self.left = left


class RunError(FourHostsError):
    """A research run failed; ``partial_text`` holds what the model had said before it failed."""

    def __init__(self, message: str, *, kind: str, run_id: str = "", partial_text: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.run_id = run_id
        self.partial_text = partial_text
