"""Recovery (issue 4): bank faults, a bank that is away, expiry, and abandoned idempotency keys."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.e2e.client import Api, card, new_key
from tests.e2e.procs import MakeStack, Stack
from tests.polling import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def db_rows(stack: Stack, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute(sql, params).fetchall()


async def test_lost_bank_responses_are_recovered_by_retrying_with_the_same_key(make_stack: MakeStack) -> None:
    stack = make_stack(worker=False, PAYGATE_BANK_LOST_RATE="1")
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        r = await api.pay(1234)
        assert r.status_code == 201 and r.json()["status"] == "captured", r.text
        ops = await api.bank_ops(r.json()["id"])
        assert [(o["type"], o["status"]) for o in ops] == [("authorization", "succeeded"), ("capture", "succeeded")]


async def test_a_bank_that_never_acts_gives_processing_error_not_a_guess(make_stack: MakeStack) -> None:
    stack = make_stack(worker=False, PAYGATE_BANK_FAILURE_RATE="1")
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        r = await api.pay(1234)
        assert r.status_code == 402 and r.json()["error"]["code"] == "processing_error"
        assert await api.bank_ops(r.json()["error"]["payment"]["id"]) == []


async def test_a_bank_that_hangs_past_our_timeout_is_fenced_off(make_stack: MakeStack) -> None:
    """The original authorization arrives at the bank after we gave up: the inquiry's tombstone wins."""
    stack = make_stack(worker=False, PAYGATE_BANK_LATENCY_MS="1500-1500", PAYGATE_BANK_TIMEOUT_S="0.3",
                       PAYGATE_BANK_ATTEMPTS="2")
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        before = await api.bank_card("4111111111111111")
        r = await api.pay(777)
        assert r.status_code == 402 and r.json()["error"]["code"] == "processing_error", r.text
        pid = r.json()["error"]["payment"]["id"]

        # Both originals (two attempts, one key) reach the bank's store 1.5 s after they were sent, after
        # the inquiry's tombstone: the bank lists each as received and refused, and it acted on neither.
        async def both_refused() -> list[dict[str, Any]] | None:
            ops = await api.bank_ops(pid)
            return ops if len(ops) >= 2 else None

        ops = await eventually(both_refused, within_s=30, interval=0.2)
        assert [(o["type"], o["status"], o["failure_code"]) for o in ops] == [
            ("authorization", "failed", "processing_error")] * 2
        assert await api.bank_card("4111111111111111") == before


async def test_capture_and_refund_while_the_bank_is_away_finish_in_the_background(make_stack: MakeStack) -> None:
    stack = make_stack(PAYGATE_BANK_TIMEOUT_S="0.5", PAYGATE_BANK_ATTEMPTS="2")
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        auth = (await api.pay(5000, capture_method="manual")).json()
        paid = (await api.pay(3000)).json()
        stack.procs["bank"].kill()
        cap = await api.post(f"/v1/payments/{auth['id']}/capture", {"amount": 4000}, key=new_key())
        assert cap.status_code == 200 and cap.json()["status"] == "capturing", cap.text
        ref = await api.post("/v1/refunds", {"payment_id": paid["id"], "amount": 1000})
        assert ref.status_code == 201 and ref.json()["status"] == "pending"
        # while in flight, another capture is refused with a hint to come back, and nothing changes
        again = await api.post(f"/v1/payments/{auth['id']}/capture")
        assert again.status_code == 409 and again.json()["error"]["code"] == "payment_in_flight"
        assert "retry-after" in again.headers
        early_refund = await api.post("/v1/refunds", {"payment_id": auth["id"]}, key="early-refund")
        assert early_refund.status_code == 409 and early_refund.json()["error"]["code"] == "payment_in_flight"
        stack.procs["bank"].start()

        async def settled() -> bool:
            p = (await api.get(f"/v1/payments/{auth['id']}")).json()
            r = (await api.get(f"/v1/refunds/{ref.json()['id']}")).json()
            return bool(p["status"] == "captured" and r["status"] == "succeeded")

        await eventually(settled, within_s=90, interval=0.2)
        p = (await api.get(f"/v1/payments/{auth['id']}")).json()
        assert p["amount_captured"] == 4000
        assert [h["status"] for h in p["status_history"]] == ["pending", "authorized", "capturing", "captured"]
        assert [o["type"] for o in await api.bank_ops(auth["id"])] == ["authorization", "capture"]
        late = await api.post("/v1/refunds", {"payment_id": auth["id"], "amount": 100}, key="early-refund")
        assert late.status_code == 201 and "idempotent-replayed" not in late.headers  # the 409 was not stored
        refunds = [o for o in await api.bank_ops(paid["id"]) if o["type"] == "refund"]
        assert [o["amount"] for o in refunds] == [1000]
        assert (await api.get(f"/v1/payments/{paid['id']}")).json()["amount_refunded"] == 1000
        events = db_rows(stack, "SELECT type FROM events WHERE object_id = %s", auth["id"])
        assert sorted(e[0] for e in events) == ["payment.authorized", "payment.captured"]
        journals = db_rows(stack, "SELECT kind FROM ledger_journals WHERE payment_id = %s ORDER BY id", paid["id"])
        assert [j[0] for j in journals] == ["capture", "refund"]


