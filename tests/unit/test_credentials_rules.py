"""The pure rules of merchant credentials (API.md §19): password length, key grace, and the
login throttle's arithmetic; and the argon2 pool that keeps logins off the shared executor (audit 9)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

from paygate.domain import credentials
from paygate.domain.login_throttle import LoginThrottle
from paygate.services import merchants

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_passwords_need_at_least_ten_characters_and_at_most_the_login_form_accepts() -> None:
    assert credentials.password_problem("123456789") == "The password must be at least 10 characters."
    assert credentials.password_problem("") is not None
    assert credentials.password_problem("1234567890") is None
    assert credentials.password_problem("é" * 10) is None  # characters, not bytes
    assert credentials.password_problem("x" * 1024) is None
    assert credentials.password_problem("x" * 1025) is not None


def test_grace_is_between_zero_and_a_week() -> None:
    assert credentials.grace_problem(0) is None
    assert credentials.grace_problem(3600) is None
    assert credentials.grace_problem(7 * 24 * 3600) is None
    assert credentials.grace_problem(-1) is not None
    assert credentials.grace_problem(7 * 24 * 3600 + 1) is not None


def test_four_failures_in_the_window_still_allow_a_try() -> None:
    throttle = LoginThrottle(max_failures=5, window_s=900)
    failures = [NOW - timedelta(seconds=s) for s in (1, 2, 3, 4)]
    assert throttle.retry_after(failures, NOW) is None


def test_the_fifth_failure_locks_until_the_oldest_of_the_five_leaves_the_window() -> None:
    throttle = LoginThrottle(max_failures=5, window_s=900)
    failures = [NOW - timedelta(seconds=s) for s in (10, 20, 30, 40, 100)]  # newest first
    assert throttle.retry_after(failures, NOW) == 800  # the failure 100 s ago leaves the window in 800 s


def test_more_failures_than_the_limit_lock_until_enough_have_aged_out() -> None:
    throttle = LoginThrottle(max_failures=5, window_s=900)
    # seven in the window: the lock lifts once only four remain, i.e. when the 5th newest (50 s ago) leaves
    failures = [NOW - timedelta(seconds=s) for s in (10, 20, 30, 40, 50, 600, 800)]
    assert throttle.retry_after(failures, NOW) == 850
    assert throttle.retry_after(list(reversed(failures)), NOW) == 850  # order does not matter


def test_failures_older_than_the_window_do_not_count() -> None:
    throttle = LoginThrottle(max_failures=5, window_s=900)
    failures = [NOW - timedelta(seconds=s) for s in (10, 20, 30, 40, 900, 1000)]
    assert throttle.retry_after(failures, NOW) is None


def test_retry_after_is_at_least_one_second_and_rounds_up() -> None:
    throttle = LoginThrottle(max_failures=1, window_s=900)
    assert throttle.retry_after([NOW - timedelta(seconds=899, microseconds=900_000)], NOW) == 1
    assert throttle.retry_after([NOW - timedelta(seconds=10, microseconds=500_000)], NOW) == 890


def test_zero_failures_allowed_means_throttling_is_off() -> None:
    assert LoginThrottle(max_failures=0).retry_after([NOW] * 50, NOW) is None


async def test_argon2_runs_on_its_own_small_pool_and_leaves_the_default_executor_free() -> None:
    """A burst of logins queues behind itself: the default executor (getaddrinfo's) answers at once, the
    event loop keeps running, and no more than PASSWORD_HASH_THREADS hashes run at the same time."""
    stored = await merchants.hash_password("correct-horse-battery")
    burst = [asyncio.ensure_future(merchants._in_hash_pool(merchants._verify, stored, f"guess-{i}"))
             for i in range(12)]
    await asyncio.to_thread(time.sleep, 0)  # a round trip through the default executor
    await asyncio.get_running_loop().getaddrinfo("localhost", 80)
    # the shared executor answered while the burst was still being hashed (12 hashes take a second or more
    # on 2 threads); had the burst been on the default executor (min(32, cores + 4) threads), at least 7
    # hashes would have had to finish before a thread was free for getaddrinfo
    assert sum(f.done() for f in burst) <= merchants.PASSWORD_HASH_THREADS
    assert [await f for f in burst] == [False] * 12
    names = await asyncio.gather(*(merchants._in_hash_pool(_thread_name) for _ in range(8)))
    assert set(names) <= {f"paygate-argon2_{i}" for i in range(merchants.PASSWORD_HASH_THREADS)}


def _thread_name() -> str:
    return threading.current_thread().name
