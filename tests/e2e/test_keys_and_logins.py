"""Merchant credentials through real `paygate` processes (API.md §13, §19): `paygate merchant roll-keys`
against two API processes over one database (each with its own key cache), the password prompt and stdin
of `paygate merchant create`, and dashboard login throttling through real HTTP requests."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import select
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import PAYGATE, Proc, Stack, child_env, free_port, wait_for


@dataclass
class TwoApis:
    """The shared stack's API process and a second one on another port, as a deployment with several."""

    stack: Stack
    urls: tuple[str, str]


@pytest.fixture(scope="module")
def two_apis(shared_stack: Stack) -> Iterator[TwoApis]:
    # the tests play a reverse proxy on 127.0.0.1 that reports client addresses in X-Forwarded-For
    env = {**shared_stack.env, "PAYGATE_TRUSTED_PROXIES": "127.0.0.1"}
    procs = []
    for name in ("api1", "api2"):
        port = free_port()
        proc = Proc(name, ["api", "--port", str(port), "--workers", "1"], env,
                    f"http://127.0.0.1:{port}/healthz", log_dir=shared_stack.workdir)
        proc.start(30)
        procs.append((proc, f"http://127.0.0.1:{port}"))
    try:
        yield TwoApis(shared_stack, (procs[0][1], procs[1][1]))
    finally:
        for proc, _ in procs:
            print(proc.log_tail())
            proc.stop()


def _status(url: str, key: str, path: str = "/v1/payments?limit=1") -> int:
    """One request on a new connection with `key` as the secret of HTTP Basic."""
    return httpx.get(f"{url}{path}", auth=(key, ""), timeout=10).status_code


def _roll(stack: Stack, merchant_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PAYGATE), "merchant", "roll-keys", "--merchant", merchant_id, *extra],
                          env=child_env(stack.env), cwd=stack.workdir, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)


# --- roll-keys -----------------------------------------------------------------------------------------

def test_roll_keys_prints_new_keys_once_and_the_old_ones_work_until_the_grace_ends_on_every_process(
        two_apis: TwoApis) -> None:
    m = two_apis.stack.merchant()
    old_sk, old_pk = m["secret_key"], m["publishable_key"]
    for url in two_apis.urls:  # each process caches the old keys (30 s unless told otherwise)
        assert _status(url, old_sk) == 200
        assert _status(url, old_pk) == 403  # a live publishable key: known, but not allowed to list

    started = time.monotonic()
    done = _roll(two_apis.stack, m["merchant_id"], "--grace", "8", "--json")
    returned = time.monotonic()
    assert done.returncode == 0, done.stderr
    keys = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert set(keys) == {"merchant_id", "secret_key", "publishable_key"}
    assert keys["merchant_id"] == m["merchant_id"]
    assert keys["secret_key"].startswith("sk_test_") and keys["publishable_key"].startswith("pk_test_")
    assert {keys["secret_key"], keys["publishable_key"]}.isdisjoint({old_sk, old_pk})
    assert "stop working at" in done.stderr
    assert returned - started < 8, "the command itself took the whole grace period"

    for url in two_apis.urls:
        assert _status(url, keys["secret_key"]) == 200
        assert _status(url, keys["publishable_key"]) == 403
        assert _status(url, old_sk) == 200  # within the grace period
        assert _status(url, old_pk) == 403

    def old_refused_everywhere() -> bool:
        return all(_status(url, old_sk) == 401 for url in two_apis.urls)

    assert wait_for(old_refused_everywhere, 15, interval=0.1)
    refused_after = time.monotonic() - started
    assert 7.5 < refused_after < (returned - started) + 8 + 2  # on time: not before 8 s, not long after
    for url in two_apis.urls:
        body = httpx.get(f"{url}/v1/payments", auth=(old_sk, ""), timeout=10).json()
        assert body["error"]["type"] == "authentication_error"
        assert body["error"]["code"] == "invalid_api_key"  # like any unknown key
        assert _status(url, old_pk) == 401
        assert _status(url, keys["secret_key"]) == 200


