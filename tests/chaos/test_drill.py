"""The chaos drill, short: two acquirers with faults on both, API and workers SIGKILLed at random, one bank
SIGKILLed and restarted mid-run, challenge-card payments answered through the bank's page (right, wrong,
cancelled; the browser coming back or not), then every invariant checked across both banks' records (≤ 3 min)."""

from __future__ import annotations

import subprocess
import sys


def test_short_chaos_drill_finds_no_violation(pg_server_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paygate", "drill", "--acquirers", "alpha,beta", "--payments", "120", "--clients", "6",
         "--kill-min", "1", "--kill-max", "3", "--server-url", pg_server_url, "--seed", "7"],
        capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL,
    )
    print(done.stdout, done.stderr[-3000:])
    assert "RESULT: PASS" in done.stdout, done.stdout
    assert done.returncode == 0
    counts = dict(line.split() for line in done.stdout.splitlines() if line.startswith("  "))
    assert int(counts["payments"]) == 120
    assert int(counts["kills.api"]) + int(counts["kills.worker"]) >= 5
    assert int(counts["events"]) > 120
    # both banks authorized payments, some after failing over from the killed one; none twice
    assert int(counts["kills.bank"]) == 1
    assert int(counts["authorizations.alpha"]) > 0 and int(counts["authorizations.beta"]) > 0
    assert int(counts["failed_over"]) > 0
    assert int(counts["violations.double_authorization"]) == 0 and int(counts["violations.wrong_acquirer"]) == 0
    # §15: challenges answered right, wrong and cancelled through the bank's page; none authorized unauthenticated
    assert int(counts["challenged"]) > 0 and int(counts["challenges.right"]) > 0
    assert int(counts["violations.unauthenticated"]) == 0
    assert int(counts["total_seconds"]) <= 180
