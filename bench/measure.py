"""What is measured around a load window: CPU and RSS per process, and PostgreSQL's own counters.

CPU is the process's user+system time spent during the window divided by the window's length (100 % =
one core busy; this machine has 2). RSS is the peak seen by a sampler every 0.5 s, summed over a group's
processes — except PostgreSQL's, whose backends share its buffers: for them it is the largest backend's.
PostgreSQL backends are attributed by database (`pg_stat_activity`): those serving the run's databases,
and the rest of the server (its background processes and any other client's backends — on a shared machine, a sign that
someone else's load was running too).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil
import psycopg

if TYPE_CHECKING:
    from psutil._ntuples import scputimes  # what psutil.cpu_times() returns (the stubs' name)


@dataclass
class ProcStat:
    cpu_pct: float
    rss_mb: float
    count: int = 1
    sys_pct: float = 0.0  # the kernel's part of cpu_pct: syscalls, loopback TCP on behalf of the process


def _cpu(p: psutil.Process) -> tuple[float, float] | None:
    """(user + system, system) CPU seconds so far."""
    try:
        t = p.cpu_times()
        return float(t.user + t.system), float(t.system)
    except psutil.Error:
        return None


def _rss(p: psutil.Process) -> float:
    try:
        return float(p.memory_info().rss)
    except psutil.Error:
        return 0.0


def postgres_processes() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["name"]):
        if p.info["name"] in ("postgres", "postmaster"):
            out.append(p)
    return out


# The harness keeps one connection per database for the whole run: on a server shared with other
# clients a new connection in the middle of a run may be refused (max_connections).
Conn = psycopg.Connection[tuple[Any, ...]]


def backend_databases(conn: Conn) -> dict[int, str]:
    rows = conn.execute("SELECT pid, coalesce(datname, '') FROM pg_stat_activity").fetchall()
    return {int(pid): str(name) for pid, name in rows}


@dataclass
class Window:
    """Samples a labelled set of processes between `start()` and `stop()`."""

    groups: dict[str, list[psutil.Process]]
    interval_s: float = 0.5
    started: float = 0.0
    elapsed: float = 0.0
    machine_busy_pct: float = 0.0
    _cpu0: dict[int, tuple[float, float]] = field(default_factory=dict)
    _cpu_last: dict[int, tuple[float, float]] = field(default_factory=dict)  # for processes that exit before stop()
    _peak_rss: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _machine0: scputimes | None = None

    def start(self) -> None:
        for procs in self.groups.values():
            for p in procs:
                cpu = _cpu(p)
                if cpu is not None:
                    self._cpu0[p.pid] = cpu
                    self._peak_rss[p.pid] = _rss(p)
        self._machine0 = psutil.cpu_times()
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="bench-sampler")
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            for procs in self.groups.values():
                for p in procs:
                    self._peak_rss[p.pid] = max(self._peak_rss.get(p.pid, 0.0), _rss(p))
                    cpu = _cpu(p)
                    if cpu is not None:
                        self._cpu_last[p.pid] = cpu

    def stop(self) -> dict[str, ProcStat]:
        self.elapsed = time.monotonic() - self.started
        cpu1 = {p.pid: _cpu(p) or self._cpu_last.get(p.pid) for procs in self.groups.values() for p in procs}
        machine1 = psutil.cpu_times()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        assert self._machine0 is not None, "stop() before start()"
        total = sum(machine1) - sum(self._machine0)
        idle = (machine1.idle + getattr(machine1, "iowait", 0.0)) - (
            self._machine0.idle + getattr(self._machine0, "iowait", 0.0))
        self.machine_busy_pct = 100.0 * (1 - idle / total) if total > 0 else 0.0
        out: dict[str, ProcStat] = {}
        for label, procs in self.groups.items():
            cpu = sys_cpu = rss = 0.0
            for p in procs:
                c0, c1 = self._cpu0.get(p.pid), cpu1.get(p.pid)
                if c0 is not None and c1 is not None:
                    cpu += c1[0] - c0[0]
                    sys_cpu += c1[1] - c0[1]
                # PostgreSQL's backends share its buffers: a sum would count them once per backend
                peak = self._peak_rss.get(p.pid, 0.0)
                rss = max(rss, peak) if label.startswith("postgres") else rss + peak
            scale = 100.0 / self.elapsed if self.elapsed else 0.0
            out[label] = ProcStat(cpu * scale, rss / 2**20, len(procs), sys_cpu * scale)
        return out


def db_counters(conn: Conn, names: list[str]) -> dict[str, dict[str, int]]:
    """pg_stat_database's commit/rollback/tuple counters for the given databases."""
    rows = conn.execute(
            "SELECT datname, xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched, "
        "blks_hit, blks_read FROM pg_stat_database WHERE datname = ANY(%s)", (names,)).fetchall()
    cols = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched",
            "blks_hit", "blks_read")
    return {str(r[0]): {c: int(v) for c, v in zip(cols, r[1:], strict=True)} for r in rows}


def table_counters(conn: Conn) -> dict[str, dict[str, int]]:
    """Rows inserted/updated/deleted per table of the connection's database (pg_stat_user_tables)."""
    rows = conn.execute(
        "SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del "
        "FROM pg_stat_user_tables").fetchall()
    return {str(r[0]): {"ins": int(r[1]), "upd": int(r[2]), "hot_upd": int(r[3]), "del": int(r[4])} for r in rows}


def delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {k: {c: v - before.get(k, {}).get(c, 0) for c, v in cols.items()} for k, cols in after.items()}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]
