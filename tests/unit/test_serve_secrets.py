"""The secrets `paygate serve` keeps under PAYGATE_HOME: generated once, 0600, reused, the environment first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paygate.config import GATEWAY_SECRETS, Settings, env_name, secret_problems
from paygate.serve_secrets import FILE_NAME, fresh, load_or_create


def test_first_start_generates_strong_secrets_readable_only_by_us(tmp_path: Path) -> None:
    home = tmp_path / "home"
    values, created = load_or_create(home, {})
    assert sorted(created) == sorted(values) == sorted(env_name(f) for f in GATEWAY_SECRETS)
    path = home / FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == values
    settings = Settings(**{f: values[env_name(f)] for f in GATEWAY_SECRETS})  # type: ignore[arg-type]
    assert secret_problems(settings, GATEWAY_SECRETS) == []
    assert [p.name for p in home.iterdir()] == [FILE_NAME]  # no temporary file left


def test_later_starts_reuse_them_and_tighten_the_mode(tmp_path: Path) -> None:
    first, _ = load_or_create(tmp_path, {})
    (tmp_path / FILE_NAME).chmod(0o644)
    again, created = load_or_create(tmp_path, {})
    assert again == first and created == []
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_the_environment_wins_and_is_not_stored(tmp_path: Path) -> None:
    mine = fresh()["PAYGATE_SECRET_KEY"]
    values, created = load_or_create(tmp_path, {"PAYGATE_SECRET_KEY": mine})
    assert values["PAYGATE_SECRET_KEY"] == mine and "PAYGATE_SECRET_KEY" not in created
    assert mine not in (tmp_path / FILE_NAME).read_text()


def test_fresh_values_differ_each_time() -> None:
    assert fresh() != fresh()


def test_a_damaged_file_is_an_error_not_new_keys(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        load_or_create(tmp_path, {})
    assert (tmp_path / FILE_NAME).read_text() == "[1, 2]"
