"""The command line's view of the banks: which `serve` starts and `migrate` migrates, a bad --name, and the
simulator's configuration taken from the PAYGATE_BANK_* settings."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from paygate.cli import _banks_to_serve, app, bank_config, bank_names
from paygate.config import Settings
from paygate.simbank.config import schema_for


def test_serve_starts_one_bank_per_acquirer_on_its_urls_port() -> None:
    settings = Settings(acquirers="alpha=http://127.0.0.1:8801,beta=http://localhost:8802/")
    assert _banks_to_serve(settings, 8787) == [("alpha", "127.0.0.1", 8801), ("beta", "localhost", 8802)]
    assert bank_names(settings) == ["alpha", "beta"]
    assert _banks_to_serve(Settings(), 9999) == [("bank", "127.0.0.1", 9999)]
    assert bank_names(Settings()) == ["bank"]


def test_each_bank_name_has_its_own_schema() -> None:
    assert [schema_for(n) for n in ("bank", "alpha", "beta_2")] == ["bank", "bank_alpha", "bank_beta_2"]
    with pytest.raises(ValueError):
        schema_for("Alpha; DROP")


def test_the_simulator_gets_its_own_configuration() -> None:
    cfg = bank_config(Settings(bank_failure_rate=0.25, bank_latency_ms="5-9", bank_webhook_secret="whsec_x"), "alpha")
    assert (cfg.name, cfg.schema, cfg.failure_rate, cfg.latency_ms, cfg.webhook_secret) == (
        "alpha", "bank_alpha", 0.25, "5-9", "whsec_x")


def test_a_bad_bank_name_exits_2_before_anything_starts() -> None:
    result = CliRunner().invoke(app, ["bank", "--name", "Not-A-Name"])
    assert result.exit_code == 2
    assert "--name" in result.output