def test_roll_keys_with_no_grace_refuses_the_old_keys_at_once_on_every_process(two_apis: TwoApis) -> None:
    m = two_apis.stack.merchant()
    for url in two_apis.urls:
        for _ in range(3):
            assert _status(url, m["secret_key"]) == 200  # cached in both processes
    done = _roll(two_apis.stack, m["merchant_id"], "--grace", "0", "--json")
    assert done.returncode == 0, done.stderr
    assert "the previous keys no longer work" in done.stderr
    keys = json.loads(done.stdout)
    for url in two_apis.urls:  # the very first request after the command, no waiting
        assert _status(url, m["secret_key"]) == 401
        assert _status(url, m["publishable_key"]) == 401
        assert _status(url, keys["secret_key"]) == 200


def test_roll_keys_prints_text_by_default_and_refuses_bad_input_without_changing_anything(
        two_apis: TwoApis) -> None:
    m = two_apis.stack.merchant()
    done = _roll(two_apis.stack, m["merchant_id"])  # default grace: an hour
    assert done.returncode == 0, done.stderr
    printed = dict(re.findall(r"^(\w+):\s+(\S+)$", done.stdout, flags=re.MULTILINE))
    assert set(printed) == {"merchant_id", "secret_key", "publishable_key"}
    assert _status(two_apis.urls[0], m["secret_key"]) == 200  # an hour to go
    assert _status(two_apis.urls[0], printed["secret_key"]) == 200

    unknown = _roll(two_apis.stack, "mer_doesnotexist", "--grace", "0")
    assert unknown.returncode == 1 and "No such merchant" in unknown.stderr and unknown.stdout == ""
    for grace in ("-1", "604801"):
        bad = _roll(two_apis.stack, m["merchant_id"], "--grace", grace)
        assert bad.returncode == 1 and "grace must be between 0 and 604800 seconds" in bad.stderr
    assert _status(two_apis.urls[0], printed["secret_key"]) == 200  # still the live key


# --- merchant create: the password -------------------------------------------------------------------

def _create(stack: Stack, email: str, *extra: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PAYGATE), "merchant", "create", "--name", "Shop", "--email", email, "--json", *extra],
                          env=child_env(stack.env), cwd=stack.workdir, input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def _login(url: str, email: str, password: str, address: str | None = None) -> httpx.Response:
    """The dashboard's login form as a browser submits it; `address` as a trusted proxy would report it."""
    headers = {"X-Forwarded-For": address} if address else {}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as http:
        page = http.get("/dashboard/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token is not None
        return http.post("/dashboard/login", data={"email": email, "password": password,
                                                   "csrf_token": token.group(1)})


def test_merchant_create_reads_the_password_from_stdin_when_it_is_not_in_argv(two_apis: TwoApis) -> None:
    email, password = f"stdin-{secrets.token_hex(4)}@example.com", f"stdin pass {secrets.token_hex(6)}"
    done = _create(two_apis.stack, email, stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"merchant_id", "secret_key", "publishable_key"}
    assert password not in done.stdout + done.stderr
    assert _login(two_apis.urls[0], email, password).status_code == 303  # spaces and all, without the newline
    assert _login(two_apis.urls[1], email.upper(), password).status_code == 303  # emails: any case


def test_merchant_create_refuses_a_short_password_and_a_second_email_differing_in_case(two_apis: TwoApis) -> None:
    email = f"Short-{secrets.token_hex(4)}@Example.com"
    short = _create(two_apis.stack, email, stdin="123456789\n")
    assert short.returncode == 1 and short.stdout == ""
    assert "at least 10 characters" in short.stderr
    argv = _create(two_apis.stack, email, "--password", "tiny")
    assert argv.returncode == 1 and "at least 10 characters" in argv.stderr
    assert _create(two_apis.stack, email, stdin="long-enough-pw\n").returncode == 0  # nothing was half-made
    again = _create(two_apis.stack, email.lower(), stdin="long-enough-pw\n")
    assert again.returncode == 1 and "exists" in again.stderr


def test_merchant_create_prompts_on_a_terminal_hidden_and_twice(two_apis: TwoApis, tmp_path: Path) -> None:
    email, password = f"tty-{secrets.token_hex(4)}@example.com", f"typed-{secrets.token_hex(6)}"
    master, slave = os.openpty()

    def controlling_tty() -> None:  # runs in the child after setsid: the pty becomes its terminal (getpass)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([str(PAYGATE), "merchant", "create", "--name", "Shop", "--email", email, "--json"],
                            env=child_env(two_apis.stack.env), cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=controlling_tty)
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, within_s: float = 30) -> None:
        """Read until `marker` appears in what the terminal shows *from now on*. Type only after a
        prompt's trailing space: getpass flushes pending input (TCSAFLUSH) just before printing it."""
        nonlocal seen
        start = len(seen)
        deadline = time.monotonic() + within_s
        while marker not in seen[start:]:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {marker!r} on the terminal; saw {seen!r}"
            try:
                seen += os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break

    try:
        read_until(b"Dashboard password: ")
        os.write(master, b"first-try-typo\n")
        read_until(b"Repeat for confirmation: ")
        os.write(master, b"first-try-typ0\n")
        read_until(b"do not match.\r\nDashboard password: ")  # asked again
        os.write(master, password.encode() + b"\n")
        read_until(b"Repeat for confirmation: ")
        seen_before_last = len(seen)
        os.write(master, password.encode() + b"\n")
        read_until(b'"publishable_key"')
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert password.encode() not in seen and b"first-try-typo" not in seen  # never echoed
    assert b'"merchant_id"' in seen[seen_before_last:]
    assert _login(two_apis.urls[0], email, password).status_code == 303


