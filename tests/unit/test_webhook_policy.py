"""The pure rules of delivery: the retry schedule, which secrets sign, the public objects, input checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from paygate.api.routes_webhooks import CreateEndpoint, UpdateEndpoint
from paygate.domain.retry import parse_schedule
from paygate.domain.views import webhook_delivery as delivery_view
from paygate.domain.views import webhook_endpoint as endpoint_view
from paygate.domain.webhooks import EVENT_TYPES, Attempt, decide, derive, signing_secrets

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
DEFAULT = parse_schedule("0,5,300,1800,7200,18000,36000,36000")


def _attempt(status: int | None, retry_after_s: float | None = None) -> Attempt:
    return Attempt(at=NOW, response_status=status, duration_ms=1, retry_after_s=retry_after_s)


def test_the_default_schedule_makes_eight_attempts_with_jittered_delays() -> None:
    for made, delay in enumerate(DEFAULT[1:]):
        d = decide(_attempt(500), made, DEFAULT, NOW)
        assert d.status == "pending" and d.next_attempt_at is not None
        waited = (d.next_attempt_at - NOW).total_seconds()
        assert 0.8 * delay <= waited <= 1.2 * delay
    last = decide(_attempt(500), len(DEFAULT) - 1, DEFAULT, NOW)
    assert last.status == "failed" and last.next_attempt_at is None


def test_exactly_as_many_attempts_as_delays() -> None:
    schedule = parse_schedule("0,1,2,3")
    made, status = 0, "pending"
    while status == "pending":
        status = decide(_attempt(None), made, schedule, NOW).status
        made += 1
    assert made == 4 and status == "failed"


def test_success_ends_and_gone_fails_at_once() -> None:
    assert decide(_attempt(200), 0, DEFAULT, NOW).status == "succeeded"
    assert decide(_attempt(299), 6, DEFAULT, NOW).next_attempt_at is None
    assert decide(_attempt(410), 0, DEFAULT, NOW).status == "failed"


def test_retry_after_wins_only_when_longer() -> None:
    long = decide(_attempt(503, retry_after_s=3600), 0, DEFAULT, NOW)
    assert long.next_attempt_at == NOW + timedelta(seconds=3600)
    short = decide(_attempt(429, retry_after_s=1), 2, DEFAULT, NOW)
    assert short.next_attempt_at is not None and short.next_attempt_at - NOW >= timedelta(seconds=1440)


def test_the_previous_secret_signs_for_its_24_hours_only() -> None:
    row = {"secret": "seed-new", "previous_secret": "seed-old", "previous_secret_expires_at": NOW}
    key = "a-key-of-this-gateway"
    new, old = derive("seed-new", key), derive("seed-old", key)
    assert new.startswith("whsec_") and new != old
    assert signing_secrets(row, NOW - timedelta(seconds=1), key) == [new, old]
    assert signing_secrets(row, NOW, key) == [new]
    assert signing_secrets({**row, "previous_secret": None}, NOW - timedelta(days=1), key) == [new]
    assert signing_secrets(row, NOW, "another-key") == [derive("seed-new", "another-key")] != [new]


def test_public_objects_have_the_contract_fields() -> None:
    ep = {"id": "we_1", "url": "https://x", "enabled_events": ["*"], "description": None, "disabled": False,
          "created_at": NOW, "updated_at": NOW, "secret": "seed-s"}
    stamp = "2030-01-01T12:00:00.000000Z"
    assert endpoint_view(ep) == {"id": "we_1", "object": "webhook_endpoint", "url": "https://x",
                                 "enabled_events": ["*"], "description": None, "disabled": False,
                                 "legacy_signature": False, "created_at": stamp, "updated_at": stamp}
    assert endpoint_view({**ep, "legacy_signature": True})["legacy_signature"] is True
    assert endpoint_view(ep, secret="whsec_shown")["secret"] == "whsec_shown"
    d = {"id": "wd_1", "endpoint_id": "we_1", "event_id": "evt_1", "event_type": "order.paid", "status": "pending",
         "attempts": [], "next_attempt_at": NOW, "created_at": NOW, "locked_until": None, "attempt_count": 0}
    assert list(delivery_view(d)) == ["id", "object", "endpoint_id", "event_id", "event_type", "status", "attempts",
                                      "next_attempt_at", "created_at"]


@pytest.mark.parametrize("url", ["https://example.com/h", "http://127.0.0.1:8080/x?y=1", "HTTPS://EXAMPLE.COM"])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert CreateEndpoint(url=url, enabled_events=["*"]).url == url


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com/h", "https://", "javascript:alert(1)",
                                 "http://example.com:99999/"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        CreateEndpoint(url=url, enabled_events=["*"])


def test_enabled_events_are_star_alone_or_known_types() -> None:
    assert CreateEndpoint(url="https://x.y", enabled_events=list(EVENT_TYPES)).enabled_events == list(EVENT_TYPES)
    assert CreateEndpoint(url="https://x.y", enabled_events=["order.paid", "order.paid"]).enabled_events == [
        "order.paid"]
    for bad in ([], ["*", "order.paid"], ["payment.created"], [1]):
        with pytest.raises(ValidationError):
            CreateEndpoint(url="https://x.y", enabled_events=bad)
    with pytest.raises(ValidationError):
        UpdateEndpoint.model_validate({"description": "not patchable"})