async def test_uncaptured_authorizations_expire_and_release_the_hold(make_stack: MakeStack) -> None:
    stack = make_stack(PAYGATE_AUTH_TTL="2")
    m = stack.merchant()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        number = "4000056655665556"
        before = await api.bank_card(number)
        p = (await api.pay(2500, method=card(number), capture_method="manual")).json()
        assert p["status"] == "authorized" and p["authorization_expires_at"] is not None
        assert (await api.bank_card(number))["held"] == before["held"] + 2500

        async def expired() -> bool:
            return bool((await api.get(f"/v1/payments/{p['id']}")).json()["status"] == "expired")

        await eventually(expired, within_s=30, interval=0.2)
        final = (await api.get(f"/v1/payments/{p['id']}")).json()
        assert final["amount_capturable"] == 0 and final["authorization_expires_at"] is None
        assert (await api.bank_card(number))["held"] == before["held"]
        assert [o["type"] for o in await api.bank_ops(p["id"])] == ["authorization", "void"]
        events = db_rows(stack, "SELECT type FROM events WHERE object_id = %s ORDER BY id", p["id"])
        assert [e[0] for e in events] == ["payment.authorized", "payment.expired"]
        late = await api.post(f"/v1/payments/{p['id']}/capture")
        assert late.status_code == 409 and late.json()["error"]["code"] == "payment_not_capturable"


async def test_an_abandoned_request_is_completed_for_its_key(make_stack: MakeStack) -> None:
    """The API dies after the bank authorized; nobody retries. The worker finishes the payment and stores
    the response on the key, so a retry days later still gets the same single payment."""
    stack = make_stack(PAYGATE_IDEMPOTENCY_LOCK_S="2", PAYGATE_CRASH_POINT="after_bank_authorize")
    m = stack.merchant()
    key = new_key()
    async with Api(stack.api_url, m["secret_key"], stack.bank_url) as api:
        with pytest.raises(Exception):  # noqa: B017 - the connection dies with the process
            await api.pay(4321, key=key, capture_method="manual")
        stack.procs["api"].kill()

        async def completed() -> bool:
            rows = db_rows(stack, "SELECT response_status FROM idempotency_keys WHERE key = %s", key)
            return bool(rows and rows[0][0] is not None)

        await eventually(completed, within_s=90, interval=0.2)
        rows = db_rows(stack, "SELECT id, status FROM payments")
        assert len(rows) == 1
        pid, status = rows[0]
        # no card data was kept, so the worker resolved the authorization by inquiry: it had been applied
        assert status == "authorized"
        stack.procs["api"].env.pop("PAYGATE_CRASH_POINT")
        stack.procs["api"].start()
        r = await api.pay(4321, key=key, capture_method="manual")
        assert r.status_code == 201 and r.json()["id"] == pid and r.headers["idempotent-replayed"] == "true"
        assert [o["type"] for o in await api.bank_ops(pid)] == ["authorization"]
