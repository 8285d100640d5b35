"""The chaos drill, short: processes SIGKILLed at random, a faulty bank, then every invariant checked."""

from __future__ import annotations

import subprocess
import sys


def test_short_chaos_drill_finds_no_violation(pg_server_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paygate", "drill", "--payments", "150", "--clients", "6", "--kill-min", "1",
         "--kill-max", "3", "--server-url", pg_server_url, "--seed", "7"],
        capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL,
    )
    print(done.stdout, done.stderr[-3000:])
    assert "RESULT: PASS" in done.stdout, done.stdout
    assert done.returncode == 0
    counts = dict(line.split() for line in done.stdout.splitlines() if line.startswith("  "))
    assert int(counts["payments"]) == 150
    assert int(counts["kills.api"]) + int(counts["kills.worker"]) >= 5
    assert int(counts["events"]) > 150
