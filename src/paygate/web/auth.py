"""Dashboard login: email + password (argon2), a session cookie, CSRF tokens.

- The session id is 32 random bytes in an HttpOnly, SameSite=Lax cookie scoped to /dashboard; the
  database keeps only its SHA-256, with the merchant, a CSRF token and an expiry (12 h, not extended).
- Every form carries the session's CSRF token in a hidden field, compared in constant time on POST; the
  login form, which has no session yet, uses a double-submit cookie instead. A POST whose `Origin` header
  names another site is refused as well (a second, independent check).
- A new session id on every login (no fixation); logout deletes the row, so the cookie is dead at once.
- Logins are throttled per email and per client address, in PostgreSQL so that every API process counts
  the same failures (services/merchants.login): 429 with Retry-After, whatever the password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from paygate.domain.login_throttle import LoginThrottle
from paygate.errors import AuthenticationError, RateLimited
from paygate.http.auth import address
from paygate.http.context import gateway
from paygate.services import merchants as merchant_service
from paygate.services.gateway import Principal, utcnow
from paygate.store import sessions
from paygate.store.db import transaction
from paygate.web.forms import read_form
from paygate.web.render import html

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "paygate_session"
LOGIN_CSRF_COOKIE = "paygate_login_csrf"
SESSION_TTL = timedelta(hours=12)
LOGIN_PATH = "/dashboard/login"


@dataclass(frozen=True)
class Session:
    merchant_id: str
    name: str
    email: str
    csrf_token: str

    @property
    def principal(self) -> Principal:
        """The dashboard acts for its merchant with the rights of a secret key."""
        return Principal(self.merchant_id, "secret")


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _secure(request: Request) -> bool:
    """Secure cookies whenever the merchant reaches us over https (directly or per PAYGATE_PUBLIC_URL)."""
    return request.url.scheme == "https" or gateway(request).settings.public_url.startswith("https://")


async def current(request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return None
    async with gateway(request).pool.connection() as conn:
        row = await sessions.get(conn, _hash(token), utcnow())
    if row is None:
        return None
    return Session(row["merchant_id"], row["name"], row["email"], row["csrf_token"])


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(LOGIN_PATH, status_code=303)


def _same_origin(request: Request) -> bool:
    """No Origin header (old browsers, curl) passes; one naming another site does not."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {f"{request.url.scheme}://{request.url.netloc}"}
    public = urlsplit(gateway(request).settings.public_url)
    own.add(f"{public.scheme}://{public.netloc}")
    return origin in own


def csrf_ok(request: Request, session: Session, form: dict[str, str]) -> bool:
    sent = form.get("csrf_token", "")
    return _same_origin(request) and hmac.compare_digest(sent.encode(), session.csrf_token.encode())


def forbidden() -> Response:
    return html("dashboard/error.html", status=403, session=None, title="Request refused",
                message="This form has expired or did not come from this dashboard. Go back, reload and try again.")


def _client(request: Request) -> str:
    """The address the login throttle counts: the same one as every per-address limit (http/clientaddr.py)."""
    return address(request)


def _throttle(request: Request) -> LoginThrottle:
    settings = gateway(request).settings
    return LoginThrottle(max_failures=settings.login_max_failures, window_s=settings.login_window_s)


def _login_page(request: Request, *, error: str | None = None, email: str = "", status: int = 200,
                headers: dict[str, str] | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    response = html("dashboard/login.html", status=status, session=None, csrf_token=token, error=error, email=email,
                    headers=headers)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path=LOGIN_PATH, httponly=True, samesite="lax",
                        secure=_secure(request))
    return response


@router.get(LOGIN_PATH)
async def login_page(request: Request) -> Response:
    if await current(request) is not None:
        return RedirectResponse("/dashboard", status_code=303)
    return _login_page(request)


@router.post(LOGIN_PATH)
async def login(request: Request) -> Response:
    form = await read_form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = form.get("csrf_token", "")
    if not cookie or not _same_origin(request) or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return _login_page(request, error="The login form expired. Please try again.", status=403)
    email, password = form.get("email", "").strip(), form.get("password", "")
    gw = gateway(request)
    try:
        merchant_id = await merchant_service.login(gw.pool, email=email, password=password,
                                                   client=_client(request), throttle=_throttle(request))
    except RateLimited as err:  # the same for the right password: no oracle while throttled
        return _login_page(request, error=err.message, email=email, status=429,
                           headers={"Retry-After": str(err.retry_after)})
    except AuthenticationError:  # one message for unknown email and wrong password: no account probing
        return _login_page(request, error="Email or password is incorrect.", email=email, status=401)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with transaction(gw.pool) as conn:
        await sessions.purge_expired(conn, now)
        await sessions.insert(conn, id_hash=_hash(token), merchant_id=merchant_id,
                              csrf_token=secrets.token_urlsafe(32), expires_at=now + SESSION_TTL)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_TTL.total_seconds()), path="/dashboard",
                        httponly=True, samesite="lax", secure=_secure(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    session = await current(request)
    if session is None:
        return to_login(request)
    if not csrf_ok(request, session, await read_form(request)):
        return forbidden()
    token = request.cookies.get(SESSION_COOKIE, "")
    async with transaction(gateway(request).pool) as conn:
        await sessions.delete(conn, _hash(token))
    response = to_login(request)
    response.delete_cookie(SESSION_COOKIE, path="/dashboard", httponly=True, samesite="lax")
    return response
