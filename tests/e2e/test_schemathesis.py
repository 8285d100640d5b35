"""Schemathesis against a real `paygate api` (real database, real bank simulator): every operation of
/openapi.json, with a real merchant's secret key, through every phase (schema examples, coverage of the
schema's constraints, fuzzing, and stateful sequences along the documented links: create a payment,
then capture, void, refund or read it by its id). Every check is on: no 5xx, no response outside the
documented status codes, content types and schemas, invalid input always refused, auth enforced.

The run is bounded (examples per operation, `--max-time`) to stay within about three minutes on two
cores, and seeded so that a failure reproduces; `PAYGATE_SCHEMATHESIS_SEED` and
`PAYGATE_SCHEMATHESIS_EXAMPLES` override both for a longer hunt. It prints "N cases, 0 server errors".
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.chaos.drill import fresh_card
from tests.e2e.procs import MakeStack, Stack

ST = Path(sys.executable).parent / "st"
HERE = Path(__file__).parent
CONFIG = HERE / "schemathesis.toml"


def seed_objects(stack: Stack, secret_key: str) -> dict[str, list[str]]:
    """Real objects for the fuzzer to act on: authorized payments (capture, void), captured ones (refund)
    and orders. Generated ids are nearly always a 404; these let fuzzed amounts and bodies reach the
    state changes themselves."""
    rng = random.Random(1)
    ids: dict[str, list[str]] = {"payments": [], "orders": []}
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {secret_key}"}, timeout=30) as c:
        for i in range(12):
            number, month, year, cvc = fresh_card(rng)
            r = c.post("/v1/payments", json={
                "amount": 10_000, "currency": "USD", "capture_method": "manual" if i % 2 else "automatic",
                "payment_method": {"type": "card", "card": {"number": number, "exp_month": month,
                                                            "exp_year": year, "cvc": cvc}}})
            assert r.status_code == 201, r.text
            ids["payments"].append(r.json()["id"])
        for _ in range(3):
            r = c.post("/v1/orders", json={"amount": 2_500, "currency": "INR"})
            assert r.status_code == 201, r.text
            ids["orders"].append(r.json()["id"])
    return ids


def run_config(path: Path, ids: dict[str, list[str]]) -> Path:
    """The checked-in configuration plus dictionaries of the seeded ids, used for half of the cases."""
    lines = [CONFIG.read_text(), ""]
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines += [
        "[parameters]",
        '"path.payment_id" = { dictionary = "payments", probability = 0.5 }',
        '"body.payment_id" = { dictionary = "payments", probability = 0.5 }',
        '"path.order_id" = { dictionary = "orders", probability = 0.5 }',
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def test_the_api_conforms_to_its_openapi_document(
    make_stack: MakeStack, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    stack = make_stack()
    merchant = stack.merchant()
    config = run_config(tmp_path / "schemathesis.toml", seed_objects(stack, merchant["secret_key"]))
    report_path = tmp_path / "schemathesis.json"
    args = [
        str(ST), "--config-file", str(config), "run", f"{stack.api_url}/openapi.json",
        "--header", f"Authorization: Bearer {merchant['secret_key']}",
        "--seed", os.environ.get("PAYGATE_SCHEMATHESIS_SEED", "20261201"),
        "--max-examples", os.environ.get("PAYGATE_SCHEMATHESIS_EXAMPLES", "40"),
        "--report", "json", "--report-json-path", str(report_path),
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           # the hooks module by its bare name, and the repository root for `tests.chaos.drill`
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), str(HERE.parent.parent),
                                                       os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(args, capture_output=True, text=True, timeout=400, check=False, cwd=tmp_path, env=env)
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output[-20_000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    cases = int(report["test_cases"]["generated"])
    assert report["complete"] and report["exit_code"] == 0, report
    assert report["failures"] == [] and report["errors"] == [], report
    assert report["operations"]["tested"] == report["operations"]["total"] >= 30, report["operations"]
    for phase in ("coverage", "fuzzing", "stateful"):
        assert report["phases"][phase]["status"] == "success", report["phases"]
    record_property("schemathesis_cases", cases)  # in the JUnit XML of a CI run
    print(f"schemathesis: {cases} cases, 0 server errors, 0 schema violations (seed {report['seed']})")
    assert cases > 1000, report["test_cases"]
