"""The abuse limits' pure rules (API.md §19): which buckets a request draws from, the pre-authentication
bucket, the client address behind trusted proxies, and the idempotency namespaces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paygate.domain import idempotency as rules
from paygate.domain.ratelimit import Limits, TokenBuckets, retry_after
from paygate.http.clientaddr import bucket, client_ip, parse_trusted
from paygate.services.idempotency import Namespace, scoped_key

PROXIES = parse_trusted("10.0.0.0/8, ::1")


def test_publishable_and_secret_keys_of_a_merchant_have_separate_buckets() -> None:
    limits = Limits(merchant_per_s=1, public_per_min=0)  # burst 2
    assert [limits.principal("publishable", "mer_a", 0.0) for _ in range(3)][:2] == [0, 0]
    assert limits.principal("publishable", "mer_a", 0.0) > 0  # the pk budget is spent ...
    assert limits.principal("secret", "mer_a", 0.0) == 0  # ... the sk budget is not
    assert limits.principal("publishable", "mer_b", 0.0) == 0  # nor another merchant's


def test_public_limit_is_per_address_a_minute_at_once_then_the_steady_rate() -> None:
    limits = Limits(merchant_per_s=0, public_per_min=60)
    assert all(limits.public_address("203.0.113.7", 0.0) == 0 for _ in range(60))
    wait = limits.public_address("203.0.113.7", 0.0)
    assert 0.99 < wait <= 1.0 and retry_after(wait) == 1
    assert limits.public_address("198.51.100.9", 0.0) == 0  # another address is unaffected
    assert limits.public_address("203.0.113.7", 1.0) == 0  # one token a second comes back


def test_failed_authentications_block_an_address_before_any_lookup() -> None:
    limits = Limits(merchant_per_s=0, public_per_min=3)
    for _ in range(10):  # asking does not spend: only failures do
        assert limits.authentication_blocked("a", 0.0) == 0
    for _ in range(3):
        limits.authentication_failed("a", 0.0)
    assert limits.authentication_blocked("a", 0.0) > 0
    assert limits.authentication_blocked("b", 0.0) == 0
    assert limits.authentication_blocked("a", 20.0) == 0  # one attempt back after 20 s (3 a minute)


def test_a_rate_of_zero_switches_a_limit_off() -> None:
    limits = Limits(merchant_per_s=0, public_per_min=0)
    for _ in range(1000):
        limits.authentication_failed("a", 0.0)
    assert limits.authentication_blocked("a", 0.0) == 0
    assert limits.public_address("a", 0.0) == 0 and limits.principal("secret", "m", 0.0) == 0


def test_buckets_are_bounded_in_number() -> None:
    b = TokenBuckets(rate_per_s=1, burst=1, max_keys=100)
    for i in range(1000):
        b.take(f"addr-{i}", 0.0)
    assert len(b) <= 100
    assert b.take("addr-999", 0.0) > 0  # the most recent survive the sweeps


def test_the_socket_peer_is_the_client_unless_it_is_a_trusted_proxy() -> None:
    assert str(client_ip("203.0.113.7", ["1.2.3.4"], PROXIES)) == "203.0.113.7"  # untrusted: header ignored
    assert str(client_ip("203.0.113.7", [], ())) == "203.0.113.7"
    assert str(client_ip("10.0.0.2", ["198.51.100.9"], PROXIES)) == "198.51.100.9"
    assert client_ip(None, [], PROXIES) is None


def test_forwarded_for_is_read_from_the_right_past_trusted_hops_only() -> None:
    # The client wrote "1.2.3.4" itself; the proxies appended the address they saw.
    assert str(client_ip("10.0.0.2", ["1.2.3.4, 198.51.100.9, 10.0.0.3"], PROXIES)) == "198.51.100.9"
    assert str(client_ip("10.0.0.2", ["1.2.3.4", "198.51.100.9"], PROXIES)) == "198.51.100.9"  # repeated header
    assert str(client_ip("10.0.0.2", ["1.2.3.4, nonsense"], PROXIES)) == "10.0.0.2"  # stop at what we vouch for
    assert str(client_ip("10.0.0.2", ["10.0.0.9"], PROXIES)) == "10.0.0.9"  # only proxies: the leftmost
    assert str(client_ip("::1", ["[2001:db8::5]:443"], PROXIES)) == "2001:db8::5"
    assert str(client_ip("::ffff:10.0.0.2", ["198.51.100.9:1234"], PROXIES)) == "198.51.100.9"


def test_ipv6_clients_are_counted_per_64() -> None:
    assert bucket(client_ip("2001:db8:1:2::5", [], ())) == bucket(client_ip("2001:db8:1:2:ffff::1", [], ()))
    assert bucket(client_ip("2001:db8:1:2::5", [], ())) != bucket(client_ip("2001:db8:1:3::5", [], ()))
    assert bucket(client_ip("203.0.113.7", [], ())) == "203.0.113.7"


def test_trusted_proxies_setting() -> None:
    assert parse_trusted("") == ()
    assert [str(n) for n in parse_trusted(" 127.0.0.1 ,10.1.2.3/16")] == ["127.0.0.1/32", "10.1.0.0/16"]


printable_keys = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=255)


NAMESPACES: list[Namespace] = ["publishable", "checkout", "dashboard"]


@given(printable_keys, printable_keys, st.sampled_from(NAMESPACES))
def test_no_client_key_spells_another_namespaces_key(mine: str, theirs: str, namespace: Namespace) -> None:
    assert rules.valid_key(mine) and rules.valid_key(theirs)
    assert scoped_key("secret", mine) == mine  # the merchant's own keys are stored as sent
    assert scoped_key(namespace, theirs) != scoped_key("secret", mine)
    other: Namespace = "checkout" if namespace != "checkout" else "dashboard"
    assert scoped_key(namespace, theirs) != scoped_key(other, mine)
