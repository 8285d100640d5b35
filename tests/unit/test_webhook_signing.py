"""Our signatures are Standard Webhooks: the PyPI `standardwebhooks` package verifies them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paygate.domain.webhooks import legacy_signature
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
    assert signing.sign(secret, "evt_9", ts, BODY) == expected


# The test vector of the Standard Webhooks specification (and of the `standardwebhooks` package's own
# tests); docs/decisions/0011-standard-webhooks-signer.md records why the gateway signs with its own code.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specifications_test_vector_is_what_we_and_the_package_compute() -> None:
    ours = standard.sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
    theirs = Webhook(SPEC_SECRET).sign(SPEC_ID, datetime.fromtimestamp(SPEC_TS, tz=UTC), SPEC_BODY)
    assert ours == theirs == SPEC_SIGNATURE
    assert standard.verify(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, f"v1,bm90IGl0 {SPEC_SIGNATURE}", now=SPEC_TS)
    assert not standard.verify(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIGNATURE, now=SPEC_TS + 301)


@pytest.mark.parametrize("signature", ["v1,a,b", "v1", "", "v2,abc", "v1,!!!"])
def test_malformed_signatures_are_a_plain_no_where_the_package_would_raise(signature: str) -> None:
    now = int(time.time())
    assert standard.verify(SPEC_SECRET, SPEC_ID, now, b"\xff not utf-8", signature, now=now) is False
    assert standard.verify(SPEC_SECRET, SPEC_ID, now, SPEC_BODY, signature, now=now) is False


def test_the_legacy_signature_is_hex_hmac_of_the_body_keyed_with_the_secret_string() -> None:
    secret, body = "whsec_c2VjcmV0", b'{"id":"evt_1"}'
    assert legacy_signature(secret, body) == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert legacy_signature(secret, body) == legacy_signature(secret, body).lower()
    assert legacy_signature(secret, body + b" ") != legacy_signature(secret, body)
