"""A drill stopped with SIGTERM cleans up as on Ctrl-C: its processes stopped, its database dropped."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil
import psycopg

from tests.polling import wait_for


def _drill_databases(server_url: str) -> set[str]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'paygate\\_drill\\_%'").fetchall()
    return {str(r[0]) for r in rows}


def test_sigterm_stops_the_drill_and_cleans_up(pg_server_url: str) -> None:
    before = _drill_databases(pg_server_url)
    drill = subprocess.Popen(
        [sys.executable, "-m", "paygate", "drill", "--payments", "100000", "--server-url", pg_server_url,
         "--kill-min", "600", "--kill-max", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        parent = psutil.Process(drill.pid)
        # bank, api, two workers: the load is running
        assert wait_for(lambda: len(parent.children()) >= 4, 90)
        family = parent.children(recursive=True)
        assert len(_drill_databases(pg_server_url) - before) == 1
        drill.send_signal(signal.SIGTERM)
        _, err = drill.communicate(timeout=90)
        assert drill.returncode == 1 and "stopped before the end" in err, err
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family)
        assert _drill_databases(pg_server_url) - before == set()
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait()
