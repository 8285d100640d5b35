"""Driving a customer authentication (API.md §15) over HTTP as a browser would, without a browser: the bank's
challenge page (GET, then the form's POST) and paygate's return endpoint, following each 303 by hand so that a
test can stop anywhere on the way."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.e2e.client import card

CHALLENGE_CARD = "4000000000003220"
CODE = "123456"


def challenge_card() -> dict[str, Any]:
    return card(CHALLENGE_CARD, 1, 2031, "111")


def challenge_url(payment: dict[str, Any]) -> str:
    na = payment["next_action"]
    assert na is not None and na["type"] == "redirect_to_url", payment
    return str(na["redirect_to_url"]["url"])


class Browser:
    """A cookie-less browser: every request is a plain GET/POST, redirects are returned, not followed."""

    def __init__(self) -> None:
        self.http = httpx.AsyncClient(timeout=60, follow_redirects=False)

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def page(self, url: str) -> httpx.Response:
        return await self.http.get(url)

    async def answer(self, url: str, otp: str | None = None, *, cancel: bool = False) -> httpx.Response:
        """Submit the challenge form (the code, or the cancel button): the bank's answer, a 303 to paygate."""
        data = {"cancel": "1"} if cancel else {"otp": otp or ""}
        return await self.http.post(url, data=data)

    async def follow(self, resp: httpx.Response) -> httpx.Response:
        assert resp.status_code == 303, (resp.status_code, resp.text)
        return await self.http.get(resp.headers["location"])

    async def complete(self, url: str, otp: str | None = CODE, *, cancel: bool = False) -> str:
        """Answer the challenge and follow the bank's 303 to paygate; returns where paygate sends the browser."""
        back = await self.follow(await self.answer(url, otp, cancel=cancel))
        assert back.status_code == 303, (back.status_code, back.text)
        return str(back.headers["location"])


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)
