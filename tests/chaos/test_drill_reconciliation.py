"""The drill's reconciliation (API.md §18): after kills and bank faults, a final batch with one dropped, one
adjusted and one extra line; `paygate reconcile` must find exactly those three (the drill checks it and the
bank's net against paygate's `settled`)."""

from __future__ import annotations

import subprocess
import sys


def test_drill_with_injected_discrepancies_finds_exactly_them(pg_server_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paygate", "drill", "--payments", "60", "--clients", "4", "--kill-min", "1",
         "--kill-max", "3", "--server-url", pg_server_url, "--seed", "11", "--discrepancies"],
        capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL,
    )
    print(done.stdout, done.stderr[-3000:])
    assert "RESULT: PASS" in done.stdout, done.stdout
    counts = dict(line.split() for line in done.stdout.splitlines() if line.startswith("  "))
    assert int(counts["reconciliation.exceptions_open"]) == int(counts["reconciliation.exceptions_injected"]) == 3
    # the run's captures and refunds (how many succeed depends on the faults) plus the 3 the drill adds
    assert int(counts["settlement.lines"]) > 3
    assert int(counts["settlement.settled_net"]) == int(counts["settlement.bank_net"]) > 0
