"""The configured acquirers (API.md §14): `PAYGATE_ACQUIRERS` is a comma-separated list of `name=url`, in
the operator's order of preference; unset, there is one acquirer, `bank`, at `PAYGATE_BANK_URL`.

Pure parsing, so that the API, the worker, `serve` and the tests all read the same list the same way.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DEFAULT_NAME = "bank"
NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")


class AcquirerConfigError(ValueError):
    """`PAYGATE_ACQUIRERS` cannot be read; the message says which entry and why."""


def parse_acquirers(value: str | None, default_url: str) -> dict[str, str]:
    """name → base URL (no trailing slash), in configuration order. Raises AcquirerConfigError."""
    if value is None or not value.strip():
        return {DEFAULT_NAME: default_url.rstrip("/")}
    found: dict[str, str] = {}
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, url = entry.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not NAME.fullmatch(name):
            raise AcquirerConfigError(f"PAYGATE_ACQUIRERS: {entry!r} is not name=url with a name like alpha_2")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AcquirerConfigError(f"PAYGATE_ACQUIRERS: {name}'s URL {url!r} is not an http(s) URL")
        if name in found:
            raise AcquirerConfigError(f"PAYGATE_ACQUIRERS: {name} is named twice")
        found[name] = url.rstrip("/")
    if not found:
        raise AcquirerConfigError("PAYGATE_ACQUIRERS names no acquirer")
    return found
