"""`vault.reveal` is for the payment path only (DESIGN.md: nothing else reads card numbers): outside the
vault itself (rekey opens records to reseal them), only use cases in services/ may call it — never a
route, a page, a view, a store module, the worker or the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import paygate

SRC = Path(paygate.__file__).parent
_USE = re.compile(r"\breveal\b")


def test_only_the_vault_and_services_call_reveal() -> None:
    callers = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if _USE.search(p.read_text()))
    assert "vault/sealing.py" in callers  # the scan sees the definition
    outside = [c for c in callers if not (c.startswith("vault/") or c.startswith("services/"))]
    assert outside == []
