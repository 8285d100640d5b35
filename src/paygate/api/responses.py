"""The API's response helpers live in paygate.http (shared with web/); re-exported for the routes."""

from paygate.http.responses import error, json, raw

__all__ = ["error", "json", "raw"]
