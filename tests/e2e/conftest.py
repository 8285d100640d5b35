"""End-to-end fixtures: the gateway as real processes over HTTP, each stack on a fresh database.

A test that fails gets the tail of every process log in its captured output.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from tests.conftest import MakeDatabase
from tests.e2e.procs import MakeStack, ProcError, Stack, start_stack


@pytest.fixture
def make_stack(make_database: MakeDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeStack]:
    """Factory: `make_stack(worker=True, api_workers=1, database_url=None, acquirers=None, **PAYGATE_env)` starts a
    stack (on a new migrated database unless one is given); all are stopped after the test."""
    stacks: list[Stack] = []

    def make(
        *,
        worker: bool = True,
        api_workers: int | None = 1,
        database_url: str | None = None,
        acquirers: Sequence[str] | None = None,
        **env: str,
    ) -> Stack:
        url = database_url if database_url is not None else make_database()
        stack = start_stack(
            url,
            tmp_path_factory.mktemp("stack"),
            worker=worker,
            api_workers=api_workers,
            env=env,
            acquirers=acquirers,
        )
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        print(stack.logs())  # shown by pytest only when the test failed
    errors = []
    for stack in reversed(stacks):
        try:
            stack.stop()
        except ProcError as exc:
            errors.append(str(exc))
    if errors:
        raise ProcError("\n".join(errors))


@pytest.fixture
def stack(make_stack: MakeStack) -> Stack:
    """Bank, API and worker over a fresh database, with default settings (UPI outcome in 100-300 ms)."""
    return make_stack()


@pytest.fixture(scope="module")
def shared_stack(make_module_database: MakeDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for a whole module, for tests that isolate themselves by merchant and never disturb
    the processes (starting a stack costs seconds; most tests need only their own merchant)."""
    stack = start_stack(make_module_database(), tmp_path_factory.mktemp("shared-stack"), worker=True, api_workers=1)
    yield stack
    print(stack.logs())
    stack.stop()
