"""paygate's one supervisor (paygate/supervise.py): SIGTERM then SIGKILL of the whole group, and `watch`."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from paygate.supervise import Process, group_alive, stop_all, watch
from tests.polling import wait_for

# a shell that ignores SIGTERM and has a child of its own (a straggler unless the whole group is killed)
STUBBORN = "trap '' TERM; sleep 60 & echo ok$((6 * 7)); wait"


def test_a_process_ignoring_sigterm_is_killed_with_its_group_after_the_grace(tmp_path: Path) -> None:
    proc = Process("stubborn", ["sh", "-c", STUBBORN], {"PATH": "/usr/bin:/bin"}, log_path=tmp_path / "s.log")
    proc.start()
    assert wait_for(lambda: "ok42" in proc.log(), 30)  # the trap is set
    assert proc.pid is not None
    pgid = proc.pid
    assert group_alive(pgid)
    started = time.monotonic()
    proc.stop(grace_s=0.5)
    assert time.monotonic() - started < 10
    assert proc.returncode == -signal.SIGKILL and not proc.running
    assert not group_alive(pgid)  # `sleep 60` went too
    assert "after SIGTERM, sending SIGKILL" in proc.log()


def test_a_graceful_process_ends_on_sigterm(tmp_path: Path) -> None:
    script = ("import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
              "print('go' * 2, flush=True)\ntime.sleep(60)\n")  # 'gogo' is not in the log's start line
    procs = [Process(f"p{i}", [sys.executable, "-c", script], {}, log_path=tmp_path / f"p{i}.log") for i in range(2)]
    for p in procs:
        p.start()
    assert wait_for(lambda: all("gogo" in p.log() for p in procs), 30)  # the handler is installed
    started = time.monotonic()
    stop_all(procs, grace_s=20)
    assert time.monotonic() - started < 10  # no one waited for the grace: they stopped on SIGTERM
    assert [p.returncode for p in procs] == [0, 0]
    assert "SIGKILL" not in procs[0].log()


def test_watch_returns_the_process_that_exited(tmp_path: Path) -> None:
    long = Process("long", ["sleep", "60"], {"PATH": "/usr/bin:/bin"})
    short = Process("short", ["sh", "-c", "exit 3"], {"PATH": "/usr/bin:/bin"})
    long.start()
    short.spawn()
    try:
        assert watch([long, short], interval=0.05) is short
        assert short.popen is not None and short.popen.wait() == 3
    finally:
        stop_all([long, short], grace_s=5)
    assert not long.running
