"""The directory `paygate api`'s processes keep their metrics in (api/metrics.py), fresh for each start.

Kept apart from api/metrics.py on purpose: prometheus-client decides at import time whether values live
in files, so the process that runs uvicorn must set PROMETHEUS_MULTIPROC_DIR before anything imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "paygate-api-metrics-"


def fresh_dir(parent: str | None = None) -> str:
    """A new directory named after this process; those of earlier `paygate api` processes that are gone
    (killed, so they could not remove their own) are removed first."""
    base = Path(parent or tempfile.gettempdir())
    for old in base.glob(f"{PREFIX}*"):
        pid = old.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(path: str) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
