"""Customer authentication (API.md §15): the pure rules. The flow is services/authentication.py; the whole
story docs/authentication.md and decision 0018.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from paygate.domain.payments import Status

# The cards enrolled in customer authentication. A real gateway learns this per card from the card scheme's
# directory (3-D Secure's "versioning" call, or a soft decline); paygate's test directory is this table, so
# that a card that needs no challenge pays exactly as before, without one more round trip on its hot path.
# The bank enforces it on its own side anyway: it declines an unauthenticated authorization of such a card
# with `authentication_required` (the off-session outcome, §16).
ENROLLED = frozenset({"4000000000003220"})

FAILED = "authentication_failed"
TIMED_OUT = "authentication_timeout"
MAX_RETURN_URL = 2048


def requires_authentication(card_number: str) -> bool:
    return card_number in ENROLLED


def return_url_problem(url: str) -> str | None:
    """Why `url` cannot be a return_url, or None. Any absolute http/https URL is allowed (localhost too):
    paygate only ever redirects a browser to it, never fetches it (API.md §19)."""
    if len(url) > MAX_RETURN_URL:
        return f"must be at most {MAX_RETURN_URL} characters"
    if any(c.isspace() for c in url):
        return "must not contain whitespace"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "must be an absolute http or https URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an absolute http or https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    return None


def with_query(url: str, **params: str) -> str:
    """`url` with `params` set in its query; the rest — the merchant's own query and fragment — is kept as the
    merchant wrote it, never re-encoded (a signed query must survive byte for byte). A parameter of the same name
    is dropped, so the merchant's page reads one value. checkout.js's backToShop follows the same rule."""
    url, hash_, fragment = url.partition("#")
    path, _, query = url.partition("?")
    kept = [part for part in query.split("&") if part and part.split("=", 1)[0] not in params]
    kept += [f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params.items()]
    return f"{path}?{'&'.join(kept)}{hash_}{fragment}"


def next_action(status: Status, challenge_url: str | None, return_url: str | None) -> dict[str, Any] | None:
    """The payment's `next_action`: set while it requires action and the bank's page is known, else null (the
    bank's answer not yet recorded: a moment in the create request, or until recovery asks the bank)."""
    if status is not Status.REQUIRES_ACTION or challenge_url is None:
        return None
    return {"type": "redirect_to_url", "redirect_to_url": {"url": challenge_url, "return_url": return_url}}
