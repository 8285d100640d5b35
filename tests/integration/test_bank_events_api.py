"""POST /v1/bank/events (API.md §12) through the in-process API over a real PostgreSQL: signatures, at most
once per bank event id, forward-only, recorded outcomes. UPI payments are created through the real
simulated bank (in-process), which keeps them pending; the callbacks are signed and sent by the tests."""

from __future__ import annotations

import asyncio
import time

import orjson

from paygate.domain.ids import new_id
from paygate.simbank import signing
from tests.integration.test_orders_support import SECRET, Api, api, bank_event, post_event, signed

__all__ = ["api"]  # the fixture, imported so that pytest finds it here

OTHER_SECRET = "whsec_" + "b3RoZXItc2VjcmV0LW5vdC10aGUtYmFua3M="


async def _journals(api: Api, payment_id: str) -> int:
    return await api.count("SELECT count(*) FROM ledger_journals WHERE payment_id = %s", payment_id)


async def _event_types(api: Api, object_id: str) -> list[str]:
    return [r["type"] for r in await api.all("SELECT type FROM events WHERE object_id = %s ORDER BY id", object_id)]


async def test_a_success_callback_captures_the_upi_payment_once(api: Api) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m)
    assert p["payment_method"] == {"type": "upi", "upi": {"vpa": "success@upi"}}
    assert await _event_types(api, p["id"]) == ["payment.pending"]
    event = bank_event(p["id"])
    resp = await post_event(api.http, event)  # no API key: the signature is the authentication
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"object": "bank_event_receipt", "id": event["id"], "outcome": "applied",
                           "duplicate": False}
    got = await api.payment(m, p["id"])
    assert (got["status"], got["amount_captured"], got["amount_capturable"]) == ("captured", 2_500, 0)
    assert [h["status"] for h in got["status_history"]] == ["pending", "captured"]
    assert await _event_types(api, p["id"]) == ["payment.pending", "payment.captured"]
    assert await _journals(api, p["id"]) == 1
    row = await api.one("SELECT * FROM bank_events WHERE id = %s", event["id"])
    assert row is not None
    assert (row["reference"], row["type"], row["outcome"], row["duplicates"]) == (
        p["id"], "operation.succeeded", "applied", 0)
    assert row["body"] == event and "pending -> captured" in row["detail"]

    dup = await post_event(api.http, event)  # the bank sends it again
    assert dup.status_code == 200
    assert dup.json() | {"duplicate": None} == resp.json() | {"duplicate": None} and dup.json()["duplicate"] is True
    assert await api.payment(m, p["id"]) == got
    assert await _journals(api, p["id"]) == 1
    row = await api.one("SELECT duplicates FROM bank_events WHERE id = %s", event["id"])
    assert row == {"duplicates": 1}


async def test_a_failure_callback_fails_the_payment(api: Api) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m, vpa="failure@upi")
    resp = await post_event(api.http, bank_event(p["id"], ok=False))
    assert resp.status_code == 200 and resp.json()["outcome"] == "applied"
    got = await api.payment(m, p["id"])
    assert (got["status"], got["failure_code"], got["amount_captured"]) == ("failed", "payment_declined", 0)
    assert got["failure_message"]
    assert await _event_types(api, p["id"]) == ["payment.pending", "payment.failed"]
    assert await _journals(api, p["id"]) == 0
    # a success reported later (another event id) cannot resurrect it
    late = await post_event(api.http, bank_event(p["id"], ok=True))
    assert late.status_code == 200 and late.json()["outcome"] == "ignored"
    assert (await api.payment(m, p["id"]))["status"] == "failed"


async def test_twenty_concurrent_duplicates_change_the_payment_once(api: Api) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m)
    event = bank_event(p["id"])
    answers = await asyncio.gather(*(post_event(api.http, event) for _ in range(20)))
    assert [r.status_code for r in answers] == [200] * 20
    assert sorted(r.json()["duplicate"] for r in answers) == [False] + [True] * 19
    assert {r.json()["outcome"] for r in answers} == {"applied"}
    got = await api.payment(m, p["id"])
    assert [h["status"] for h in got["status_history"]] == ["pending", "captured"]
    assert await _event_types(api, p["id"]) == ["payment.pending", "payment.captured"]
    assert await _journals(api, p["id"]) == 1
    assert await api.count("SELECT count(*) FROM ledger_entries WHERE payment_id = %s", p["id"]) >= 2
    row = await api.one("SELECT count(*) AS n, sum(duplicates) AS d FROM bank_events")
    assert row == {"n": 1, "d": 19}


async def test_a_reversed_pair_leaves_the_payment_captured(api: Api) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m)
    ok, failed = bank_event(p["id"]), bank_event(p["id"], ok=False)
    assert (await post_event(api.http, ok)).json()["outcome"] == "applied"
    resp = await post_event(api.http, failed)
    assert resp.status_code == 200 and resp.json()["outcome"] == "ignored"
    got = await api.payment(m, p["id"])
    assert (got["status"], got["failure_code"]) == ("captured", None)
    assert await _event_types(api, p["id"]) == ["payment.pending", "payment.captured"]
    row = await api.one("SELECT outcome, detail FROM bank_events WHERE id = %s", failed["id"])
    assert row is not None and row["outcome"] == "ignored" and "stays captured" in row["detail"]
    # a second success under another id is recorded as redundant: it agrees, and changes nothing
    again = await post_event(api.http, bank_event(p["id"]))
    assert again.json()["outcome"] == "redundant"
    assert await _journals(api, p["id"]) == 1


