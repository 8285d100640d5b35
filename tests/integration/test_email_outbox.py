"""The email outbox over a real PostgreSQL and the real simulated bank (in-process): receipts queued in
the transaction of the capture or refund, once per object; send_link; the claim and its leases; the
worker's loop with an in-memory transport at the SMTP seam."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import orjson
import pytest

from paygate.mail.transport import SendFailed
from paygate.services import emails as service
from paygate.services.gateway import utcnow
from paygate.services.settle import capture_money
from paygate.store import emails as store
from paygate.store import payments
from paygate.store.db import Row, transaction
from paygate.worker.emails import EmailLoop
from tests.integration.test_orders_support import CARD, Api, Merchant, api, bank_event, post_event

__all__ = ["api"]

BUYER = "buyer@example.com"


@dataclass
class Memory:
    """The in-memory transport: records what it was handed; fails while `failures` has entries."""

    sent: list[EmailMessage] = field(default_factory=list)
    failures: list[SendFailed] = field(default_factory=list)
    tried: int = 0

    async def send(self, message: EmailMessage) -> None:
        self.tried += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


async def pay(api: Api, m: Merchant, **extra: Any) -> dict[str, Any]:
    resp = await api.http.post("/v1/payments", headers=m.sk, json={
        "amount": 12_345, "currency": "USD", "payment_method": {"type": "card", "card": CARD}, **extra})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def emails_of(api: Api, object_id: str) -> list[Row]:
    async with api.gw.pool.connection() as conn:
        return await store.for_object(conn, object_id)


async def test_a_captured_payment_queues_one_receipt_with_its_facts_and_no_card_number(api: Api) -> None:
    m = await api.merchant()
    p = await pay(api, m, receipt_email=BUYER, description="tea")
    assert p["status"] == "captured" and p["receipt_email"] == BUYER
    [row] = await emails_of(api, p["id"])
    assert (row["kind"], row["recipient"], row["status"], row["attempt_count"]) == ("payment_receipt", BUYER,
                                                                                   "pending", 0)
    assert row["data"] | {"at": None} == {
        "payment_id": p["id"], "amount": 12_345, "currency": "USD", "description": "tea", "at": None,
        "method": {"type": "card", "brand": "visa", "last4": "1111"}, "merchant_name": "Shop"}
    assert str(CARD["number"]) not in orjson.dumps(row).decode()
    # no receipt_email, no receipt; a failed payment none either
    plain = await pay(api, m)
    assert await emails_of(api, plain["id"]) == []
    declined = await api.http.post("/v1/payments", headers=m.sk, json={
        "amount": 100, "currency": "USD", "receipt_email": BUYER,
        "payment_method": {"type": "card", "card": {**CARD, "number": "4000000000000002"}}})
    assert declined.status_code == 402
    assert await emails_of(api, declined.json()["error"]["payment"]["id"]) == []


async def test_manual_capture_and_each_succeeded_refund_get_their_receipt(api: Api) -> None:
    m = await api.merchant()
    p = await pay(api, m, receipt_email=BUYER, capture_method="manual")
    assert p["status"] == "authorized" and await emails_of(api, p["id"]) == []  # nothing taken yet
    captured = await api.http.post(f"/v1/payments/{p['id']}/capture", headers=m.sk, json={"amount": 10_000})
    assert captured.status_code == 200 and captured.json()["status"] == "captured"
    [receipt] = await emails_of(api, p["id"])
    assert receipt["data"]["amount"] == 10_000  # what was captured, not what was authorized
    refunds = []
    for amount in (1_000, 2_500):
        r = await api.http.post("/v1/refunds", headers=m.sk, json={"payment_id": p["id"], "amount": amount})
        assert r.status_code == 201 and r.json()["status"] == "succeeded"
        refunds.append(r.json())
    for refund, amount in zip(refunds, (1_000, 2_500), strict=True):
        [row] = await emails_of(api, refund["id"])
        assert row["kind"] == "refund_receipt" and row["recipient"] == BUYER
        assert row["data"]["amount"] == amount and row["data"]["payment_id"] == p["id"]
        assert row["data"]["refund_id"] == refund["id"]


async def test_the_receipt_is_written_in_the_capture_transaction(api: Api) -> None:
    m = await api.merchant()
    p = await pay(api, m, receipt_email=BUYER, capture_method="manual")

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with transaction(api.gw.pool) as conn:
            locked = await payments.lock(conn, p["id"])
            assert locked is not None
            await capture_money(conn, api.gw, locked, locked["amount"], utcnow())
            inside = await store.for_object(conn, p["id"])
            assert [r["kind"] for r in inside] == ["payment_receipt"]  # visible to the transaction itself...
            assert await emails_of(api, p["id"]) == []  # ...and to nobody else before it commits
            raise Abort
    assert await emails_of(api, p["id"]) == []  # rolled back with the capture
    assert (await api.payment(m, p["id"]))["status"] == "authorized"


async def test_duplicate_settlements_queue_the_receipt_once(api: Api) -> None:
    m = await api.merchant()
    up = await api.upi_payment(m, receipt_email=BUYER)
    event = bank_event(up["id"], amount=2_500)
    answers = await asyncio.gather(*(post_event(api.http, {**event, "id": f"bevt_dup{i}"}) for i in range(10)))
    assert {a.status_code for a in answers} == {200}
    assert (await api.payment(m, up["id"]))["status"] == "captured"
    [row] = await emails_of(api, up["id"])
    assert row["data"]["method"] == {"type": "upi", "vpa": "success@upi"}
    # and queueing it again by hand is a no-op: one receipt per (object, kind)
    async with transaction(api.gw.pool) as conn:
        locked = await payments.lock(conn, up["id"])
        assert locked is not None
        await service.queue_payment_receipt(conn, locked, utcnow())
    assert len(await emails_of(api, up["id"])) == 1


@pytest.mark.parametrize("bad", ["nope", "a@b", "a b@c.co", "x@y.co\r\nBcc: z@w.co", 42, ""])
async def test_receipt_email_is_validated(api: Api, bad: object) -> None:
    m = await api.merchant()
    resp = await api.http.post("/v1/payments", headers=m.sk, json={
        "amount": 100, "currency": "USD", "receipt_email": bad, "payment_method": {"type": "card", "card": CARD}})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["param"] == "receipt_email" and err["type"] == "invalid_request_error"
    assert await api.count("SELECT count(*) FROM payments") == 0


async def test_send_link_queues_the_checkout_url_idempotently(api: Api) -> None:
    m, other = await api.merchant(), await api.merchant()
    order = await api.order(m, amount=5_000, currency="INR", receipt="r-1")
    headers = {**m.sk, "Idempotency-Key": "link-1"}
    first = await api.http.post(f"/v1/orders/{order['id']}/send_link", headers=headers, json={"email": BUYER})
    assert first.status_code == 202, first.text
    body = first.json()
    assert body | {"id": None, "created_at": None} == {
        "id": None, "object": "email", "type": "checkout_link", "to": BUYER, "object_id": order["id"],
        "status": "pending", "created_at": None}
    again = await api.http.post(f"/v1/orders/{order['id']}/send_link", headers=headers, json={"email": BUYER})
    assert again.status_code == 202 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    [row] = await emails_of(api, order["id"])
    assert row["id"] == body["id"] and row["data"]["checkout_url"] == order["checkout_url"]
    # without a key each request is one more email (a merchant may send the link again)
    resent = await api.http.post(f"/v1/orders/{order['id']}/send_link", headers=m.sk, json={"email": "b@x.io"})
    assert resent.status_code == 202 and len(await emails_of(api, order["id"])) == 2

    for path_order, who in ((order["id"], other.sk), ("ord_unknown", m.sk)):
        resp = await api.http.post(f"/v1/orders/{path_order}/send_link", headers=who, json={"email": BUYER})
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "resource_missing"
    for bad in ({"email": "nope"}, {}, {"email": BUYER, "cc": BUYER}):
        resp = await api.http.post(f"/v1/orders/{order['id']}/send_link", headers=m.sk, json=bad)
        assert resp.status_code == 400, (bad, resp.text)
    pk = await api.http.post(f"/v1/orders/{order['id']}/send_link", headers=m.pk, json={"email": BUYER})
    assert pk.status_code == 403
    assert len(await emails_of(api, order["id"])) == 2  # none of the refused requests queued anything


async def test_send_link_for_a_paid_order_is_409(api: Api) -> None:
    m = await api.merchant()
    order = await api.order(m, amount=2_500, currency="USD")
    paid = await api.http.post("/v1/payments", headers=m.sk, json={
        "order_id": order["id"], "payment_method": {"type": "card", "card": CARD}})
    assert paid.status_code == 201 and paid.json()["status"] == "captured"
    resp = await api.http.post(f"/v1/orders/{order['id']}/send_link", headers=m.sk, json={"email": BUYER})
    assert resp.status_code == 409
    assert resp.json()["error"] | {"message": None} == {"type": "invalid_state_error", "code": "order_already_paid",
                                                        "message": None}
    assert await emails_of(api, order["id"]) == []


async def _queue(api: Api, m: Merchant, n: int) -> list[str]:
    order = await api.order(m)
    ids = []
    for i in range(n):
        resp = await api.http.post(f"/v1/orders/{order['id']}/send_link", headers=m.sk, json={"email": f"b{i}@x.io"})
        ids.append(resp.json()["id"])
    return ids


async def test_claims_skip_locked_rows_and_leases_expire(api: Api) -> None:
    m = await api.merchant()
    ids = set(await _queue(api, m, 3))
    now = utcnow()
    lease = now + service.LEASE
    # two workers claiming at once never take the same email (the first holds its row locks meanwhile)
    async with transaction(api.gw.pool) as a, transaction(api.gw.pool) as b:
        got_a = await store.claim(a, now=now, lease_until=lease, first_due=now, limit=2)
        got_b = await store.claim(b, now=now, lease_until=lease, first_due=now, limit=2)
    assert len(got_a) == 2 and len(got_b) == 1
    assert {r["id"] for r in got_a} | {r["id"] for r in got_b} == ids
    async with transaction(api.gw.pool) as conn:  # leased: nobody takes them again while the lease lives
        assert await store.claim(conn, now=now, lease_until=lease, first_due=now, limit=10) == []
    later = lease + timedelta(seconds=1)
    async with transaction(api.gw.pool) as conn:  # a dead worker's lease runs out: taken over
        taken = await store.claim(conn, now=later, lease_until=later + service.LEASE, first_due=later, limit=10)
    assert {r["id"] for r in taken} == ids
    # the first worker's late record finds its lease gone and changes nothing
    async with api.gw.pool.connection() as conn:
        stale = await store.record_if_leased(conn, got_a[0]["id"], lease=got_a[0]["locked_until"],
                                             attempt={"at": "x"}, status="sent", next_attempt_at=None, now=later)
        assert stale is None
        row = await store.get(conn, m.merchant_id, got_a[0]["id"])
    assert row is not None and row["status"] == "pending" and row["attempt_count"] == 0


async def test_the_loop_sends_retries_with_the_same_message_id_and_gives_up(api: Api) -> None:
    m = await api.merchant()
    retried_id, second_id, third_id = await _queue(api, m, 3)
    memory = Memory(failures=[SendFailed("connection_failed: ConnectionRefusedError")])
    loop = EmailLoop(api.gw, memory, batch=1)
    loop.schedule = [0.0, 0.0, 0.0]  # three attempts, each due at once

    assert await loop.once() == 1  # the oldest first: it fails once
    async with api.gw.pool.connection() as conn:
        first = await store.get(conn, m.merchant_id, retried_id)
    assert first is not None and first["status"] == "pending" and first["attempt_count"] == 1
    assert first["attempts"][0]["error"].startswith("connection_failed") and first["locked_until"] is None
    while await loop.once():
        pass
    ids = [msg["Message-ID"] for msg in memory.sent]
    assert len(ids) == len(set(ids)) == 3 and memory.tried == 4
    assert f"<{retried_id}@localhost>" in ids  # the retried one kept its Message-ID, derived from its row
    async with api.gw.pool.connection() as conn:
        rows = [await store.get(conn, m.merchant_id, i) for i in (retried_id, second_id, third_id)]
    assert [r["status"] for r in rows if r] == ["sent", "sent", "sent"]
    assert all(r["sent_at"] is not None for r in rows if r)

    # a permanent refusal ends at once; transient failures end when the schedule is spent
    [refused, flaky] = await _queue(api, m, 2)
    memory = Memory(failures=[SendFailed("recipient_refused", code=550, permanent=True)]
                    + [SendFailed("timeout after 15.0s")] * 3)
    loop = EmailLoop(api.gw, memory, batch=1)
    loop.schedule = [0.0, 0.0, 0.0]
    while await loop.once():
        pass
    async with api.gw.pool.connection() as conn:
        done = {i: await store.get(conn, m.merchant_id, i) for i in (refused, flaky)}
    refused_row, flaky_row = done[refused], done[flaky]
    assert refused_row is not None and refused_row["status"] == "failed"
    assert refused_row["attempt_count"] == 1 and refused_row["attempts"][0]["smtp_code"] == 550
    assert flaky_row is not None and flaky_row["status"] == "failed" and flaky_row["attempt_count"] == 3
    assert memory.sent == []


async def test_without_smtp_due_emails_are_recorded_skipped(api: Api) -> None:
    m = await api.merchant()
    ids = await _queue(api, m, 2)
    assert await EmailLoop(api.gw, None).once() == 2
    async with api.gw.pool.connection() as conn:
        rows = [await store.get(conn, m.merchant_id, i) for i in ids]
    assert [r["status"] for r in rows if r] == ["skipped", "skipped"]
    assert await EmailLoop(api.gw, None).once() == 0  # nothing piles up


async def test_finished_emails_are_purged_after_the_retention_pending_ones_never(api: Api) -> None:
    m = await api.merchant()
    finished, waiting, recent = await _queue(api, m, 3)
    async with api.gw.pool.connection() as conn:
        await conn.execute("UPDATE emails SET status = 'sent' WHERE id = ANY(%s)", ([finished, recent],))
        await conn.execute("UPDATE emails SET created_at = now() - interval '31 days' WHERE id = ANY(%s)",
                           ([finished, waiting],))
    assert await service.purge(api.gw) == 1
    async with api.gw.pool.connection() as conn:
        left = {i for i in (finished, waiting, recent) if await store.get(conn, m.merchant_id, i) is not None}
    assert left == {waiting, recent}


async def test_a_stopping_loop_hands_back_the_leases_of_attempts_that_did_not_finish(api: Api) -> None:
    m = await api.merchant()
    [email_id] = await _queue(api, m, 1)
    started = asyncio.Event()

    class Hanging:
        async def send(self, message: EmailMessage) -> None:
            started.set()
            await asyncio.Event().wait()  # an SMTP server that never answers

    loop = EmailLoop(api.gw, Hanging(), poll_s=0.05, stop_grace_s=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await asyncio.wait_for(started.wait(), 10)
    async with api.gw.pool.connection() as conn:
        leased = await store.get(conn, m.merchant_id, email_id)
    assert leased is not None and leased["locked_until"] is not None
    stop.set()
    await asyncio.wait_for(running, 10)
    async with api.gw.pool.connection() as conn:
        back = await store.get(conn, m.merchant_id, email_id)
    # nothing recorded, nothing lost: another worker may send it at once
    assert back is not None and back["locked_until"] is None
    assert (back["status"], back["attempt_count"]) == ("pending", 0)
