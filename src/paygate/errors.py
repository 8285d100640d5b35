"""The errors paygate answers with, one class per error `type` of the public contract (API.md §3).

    PaygateError
    ├── InvalidRequest        400/404/413/415  invalid_request_error
    ├── AuthenticationError   401              authentication_error
    ├── CardError             402              card_error (carries the failed payment)
    ├── PermissionDenied      403              permission_error
    ├── InvalidState          409              invalid_state_error
    ├── IdempotencyError      409/422          idempotency_error
    ├── RateLimited           429              rate_limit_error
    └── ApiError              5xx              api_error

Each carries everything its JSON body and headers need, so the API layer maps them mechanically.
"""

from __future__ import annotations

from typing import Any


class PaygateError(Exception):
    status: int = 500
    type: str = "api_error"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.param is not None:
            err["param"] = self.param
        err.update(self.extra)
        return {"error": err}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class InvalidRequest(PaygateError):
    status = 400
    type = "invalid_request_error"


class NotFound(InvalidRequest):
    status = 404

    def __init__(self, what: str, ident: str | None = None, *, param: str | None = None) -> None:
        msg = f"No such {what}: '{ident}'" if ident else f"No such {what}"
        super().__init__("resource_missing", msg, param=param)


class AuthenticationError(PaygateError):
    status = 401
    type = "authentication_error"


class CardError(PaygateError):
    status = 402
    type = "card_error"


class PermissionDenied(PaygateError):
    status = 403
    type = "permission_error"


class InvalidState(PaygateError):
    status = 409
    type = "invalid_state_error"


class IdempotencyError(PaygateError):
    status = 422
    type = "idempotency_error"


class RateLimited(PaygateError):
    status = 429
    type = "rate_limit_error"


class ApiError(PaygateError):
    status = 500
    type = "api_error"


class Unavailable(ApiError):
    """The database is unreachable: fail closed, tell the client when to come back."""

    status = 503

    def __init__(self, message: str = "The service is temporarily unavailable; retry shortly.") -> None:
        super().__init__("service_unavailable", message, retry_after=1)
