import random

from paygate.domain import idempotency, ledger, retry
from paygate.domain.ids import new_id


def test_ids_are_prefixed_unique_and_time_sorted() -> None:
    ids = [new_id("pay") for _ in range(2000)]
    assert all(i.startswith("pay_") and len(i) == 30 for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_fingerprint_compares_parsed_json() -> None:
    a = idempotency.fingerprint("POST", "/v1/payments", {"amount": 1, "currency": "USD"}, "k")
    b = idempotency.fingerprint("POST", "/v1/payments", {"currency": "USD", "amount": 1}, "k")
    c = idempotency.fingerprint("POST", "/v1/payments", {"currency": "USD", "amount": 2}, "k")
    d = idempotency.fingerprint("POST", "/v1/refunds", {"currency": "USD", "amount": 1}, "k")
    e = idempotency.fingerprint("POST", "/v1/payments", {"amount": 1, "currency": "USD"}, "other key")
    assert a == b and a != c and a != d and a != e


def test_key_validity() -> None:
    assert idempotency.valid_key("k" * 255)
    assert not idempotency.valid_key("k" * 256)
    assert not idempotency.valid_key("")
    assert not idempotency.valid_key("tab\there")


def test_postings_balance() -> None:
    assert ledger.balanced(ledger.capture_postings(1000, 30))
    assert ledger.balanced(ledger.refund_postings(500))
    assert ledger.capture_postings(1000, 0) == [
        ledger.Posting("acquirer_receivable", "debit", 1000), ledger.Posting("merchant_balance", "credit", 1000)]


def test_backoff_and_schedule() -> None:
    rng = random.Random(1)
    for attempt in range(10):
        assert 0 <= retry.backoff(attempt, 0.05, 2.0, rng) <= min(2.0, 0.05 * 2**attempt)
    assert retry.parse_schedule("0,1,2,3") == [0, 1, 2, 3]
    for _ in range(100):
        assert 4.0 <= retry.jittered(5.0, rng) <= 6.0


def test_token_bucket() -> None:
    from paygate.domain.ratelimit import TokenBuckets, retry_after

    b = TokenBuckets(rate_per_s=10, burst=3)
    assert [b.take("m", 0.0) for _ in range(3)] == [0, 0, 0]
    wait = b.take("m", 0.0)
    assert 0.09 < wait <= 0.1 and retry_after(wait) == 1
    assert b.take("other", 0.0) == 0  # per key
    assert b.take("m", 0.2) == 0  # refilled
