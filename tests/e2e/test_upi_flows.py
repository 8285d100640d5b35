"""UPI end to end (API.md §5, §12): `paygate api` + the real `paygate bank`, whose signed callback settles the
payment 100-300 ms after it was created. No worker: only the callback can finish these payments."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.procs import MakeStack
from tests.e2e.test_upi_support import Db, Shop


@pytest.fixture
def shop(make_stack: MakeStack) -> Iterator[Shop]:
    s = Shop.create(make_stack(worker=False))
    yield s
    s.close()


def _bank_ops(shop: Shop, payment_id: str) -> list[tuple[str, str]]:
    resp = httpx.get(f"{shop.stack.bank_url}/v1/operations", params={"reference": payment_id}, timeout=10)
    return [(op["type"], op["status"]) for op in resp.json()["data"]]


def test_upi_success_is_pending_then_captured_by_the_banks_callback(shop: Shop) -> None:
    db = Db(shop.stack.database_url)
    p = shop.upi("success@upi", amount=12_345)
    assert (p["payment_method"], p["capture_method"], p["amount_capturable"]) == (
        {"type": "upi", "upi": {"vpa": "success@upi"}}, "automatic", 0)
    assert [h["status"] for h in p["status_history"]] == ["pending"]
    done = shop.final(p["id"])
    assert (done["status"], done["amount_captured"], done["failure_code"]) == ("captured", 12_345, None)
    assert [h["status"] for h in done["status_history"]] == ["pending", "captured"]
    assert db.event_types(p["id"]) == ["payment.pending", "payment.captured"]
    pending_event = db.one("SELECT data FROM events WHERE object_id = %s AND type = 'payment.pending'", p["id"])
    assert pending_event is not None and pending_event["data"] == p  # the object as it was when created
    assert db.journals(p["id"]) == 1
    rows = db.all("SELECT type, outcome, duplicates FROM bank_events WHERE reference = %s", p["id"])
    assert rows == [{"type": "operation.succeeded", "outcome": "applied", "duplicates": 0}]
    assert _bank_ops(shop, p["id"]) == [("authorization", "succeeded"), ("capture", "succeeded")]


def test_upi_failure_is_pending_then_failed(shop: Shop) -> None:
    db = Db(shop.stack.database_url)
    p = shop.upi("failure@upi")
    done = shop.final(p["id"])
    assert (done["status"], done["failure_code"], done["amount_captured"]) == ("failed", "payment_declined", 0)
    assert done["failure_message"]
    assert db.event_types(p["id"]) == ["payment.pending", "payment.failed"]
    assert db.journals(p["id"]) == 0
    assert _bank_ops(shop, p["id"]) == [("authorization", "failed")]
    listed = shop.sk.get("/v1/payments", params={"status": "failed"}).json()["data"]
    assert [x["id"] for x in listed] == [p["id"]]


def test_an_invalid_vpa_is_refused_before_anything_happens(shop: Shop) -> None:
    db = Db(shop.stack.database_url)
    for vpa in ("no-at-sign", "a@", "@bank", "x@upi", "name@bank!", "name@1bank", ""):
        resp = shop.sk.post("/v1/payments", json={"amount": 100, "currency": "INR",
                                                   "payment_method": {"type": "upi", "upi": {"vpa": vpa}}})
        assert resp.status_code == 400, (vpa, resp.text)
        err = resp.json()["error"]
        assert (err["type"], err["code"], err["param"]) == (
            "invalid_request_error", "invalid_vpa", "payment_method[upi][vpa]"), vpa
    missing = shop.sk.post("/v1/payments", json={"amount": 100, "currency": "INR", "payment_method": {"type": "upi"}})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "parameter_missing"
    assert db.value("SELECT count(*) FROM payments") == 0


def test_manual_capture_does_not_apply_to_upi(shop: Shop) -> None:
    p = shop.upi(capture_method="manual")
    assert p["capture_method"] == "automatic"
    assert shop.final(p["id"])["status"] == "captured"
