"""The failover drill, short: the primary SIGKILLed mid-load, the synchronous standby promoted, nothing
lost, nothing charged twice, served again within 30 s, and no paygate process restarted."""

from __future__ import annotations

import subprocess
import sys


def test_short_failover_drill_loses_nothing_and_serves_again() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paygate", "drill", "--failover", "--payments", "80", "--clients", "6",
         "--seed", "11"],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
    )
    print(done.stdout, done.stderr[-3000:])
    assert "RESULT: PASS" in done.stdout, done.stdout
    assert done.returncode == 0
    counts = dict(line.split() for line in done.stdout.splitlines() if line.startswith("  ") and len(line.split()) == 2)
    assert int(counts["payments"]) >= 80
    assert int(counts["answered_before_kill.payments"]) >= 10  # the kill came mid-load, not before it
    assert int(counts["violations.lost_after_failover"]) == 0
    assert int(counts["paygate_processes_restarted"]) == 0
    assert 0 < int(counts["failover.kill_to_served_ms"]) <= 30_000
    assert int(counts["violations.undelivered_events"]) == 0 and int(counts["events"]) > 80
