"""The benchmark harness still runs end to end: `bench/run.py --smoke` as CI would run it by hand.

No timing is asserted (CI machines vary); only that the run completed, every scenario answered requests,
and none of them was an error. The harness installs `wrk` with apt-get when it can, else falls back to
its own Python load generator, so this runs (never skips) on a fresh machine after scripts/bootstrap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_bench_smoke(pg_server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--server-url", pg_server_url,
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=200, stdin=subprocess.DEVNULL, check=False,
    )
    assert done.returncode == 0, f"bench --smoke failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    report = json.loads(out.read_text())
    scenarios = report["scenarios"]
    assert sorted(scenarios) == ["1", "2", "3", "4", "5"], done.stdout
    for number, s in scenarios.items():
        assert s["requests"] > 0, f"scenario {number} sent no request:\n{done.stdout}"
        assert s["errors"] == 0, f"scenario {number} had errors: {s}\n{done.stdout}"
    assert scenarios["2"]["transactions"] > 0, "no authorize>capture>refund sequence completed"
    assert scenarios["3"]["replayed"] == scenarios["3"]["requests"], "every replay answered Idempotent-Replayed"
    assert scenarios["1"]["webhook_lag_ms"]["delivered"] > 0, "no webhook reached the receiver"
    assert scenarios["5"]["offered_per_s"] == 20 and scenarios["5"]["payments_created"] > 0, "no open-loop payment"
    assert report["round_trips"]["per_request"]["1 create, auto capture"]["api"]["round_trips"] > 0
    if "pgbench" in report:
        assert report["pgbench"]["tps"] > 0
