"""`paygate api`'s metrics directory: fresh per start, and what killed predecessors left is swept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from paygate.api import multiproc


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_a_fresh_directory_each_start_and_dead_ones_swept(tmp_path: Path) -> None:
    dead = tmp_path / f"{multiproc.PREFIX}{dead_pid()}-abc"
    live = tmp_path / f"{multiproc.PREFIX}{os.getppid()}-def"  # our parent runs for as long as we do
    other = tmp_path / "someone-elses"
    for d in (dead, live, other):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"x")
    first = Path(multiproc.fresh_dir(str(tmp_path)))
    second = Path(multiproc.fresh_dir(str(tmp_path)))
    assert first != second and first.is_dir() and second.is_dir()
    assert not any(first.iterdir())
    assert first.name.startswith(f"{multiproc.PREFIX}{os.getpid()}-")
    assert not dead.exists() and live.exists() and other.exists()
    multiproc.remove(str(first))
    assert not first.exists()
