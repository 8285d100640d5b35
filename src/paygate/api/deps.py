"""What the API's routes depend on. The request plumbing itself is shared with web/ and lives in
paygate.http; this module names the part the routes use, so each route has one import."""

from __future__ import annotations

from paygate.http.auth import principal, secret_key
from paygate.http.body import json_body
from paygate.http.context import gateway
from paygate.http.idempotency import idempotent

__all__ = ["gateway", "idempotent", "json_body", "principal", "secret_key"]
