"""One supervisor for paygate's child processes: used by `paygate serve`, the chaos drill, the e2e
harness (tests/e2e/procs.py) and the benchmark (bench/stack.py).

Each child runs in its own session, hence its own process group, so a signal reaches what it forked
too (uvicorn's worker processes); readiness is polled on a health URL, never slept for; stopping is
SIGTERM to the group (a graceful shutdown), then SIGKILL to whatever of the group is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType

import httpx

from paygate.polling import wait_for

# the `paygate` console script next to this interpreter; not resolved: a venv's python is a symlink
PAYGATE = Path(sys.executable).parent / "paygate"
_NO_WAIT_SIGNALS = (signal.SIGSTOP, signal.SIGCONT, signal.SIGTSTP)


class SuperviseError(RuntimeError):
    """A process did not start, did not become healthy or did not stop; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_alive(pgid: int) -> bool:
    """Is a live (not zombie) process left in group `pgid`? Zombies count as gone: an orphan's zombie
    lingers where init does not reap (containers), and it holds no port and runs no code."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: any member, zombies included
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


class Process:
    """One long-running child: `argv` with `env`, output appended to `log_path` (or inherited when None)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        health_url: str | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.health_url = health_url
        self.log_path = log_path
        self.cwd = cwd
        self.returncode: int | None = None
        self.popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"Process({self.name!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def spawn(self) -> None:
        """Start it in its own session, without waiting for anything."""
        if self.popen is not None:
            raise SuperviseError(f"{self.name} is already started")
        log = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it; closed below
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
        try:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT if log is not None else None,
                start_new_session=True,  # its own process group: signals reach its children too
            )
        finally:
            if log is not None:
                log.close()
        self.returncode = None

    def start(self, timeout: float = 30) -> None:
        """Spawn, then wait until `health_url` answers 200 (without one: until spawned)."""
        self.spawn()
        if self.health_url is None:
            assert self.popen is not None
            if self.popen.poll() is not None:
                self._fail(f"exited with {self.popen.returncode} at once")
            return
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        if not wait_for(self._healthy, timeout):
            self._fail(f"not healthy at {self.health_url} within {timeout:.0f}s")

    def _healthy(self) -> bool:
        assert self.popen is not None and self.health_url is not None
        if self.popen.poll() is not None:
            self._fail(f"exited with {self.popen.returncode} before becoming healthy")
        try:
            return httpx.get(self.health_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _fail(self, why: str) -> None:
        self.kill()
        tail = f"\n--- {self.log_path} ---\n{self.log_tail()}" if self.log_path is not None else ""
        raise SuperviseError(f"{self.name}: {why}{tail}")

    def send(self, sig: int) -> None:
        """Send `sig` to the whole group, without waiting."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)  # a session leader: its pid is the group id

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the group and wait until every member is gone (SIGSTOP/SIGCONT: no wait)."""
        if self.popen is None:
            return
        pgid = self.popen.pid
        self.send(sig)
        if sig in _NO_WAIT_SIGNALS:
            return
        self.returncode = self.popen.wait()
        self.popen = None
        if not wait_for(lambda: not group_alive(pgid), 10):
            raise SuperviseError(f"{self.name}: processes of group {pgid} survive signal {sig}")

    def stop(self, grace_s: float = 10) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL after `grace_s`; also the group's stragglers."""
        stop_all([self], grace_s)

    def restart(self, timeout: float = 30) -> None:
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung server)."""
        self.kill(signal.SIGSTOP)

    def resume(self) -> None:
        self.kill(signal.SIGCONT)

    def log(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def stop_all(processes: Iterable[Process], grace_s: float = 10) -> None:
    """SIGTERM every group at once (in the order given), wait up to `grace_s` in all, then SIGKILL what
    is left. Raises SuperviseError only after trying to stop every one."""
    live = [p for p in processes if p.popen is not None]
    for p in live:
        p.send(signal.SIGCONT)  # a paused process could not act on SIGTERM
        p.send(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    errors: list[str] = []
    for p in live:
        assert p.popen is not None
        try:
            p.returncode = p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if p.log_path is not None:
                with open(p.log_path, "ab") as log:
                    log.write(f"--- supervisor: no exit {grace_s:.0f}s after SIGTERM, sending SIGKILL\n".encode())
        try:  # the group's stragglers, or the process itself if it did not stop (returncode: how it ended)
            p.kill(signal.SIGKILL)
        except SuperviseError as exc:
            errors.append(str(exc))
    if errors:
        raise SuperviseError("\n".join(errors))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within this block SIGTERM raises KeyboardInterrupt, so a command's `finally` clean-up runs on
    SIGTERM exactly as on Ctrl-C (API.md §13 v2).

    SIGINT raises it too, even when it was ignored when we started: a shell starts background jobs with
    SIGINT ignored (`paygate serve &`, nohup, CI runners), Python then leaves it ignored, and `kill -INT`
    would be lost while the documented way to stop is Ctrl-C."""

    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupt)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def watch(processes: Sequence[Process], interval: float = 0.2) -> Process | None:
    """Block until a process exits (returned) or Ctrl-C/SIGTERM arrives (None; see sigterm_as_interrupt)."""
    try:
        while True:
            for p in processes:
                if p.popen is not None and p.popen.poll() is not None:
                    return p
            time.sleep(interval)
    except KeyboardInterrupt:
        return None
