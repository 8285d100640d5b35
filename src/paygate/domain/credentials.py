"""The rules for a merchant's credentials (API.md §19): dashboard passwords and the grace period of rolled
API keys. Pure: each rule answers with the problem (param, message) or None. A login email follows the
one address rule of paygate, domain.emails.valid_address."""

from __future__ import annotations

PASSWORD_MIN_CHARS = 10
# The login form refuses longer passwords unverified (argon2 hashes whatever it is given), so a longer
# one could never log in.
PASSWORD_MAX_CHARS = 1024
# The login form's email bound: the older creation rule's ceiling, looser than emails.MAX_CHARS (254), so
# a merchant created under it with a longer email still logs in. Creation follows emails.valid_address.
LOGIN_EMAIL_MAX_CHARS = 320
# Longer grace periods would make a leaked key's roll-over pointless; a week covers any redeploy.
GRACE_MAX_S = 7 * 24 * 3600
DEFAULT_GRACE_S = 3600


def password_problem(password: str) -> str | None:
    if len(password) < PASSWORD_MIN_CHARS:
        return f"The password must be at least {PASSWORD_MIN_CHARS} characters."
    if len(password) > PASSWORD_MAX_CHARS:
        return f"The password must be at most {PASSWORD_MAX_CHARS} characters."
    return None


def grace_problem(grace_s: int) -> str | None:
    if not 0 <= grace_s <= GRACE_MAX_S:
        return f"grace must be between 0 and {GRACE_MAX_S} seconds."
    return None
