"""Customer authentication's pure rules (API.md §15): the requires_action transitions, next_action, return_url
validation and the redirect's query; and the simulator's challenge card rules."""

from __future__ import annotations

import pytest

from paygate.acquirers.simbank import parse_callback_body
from paygate.domain import authentication as rules
from paygate.domain.payments import FINAL, IN_FLIGHT, TRANSITIONS, Status, amount_capturable, can_transition, event_for
from paygate.simbank import cards

S = Status


def test_requires_action_moves_only_to_the_statuses_of_the_table() -> None:
    assert TRANSITIONS[S.REQUIRES_ACTION] == {S.PENDING, S.AUTHORIZED, S.CAPTURED, S.FAILED, S.VOIDED}
    for target in (S.EXPIRED, S.CAPTURING, S.VOIDING, S.REFUNDED, S.PARTIALLY_REFUNDED, S.REQUIRES_ACTION):
        assert not can_transition(S.REQUIRES_ACTION, target), target


def test_nothing_ever_moves_back_into_requires_action() -> None:
    for status in Status:
        assert not can_transition(status, S.REQUIRES_ACTION), status


def test_requires_action_is_neither_final_nor_in_flight_and_holds_nothing() -> None:
    assert S.REQUIRES_ACTION not in FINAL and S.REQUIRES_ACTION not in IN_FLIGHT
    assert amount_capturable(S.REQUIRES_ACTION, 5000) == 0


def test_reaching_requires_action_emits_its_event_and_a_card_pending_none() -> None:
    assert event_for(S.REQUIRES_ACTION, method_type="card") == "payment.requires_action"
    assert event_for(S.PENDING, method_type="card") is None  # the authorization after the challenge is in flight


def test_next_action_only_while_requires_action_with_a_known_page() -> None:
    url = "http://bank/challenge/bop_1"
    assert rules.next_action(S.REQUIRES_ACTION, url, None) == {
        "type": "redirect_to_url", "redirect_to_url": {"url": url, "return_url": None}}
    assert rules.next_action(S.REQUIRES_ACTION, url, "https://shop/x")["redirect_to_url"]["return_url"] == (  # type: ignore[index]
        "https://shop/x")
    assert rules.next_action(S.REQUIRES_ACTION, None, "https://shop/x") is None  # the bank's answer not recorded yet
    for status in Status:
        if status is not S.REQUIRES_ACTION:
            assert rules.next_action(status, url, "https://shop/x") is None, status


@pytest.mark.parametrize("url", ["http://localhost/x", "https://shop.example/done?a=1#frag", "http://127.0.0.1:8080/",
                                 "HTTPS://EXAMPLE.COM"])
def test_any_absolute_http_url_is_a_return_url(url: str) -> None:
    assert rules.return_url_problem(url) is None


@pytest.mark.parametrize("url", ["ftp://x/y", "javascript:alert(1)", "/relative", "http://", "https://u:p@x/",
                                 "http://x:99999/", "http://x/ y", "data:text/html,hi", "x" * 3000, "//example.com/x"])
def test_anything_else_is_refused_with_a_reason(url: str) -> None:
    assert rules.return_url_problem(url)


def test_the_redirect_keeps_the_merchants_query_and_adds_payment_id() -> None:
    out = rules.with_query("https://shop/done?order=7&lang=en#top", payment_id="pay_1")
    assert out == "https://shop/done?order=7&lang=en&payment_id=pay_1#top"
    assert rules.with_query("https://shop/done", payment_id="pay_1") == "https://shop/done?payment_id=pay_1"
    # the merchant's own payment_id parameter is replaced, not doubled
    assert rules.with_query("https://shop/?payment_id=evil&x=", payment_id="pay_2") == (
        "https://shop/?x=&payment_id=pay_2")
    # never re-encoded: a merchant's signed query survives byte for byte (a%20b is not rewritten a+b, nor %3D =)
    signed = "https://shop/done?ref=a%20b&sig=Zm9v%3D&plus=1+2"
    assert rules.with_query(signed, payment_id="pay_3") == signed + "&payment_id=pay_3"


def test_only_the_test_card_is_enrolled_at_paygate_and_at_the_bank() -> None:
    assert rules.requires_authentication("4000000000003220")
    assert not rules.requires_authentication("4111111111111111")
    assert cards.needs_challenge("4000000000003220") and not cards.needs_challenge("4242424242424242")
    assert cards.CHALLENGE_CODE == "123456"


def test_authentication_callbacks_parse_to_their_outcome() -> None:
    body = b'{"id": "bevt_1", "type": "authentication.succeeded", "data": {"reference": "pay_1"}}'
    ok = parse_callback_body("bank", body)
    assert (ok.operation, ok.outcome, ok.reference, ok.amount) == ("authentication", "succeeded", "pay_1", 0)
    bad = parse_callback_body("bank", body.replace(b"succeeded", b"failed"))
    assert bad.outcome == "failed"
