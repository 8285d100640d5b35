"""The rules for a merchant's credentials (API.md §19): dashboard passwords, login emails, and the grace
period of rolled API keys. Pure: each rule answers with the problem (param, message) or None."""

from __future__ import annotations

PASSWORD_MIN_CHARS = 10
# The login form refuses longer passwords unverified (argon2 hashes whatever it is given), so a longer
# one could never log in.
PASSWORD_MAX_CHARS = 1024
EMAIL_MAX_CHARS = 320
# Longer grace periods would make a leaked key's roll-over pointless; a week covers any redeploy.
GRACE_MAX_S = 7 * 24 * 3600
DEFAULT_GRACE_S = 3600


def password_problem(password: str) -> str | None:
    if len(password) < PASSWORD_MIN_CHARS:
        return f"The password must be at least {PASSWORD_MIN_CHARS} characters."
    if len(password) > PASSWORD_MAX_CHARS:
        return f"The password must be at most {PASSWORD_MAX_CHARS} characters."
    return None


def email_problem(email: str) -> str | None:
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or len(email) > EMAIL_MAX_CHARS or any(c.isspace() for c in email):
        return "Give a valid email address (it is the dashboard login)."
    return None


def grace_problem(grace_s: int) -> str | None:
    if not 0 <= grace_s <= GRACE_MAX_S:
        return f"grace must be between 0 and {GRACE_MAX_S} seconds."
    return None
