"""The production check shared by `paygate api`, `worker` and `bank` (API.md §19): which variable it names."""

from __future__ import annotations

import base64
import secrets

import pytest

from paygate.config import (
    BANK_SECRETS,
    DEFAULT_BANK_WEBHOOK_SECRET,
    DEFAULT_SECRET_KEY,
    GATEWAY_SECRETS,
    Settings,
    production_refusal,
    secret_problems,
)


def strong() -> dict[str, str]:
    return {"secret_key": secrets.token_hex(32), "fingerprint_key": secrets.token_hex(32),
            "bank_webhook_secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "vault_key": secrets.token_hex(32)}


def test_strong_secrets_start_in_production() -> None:
    settings = Settings(**strong())  # type: ignore[arg-type]
    assert settings.env == "production"  # the default
    assert secret_problems(settings, GATEWAY_SECRETS) == []
    assert production_refusal(settings, GATEWAY_SECRETS) is None


def test_defaults_are_unset_and_refused_in_production_only() -> None:
    settings = Settings()
    assert settings.bank_webhook_secret == DEFAULT_BANK_WEBHOOK_SECRET  # in-process use keeps working
    assert secret_problems(settings, GATEWAY_SECRETS) == [
        "PAYGATE_SECRET_KEY is not set", "PAYGATE_FINGERPRINT_KEY is not set",
        "PAYGATE_BANK_WEBHOOK_SECRET is not set", "PAYGATE_VAULT_KEY is not set"]
    refusal = production_refusal(settings, GATEWAY_SECRETS)
    assert refusal is not None and "\n" not in refusal and "PAYGATE_SECRET_KEY is not set" in refusal
    assert production_refusal(Settings(env="development"), GATEWAY_SECRETS) is None


@pytest.mark.parametrize("field", GATEWAY_SECRETS)
def test_each_secret_is_named_when_shipped_or_short(field: str) -> None:
    name = f"PAYGATE_{field.upper()}"
    shipped = Settings(**{**strong(), field: DEFAULT_SECRET_KEY})  # type: ignore[arg-type]
    assert production_refusal(shipped, GATEWAY_SECRETS) is not None
    assert secret_problems(shipped, GATEWAY_SECRETS) == [f"{name} is a value shipped in paygate's source"]
    short = Settings(**{**strong(), field: "whsec_" + base64.b64encode(b"0123456789abcdef").decode()})  # type: ignore[arg-type]
    [problem] = secret_problems(short, GATEWAY_SECRETS)
    assert problem.startswith(f"{name} carries 16 bytes")


def test_the_bank_checks_only_its_callback_secret() -> None:
    settings = Settings(bank_webhook_secret=strong()["bank_webhook_secret"])
    assert production_refusal(settings, BANK_SECRETS) is None
    assert production_refusal(settings, GATEWAY_SECRETS) is not None
    refusal = production_refusal(Settings(bank_webhook_secret=DEFAULT_BANK_WEBHOOK_SECRET), BANK_SECRETS)
    assert refusal is not None and "PAYGATE_BANK_WEBHOOK_SECRET is a value shipped" in refusal


def test_every_vault_key_is_checked() -> None:
    current, older = secrets.token_hex(32), secrets.token_hex(32)
    assert secret_problems(Settings(**{**strong(), "vault_key": f"{current},{older}"}),  # type: ignore[arg-type]
                           GATEWAY_SECRETS) == []
    problems = secret_problems(Settings(**{**strong(), "vault_key": f"{current},{DEFAULT_SECRET_KEY},"}),  # type: ignore[arg-type]
                               GATEWAY_SECRETS)
    assert problems == ["PAYGATE_VAULT_KEY (key 2 of 3) is a value shipped in paygate's source",
                        "PAYGATE_VAULT_KEY (key 3 of 3) is not set"]
