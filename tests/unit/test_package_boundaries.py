"""The simulator and the gateway are separate parties (docs/decisions/0014): the simulator imports nothing
of the gateway but the Standard Webhooks primitives and the neutral migration runner, and the gateway
never imports the simulator (only the command line, which runs both, does)."""

from __future__ import annotations

import ast
from pathlib import Path

import paygate

ROOT = Path(paygate.__file__).parent
SIMBANK_MAY_USE = ("paygate.simbank", "paygate.webhooks.standard", "paygate.sqlmigrate", "paygate.heap")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("paygate")}


def test_the_simulator_imports_nothing_of_the_gateway() -> None:
    files = sorted((ROOT / "simbank").rglob("*.py"))
    assert files
    offending = {str(f.relative_to(ROOT)): sorted(n for n in imports(f) if not n.startswith(SIMBANK_MAY_USE))
                 for f in files}
    assert {f: names for f, names in offending.items() if names} == {}


def test_the_gateway_never_imports_the_simulator() -> None:
    gateway = [f for f in ROOT.rglob("*.py") if "simbank" not in f.relative_to(ROOT).parts and f.name != "cli.py"]
    offending = {str(f.relative_to(ROOT)): sorted(n for n in imports(f) if n.startswith("paygate.simbank"))
                 for f in gateway}
    assert {f: names for f, names in offending.items() if names} == {}


def test_the_migration_runner_is_neutral() -> None:
    assert imports(ROOT / "sqlmigrate.py") == set()
