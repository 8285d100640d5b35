"""The README's quick start, run as a new user would paste it into a shell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.procs import Stack

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart() -> str:
    text = README.read_text()
    start = text.index("```sh\nSK=")
    return text[start + len("```sh\n"): text.index("```", start + 6)]


def test_readme_quickstart_works(shared_stack: Stack) -> None:
    m = shared_stack.merchant()
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", quickstart()], capture_output=True, text=True,
                          timeout=120, check=False, env={"PATH": "/usr/bin:/bin", "SK": m["secret_key"],
                                                         "API": shared_stack.api_url})
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.replace("}{", "}\n{").splitlines() if line.strip()]
    captured, refund, listed, ledger, balance = lines
    assert captured["status"] == "captured" and captured["amount_captured"] == 3000
    assert refund["object"] == "refund" and refund["status"] == "succeeded"
    assert listed["data"][0]["status"] == "partially_refunded" and listed["data"][0]["amount_refunded"] == 1000
    assert len(ledger["data"]) == 4
    assert balance["available"] == [{"amount": 2000, "currency": "USD"}]
