"""Our signatures are Standard Webhooks: the PyPI `standardwebhooks` package verifies them."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paygate.webhooks import signing, standard

BODY = b'{"id":"evt_1","object":"event","type":"payment.captured"}'


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32


def test_standardwebhooks_verifies_our_headers() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "evt_1", int(time.time()), BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(secret).verify(BODY, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"captured", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "evt_2"})


def test_during_a_rotation_both_secrets_sign() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "evt_1", int(time.time()), BODY)
    parts = headers["webhook-signature"].split(" ")
    assert len(parts) == 2 and all(p.startswith("v1,") for p in parts)
    assert Webhook(new).verify(BODY, headers) == Webhook(old).verify(BODY, headers)


def test_signature_matches_the_reference_implementation() -> None:
    secret = signing.new_secret()
    ts = 1_700_000_000
    from datetime import UTC, datetime

    expected = Webhook(secret).sign("evt_9", datetime.fromtimestamp(ts, UTC), BODY.decode())
    assert standard.sign(secret, "evt_9", ts, BODY) == expected
