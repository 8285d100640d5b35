import itertools
import random

from paygate.domain import idempotency, ledger, retry
from paygate.domain.ids import new_id


def _clock_and_random(id_: str) -> tuple[int, int]:
    body = id_.split("_", 1)[1]
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    return int("".join(f"{alphabet.index(c):05b}" for c in body[:10]), 2), \
        int("".join(f"{alphabet.index(c):05b}" for c in body[10:]), 2)


def test_ids_are_prefixed_unique_and_sort_by_millisecond() -> None:
    ids = [new_id("pay") for _ in range(2000)]
    assert all(i.startswith("pay_") and len(i) == 30 for i in ids)
    assert len(set(ids)) == len(ids)
    clocks = [_clock_and_random(i)[0] for i in ids]
    assert clocks == sorted(clocks)
    assert [_clock_and_random(i)[0] for i in sorted(ids)] == clocks  # sorting ids sorts them by creation ms


def test_ids_carry_80_fresh_random_bits_even_within_a_millisecond() -> None:
    ids = [new_id("ord") for _ in range(4000)]
    by_ms: dict[int, list[int]] = {}
    for i in ids:
        ms, rand = _clock_and_random(i)
        by_ms.setdefault(ms, []).append(rand)
    same_ms = [r for rands in by_ms.values() if len(rands) > 1 for r in rands]
    assert len(same_ms) > 100  # the loop is fast enough to make many ids per millisecond
    for rands in by_ms.values():  # no id is its predecessor plus a small step (audit 13)
        assert all(abs(b - a) > 2**40 for a, b in itertools.pairwise(rands))
    # every one of the 80 bits varies: neither a constant nor a counter hides in the low or high end
    ored, anded = 0, 2**80 - 1
    for _, rand in map(_clock_and_random, ids):
        ored |= rand
        anded &= rand
    assert ored == 2**80 - 1 and anded == 0


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
