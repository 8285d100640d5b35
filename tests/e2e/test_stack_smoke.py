"""The e2e harness itself: a stack comes up healthy and takes a merchant; processes die and come back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.procs import Proc, ProcError, Stack, free_port


def test_stack_is_healthy_and_creates_a_merchant(stack: Stack) -> None:
    for url in (stack.api_url, stack.bank_url):
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    merchant = stack.merchant()
    assert merchant["merchant_id"].startswith("mer_")
    assert merchant["secret_key"].startswith("sk_test_")
    assert merchant["publishable_key"].startswith("pk_test_")


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def test_harness_kills_the_whole_group_and_restarts_on_the_same_port(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # a child that would outlive its parent, like a uvicorn worker
    script = f"sleep 300 & exec {sys.executable} -m http.server --bind 127.0.0.1 {port}"
    proc = Proc("dummy", ["-c", script], {}, url, log_dir=tmp_path, program=["sh"])
    proc.start()
    try:
        assert proc.pid is not None
        pgid = proc.pid
        assert len(_group_members(pgid)) == 2
        proc.kill()
        assert not proc.running and proc.returncode == -9
        assert _group_members(pgid) == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=1)

        proc.start()
        assert httpx.get(url, timeout=5).status_code == 200
        proc.restart()
        assert httpx.get(url, timeout=5).status_code == 200
        assert proc.log().count("--- ") == 3  # one banner per start
    finally:
        proc.stop()
    assert not proc.running


def test_harness_reports_a_process_that_exits_before_it_is_healthy(tmp_path: Path) -> None:
    proc = Proc("dies", ["-c", "echo boom >&2; exit 3"], {}, "http://127.0.0.1:9/", program=["sh"], log_dir=tmp_path)
    with pytest.raises(ProcError, match=r"(?s)exited with 3.*boom"):
        proc.start(timeout=5)
    assert not proc.running
