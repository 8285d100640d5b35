"""API.md §19: nothing a bank answers can make paygate store what it cannot read back. A signed callback
carrying NUL (which PostgreSQL's jsonb and text refuse) is a 400 that records nothing, not a 500 that the
bank would retry for ever."""

from __future__ import annotations

import pytest

from tests.integration.test_orders_support import Api, api, bank_event, post_event

__all__ = ["api"]  # the fixture, imported so that pytest finds it here


@pytest.mark.parametrize(("where", "param"), [("id", "id"), ("reference", "data[reference]"),
                                              ("failure_code", "data[failure_code]"), ("extra", None)])
async def test_a_callback_with_a_nul_is_refused_and_records_nothing(api: Api, where: str, param: str | None) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m)
    event = bank_event(p["id"], ok=False)
    if where == "id":
        event["id"] += "\u0000"
    elif where == "extra":
        event["data"]["note"] = {"deep": ["a\u0000b"]}
    else:
        event["data"][where] += "\u0000"
    resp = await post_event(api.http, event)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].get("param") == param
    assert await api.count("SELECT count(*) FROM bank_events") == 0
    assert (await api.payment(m, p["id"]))["status"] == "pending"