async def test_concurrent_contradicting_events_settle_one_way(api: Api) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m)
    answers = await asyncio.gather(*(post_event(api.http, bank_event(p["id"], ok=i % 2 == 0)) for i in range(10)))
    outcomes = sorted(r.json()["outcome"] for r in answers)
    assert outcomes.count("applied") == 1 and set(outcomes) <= {"applied", "redundant", "ignored"}
    got = await api.payment(m, p["id"])
    assert got["status"] in ("captured", "failed") and len(got["status_history"]) == 2
    assert await _journals(api, p["id"]) == (1 if got["status"] == "captured" else 0)


async def test_an_order_is_paid_by_its_upi_callback_and_announced_once(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m, amount=7_500, currency="INR")
    p = await api.upi_payment(m, order_id=order["id"])
    assert (p["amount"], p["currency"], p["order_id"]) == (7_500, "INR", order["id"])
    assert (await api.http.get(f"/v1/orders/{order['id']}", headers=m.sk)).json()["status"] == "attempted"
    event = bank_event(p["id"], amount=7_500)
    await asyncio.gather(*(post_event(api.http, event) for _ in range(5)))
    paid = (await api.http.get(f"/v1/orders/{order['id']}", headers=m.sk)).json()
    assert (paid["status"], paid["amount_paid"]) == ("paid", 7_500)
    assert await _event_types(api, order["id"]) == ["order.paid"]
    public = (await api.http.get(f"/v1/orders/{order['id']}", headers=m.pk)).json()
    assert public["status"] == "paid"


async def test_unknown_reference_is_recorded_and_acknowledged(api: Api) -> None:
    for reference in ("pay_doesnotexist", "not-a-payment"):
        event = bank_event(reference)
        resp = await post_event(api.http, event)
        assert resp.status_code == 200 and resp.json()["outcome"] == "unknown_reference"
        row = await api.one("SELECT reference, outcome FROM bank_events WHERE id = %s", event["id"])
        assert row == {"reference": reference, "outcome": "unknown_reference"}


async def test_events_we_cannot_settle_exactly_are_ignored(api: Api) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m)
    wrong_amount = await post_event(api.http, bank_event(p["id"], amount=2_499))
    refund = await post_event(api.http, bank_event(p["id"], operation="refund"))
    assert [r.json()["outcome"] for r in (wrong_amount, refund)] == ["ignored", "ignored"]
    assert (await api.payment(m, p["id"]))["status"] == "pending"
    # the authorization is still open: the right event settles it
    assert (await post_event(api.http, bank_event(p["id"], operation="authorization"))).json()["outcome"] == "applied"
    assert (await api.payment(m, p["id"]))["status"] == "captured"


async def test_bad_signatures_are_refused_and_nothing_is_recorded(api: Api) -> None:
    m = await api.merchant()
    p = await api.upi_payment(m)
    event = bank_event(p["id"])
    body, good = signed(event)
    now = int(time.time())
    attempts = {
        "no headers": ({"content-type": "application/json"}, body),
        "no signature": ({k: v for k, v in good.items() if k != "webhook-signature"}, body),
        "no timestamp": ({k: v for k, v in good.items() if k != "webhook-timestamp"}, body),
        "other secret": (signed(event, secret=OTHER_SECRET)[1], body),
        "tampered body": (good, body.replace(b"2500", b"2501")),
        "other id": ({**good, "webhook-id": "bevt_other"}, body),
        "too old": (signed(event, timestamp=now - 301)[1], body),
        "too new": (signed(event, timestamp=now + 301)[1], body),
        "garbage signature": ({**good, "webhook-signature": "v1,not-base64!"}, body),
        "unknown version": ({**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}, body),
    }
    for name, (headers, content) in attempts.items():
        resp = await api.http.post("/v1/bank/events", content=content, headers=headers)
        assert resp.status_code == 401, (name, resp.text)
        assert resp.json()["error"]["type"] == "authentication_error", name
    assert await api.count("SELECT count(*) FROM bank_events") == 0
    assert (await api.payment(m, p["id"]))["status"] == "pending"

    # within the tolerance, with several signatures (a secret rotation), any content type: accepted
    rotated = {**signed(event, timestamp=now - 290)[1], "content-type": "text/plain"}
    rotated["webhook-signature"] = "v1,AAAA " + rotated["webhook-signature"]
    resp = await api.http.post("/v1/bank/events", content=body, headers=rotated)
    assert resp.status_code == 200 and resp.json()["outcome"] == "applied"


async def test_a_signed_body_that_is_not_an_event_is_400_and_not_recorded(api: Api) -> None:
    good = bank_event(new_id("pay"))
    bad_bodies = [
        b"not json",
        b"[]",
        orjson.dumps({**good, "type": "operation.maybe"}),
        orjson.dumps({**good, "id": 7}),
        orjson.dumps({**good, "data": {**good["data"], "operation": "void"}}),
        orjson.dumps({**good, "data": {**good["data"], "amount": "2500"}}),
        orjson.dumps({k: v for k, v in good.items() if k != "data"}),
    ]
    for body in bad_bodies:
        headers = signing.headers(SECRET, "bevt_x", body)
        resp = await api.http.post("/v1/bank/events", content=body, headers=headers)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["type"] == "invalid_request_error"
    assert await api.count("SELECT count(*) FROM bank_events") == 0
