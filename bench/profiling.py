"""Where the API's CPU goes: py-spy samples of the API worker processes, summarised.

py-spy is not a project dependency; install it into the venv to use `--profile` (`pip install py-spy`).
It samples with `--native` (C frames too: uvloop, libpq, the socket syscalls; this pauses the target
briefly per sample, so the profiled run is a separate pass, not a measured one) in py-spy's `raw` format
(collapsed stacks, `frame;frame;... count`). In native mode py-spy also samples threads that are waiting,
so this module drops samples whose innermost frame is a wait (epoll, futex, ...) and folds the rest into
self time per function, time per library (by the innermost Python or Cython frame, so libpq's send() counts
for psycopg), the share spent in socket syscalls, and the inclusive time of paygate's own functions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")
# (label, path fragment) checked in order against the innermost frame's file
_LIBRARIES = [
    ("psycopg / psycopg_pool", ("psycopg",)),
    ("uvicorn / httptools / uvloop", ("uvicorn", "httptools", "uvloop", "loop.c", "parser.c")),
    ("starlette / fastapi", ("starlette", "fastapi")),
    ("pydantic", ("pydantic",)),
    ("httpx / httpcore (bank calls)", ("httpx", "httpcore", "h11", "anyio")),
    ("structlog / logging", ("structlog", "logging")),
    ("orjson / json", ("orjson", "json")),
    ("paygate", ("paygate",)),
    ("asyncio", ("asyncio",)),
]


def find_py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(py_spy: str, pids: list[int], duration_s: float, out_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start one sampler per process; they stop by themselves after `duration_s`."""
    procs = []
    for pid in pids:
        out = out_dir / f"profile-api-{pid}.txt"
        procs.append(subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(duration_s))), "--rate", "100",
             "--format", "raw", "--native", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=open(out_dir / f"profile-api-{pid}.log", "wb"),  # noqa: SIM115
            stdin=subprocess.DEVNULL))
    return procs


_IDLE_LEAVES = frozenset({
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect", "pselect6", "accept",
    "accept4", "nanosleep", "clock_nanosleep", "pthread_cond_wait", "pthread_cond_timedwait", "sem_wait",
    "sem_timedwait", "futex", "__futex_abstimed_wait_common", "do_futex_wait", "syscall",
})
_IDLE_THREADS = ("always_pong",)  # uvicorn's supervisor ping thread, blocked in read() all along
_SYSCALLS = frozenset({"send", "recv", "read", "write", "sendto", "recvfrom", "sendmsg", "recvmsg", "writev",
                       "readv", "epoll_ctl", "__libc_send", "__libc_recv", "__libc_write", "__libc_read"})


def _where(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), m.group("file")


def _library(path: str) -> str:
    for label, fragments in _LIBRARIES:
        if any(f"/{frag}" in path or path.startswith(frag) for frag in fragments):
            return label
    return "other (stdlib, interpreter)"


def _short(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _is_code(file: str) -> bool:
    """A Python (or Cython-generated C) source frame, as opposed to a bare shared-library address."""
    return file.endswith((".py", ".pyx", ".c")) and not file.endswith(".so")


def summarise(files: list[Path], top: int = 20) -> dict[str, Any]:
    """Fold collapsed stacks (root first) into shares of the non-idle samples."""
    total = idle = syscall_samples = 0
    self_time: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    syscalls_by_library: Counter[str] = Counter()
    paygate_inclusive: Counter[str] = Counter()
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            n = int(count_text)
            frames = [_where(f) for f in stack.split(";") if f]
            if not frames:
                continue
            leaf_func, leaf_file = frames[-1]
            if leaf_func in _IDLE_LEAVES or any(t in func for func, _ in frames for t in _IDLE_THREADS):
                idle += n
                continue
            total += n
            self_time[f"{leaf_func} ({_short(leaf_file)})"] += n
            code = next((file for _, file in reversed(frames) if _is_code(file)), "")
            lib = _library(code)
            libraries[lib] += n
            if leaf_func in _SYSCALLS:
                syscall_samples += n
                syscalls_by_library[lib] += n
            seen = set()
            for func, file in frames:
                if "paygate" in file and (func, file) not in seen:
                    seen.add((func, file))
                    paygate_inclusive[f"{func} ({_short(file)})"] += n

    def pct(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / total, 1)) for name, n in counter.most_common(k)] if total else []

    return {"samples": total, "idle_samples": idle, "self": pct(self_time, top),
            "libraries": pct(libraries, len(libraries)),
            "socket_syscalls_pct": round(100.0 * syscall_samples / total, 1) if total else 0.0,
            "socket_syscalls_by_library": pct(syscalls_by_library, 5),
            "paygate_inclusive": pct(paygate_inclusive, top)}
