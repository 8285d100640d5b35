"""PAYGATE_ACQUIRERS: the configured acquirers, in order (API.md §14)."""

from __future__ import annotations

import pytest

from paygate.config import Settings
from paygate.domain.acquirers import AcquirerConfigError, parse_acquirers


def test_unset_means_one_acquirer_named_bank_at_the_bank_url() -> None:
    assert parse_acquirers(None, "http://127.0.0.1:8787/") == {"bank": "http://127.0.0.1:8787"}
    assert parse_acquirers("  ", "http://b:1") == {"bank": "http://b:1"}


def test_names_and_urls_in_configuration_order() -> None:
    got = parse_acquirers("beta=http://127.0.0.1:8788/, alpha=https://alpha.example", "http://unused")
    assert list(got) == ["beta", "alpha"]
    assert got == {"beta": "http://127.0.0.1:8788", "alpha": "https://alpha.example"}


@pytest.mark.parametrize("value", [
    "alpha", "Alpha=http://a", "1a=http://a", "a-b=http://a", "a=ftp://a", "a=http://", "a=http://x,a=http://y",
    "x" * 32 + "=http://a", ",", "=http://a",
])
def test_malformed_lists_are_refused_with_a_message(value: str) -> None:
    with pytest.raises(AcquirerConfigError, match="PAYGATE_ACQUIRERS"):
        parse_acquirers(value, "http://b")


def test_settings_read_the_environment_list() -> None:
    settings = Settings(acquirers="alpha=http://127.0.0.1:1,beta=http://127.0.0.1:2")
    assert settings.acquirer_urls == {"alpha": "http://127.0.0.1:1", "beta": "http://127.0.0.1:2"}
    assert Settings(bank_url="http://127.0.0.1:9").acquirer_urls == {"bank": "http://127.0.0.1:9"}
