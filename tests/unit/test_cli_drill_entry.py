"""`paygate drill` is a thin entry: it loads the drill from the source checkout, and says so when there is none."""

from __future__ import annotations

import pytest
import typer

from paygate.cli import _source_checkout_module


def test_the_drill_is_loaded_from_the_checkout() -> None:
    drill = _source_checkout_module("tests/chaos/drill.py")
    cfg = drill.DrillConfig(payments=3)
    assert cfg.payments == 3 and callable(drill.run)


def test_without_the_file_it_exits_2_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        _source_checkout_module("tests/chaos/not-here.py")
    assert exited.value.exit_code == 2
    err = capsys.readouterr().err
    assert "runs from a source checkout" in err and "tests/chaos/not-here.py" in err