# --- login throttling ----------------------------------------------------------------------------------

def test_five_failed_logins_for_an_email_across_processes_and_addresses_lock_it_even_for_the_right_password(
        two_apis: TwoApis) -> None:
    m = two_apis.stack.merchant()
    for i in range(5):  # alternating processes and addresses: the count lives in PostgreSQL
        failed = _login(two_apis.urls[i % 2], m["email"], "wrong-password", address=f"203.0.113.{10 + i}")
        assert failed.status_code == 401
        assert "Email or password is incorrect." in failed.text
    for url in two_apis.urls:
        locked = _login(url, m["email"], m["password"], address="203.0.113.99")
        assert locked.status_code == 429
        assert 890 <= int(locked.headers["retry-after"]) <= 900
        assert re.search(r'data-test-id="login-error">Too many failed logins; try again in 15 minutes\.<', locked.text)
        assert "paygate_session" not in locked.cookies
        assert 'data-test-id="login-form"' in locked.text  # the page still explains and offers the form


def test_five_failed_logins_from_one_address_lock_that_address_but_not_others(two_apis: TwoApis) -> None:
    m = two_apis.stack.merchant()
    address = f"198.51.100.{secrets.randbelow(200) + 1}"
    for i in range(5):
        guess = _login(two_apis.urls[i % 2], f"nobody-{secrets.token_hex(3)}@example.com", "wrong-password",
                       address=address)
        assert guess.status_code == 401
    assert _login(two_apis.urls[0], m["email"], m["password"], address=address).status_code == 429
    assert _login(two_apis.urls[1], m["email"], m["password"], address="192.0.2.77").status_code == 303


def test_the_dashboard_works_for_a_merchant_whose_typos_were_followed_by_the_right_password(
        two_apis: TwoApis) -> None:
    m = two_apis.stack.merchant()
    for round_ in range(2):  # a right password clears the email's failures: 4 + 4 typos never lock
        for i in range(4):
            assert _login(two_apis.urls[i % 2], m["email"], "wrong-password",
                          address=f"192.0.2.{100 + round_ * 10 + i}").status_code == 401
        ok = _login(two_apis.urls[round_], m["email"], m["password"], address="192.0.2.200")
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
