"""Webhooks only go to public addresses (API.md §19), through real processes and the system's resolver.

The stack runs with PAYGATE_WEBHOOK_ALLOW_PRIVATE=false (API and worker); a second API process over the
same database allows private destinations, to save an endpoint that resolves to loopback. Every
destination refused here is refused before connecting: no test traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import html
import ipaddress
import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.procs import MakeStack, Proc, Stack, free_port
from tests.e2e.test_webhooks_receiver import Client, Receiver, running_receiver

REFUSED = ["http://127.0.0.1:{port}/h", "http://10.1.2.3/h", "http://169.254.169.254/latest/meta-data/",
           "http://[::1]:{port}/h", "http://[::ffff:127.0.0.1]:{port}/h", "http://localhost:{port}/h"]


def loopback_name() -> str:
    """A host name (not an IP literal, not `localhost`) that the system resolver maps to loopback only:
    this machine's own name when /etc/hosts says so, else the numeric name getaddrinfo reads as
    127.0.0.1 (2130706433). Either way the answer comes from the resolver, not from our parser."""
    for name in (socket.gethostname(), "2130706433"):
        try:
            answers = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if answers and all(ipaddress.ip_address(str(a)).is_loopback for a in answers):
            return name
    raise AssertionError("no host name resolves to loopback here")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


@pytest.fixture
def strict_stack(make_stack: MakeStack) -> Stack:
    return make_stack(PAYGATE_WEBHOOK_ALLOW_PRIVATE="false", PAYGATE_WEBHOOK_RETRY_SCHEDULE="0,60",
                      PAYGATE_WORKER_POLL_S="0.2")


@pytest.fixture
def open_api(strict_stack: Stack) -> str:
    """Another API process on the same database, with private destinations allowed."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Proc("api-open", ["api", "--port", str(port), "--workers", "1"],
                {**strict_stack.env, "PAYGATE_WEBHOOK_ALLOW_PRIVATE": "true"}, f"{url}/healthz",
                log_dir=strict_stack.workdir)
    strict_stack.procs[proc.name] = proc  # stopped with the stack
    proc.start(30)
    return url


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("parameter_invalid", "url"), err


def test_private_destinations_are_refused_at_create_and_patch(strict_stack: Stack) -> None:
    client = Client(strict_stack.api_url, strict_stack.merchant()["secret_key"])
    try:
        ep = client.endpoint("https://hooks.example/h")  # does not resolve: accepted, points nowhere of ours
        urls = [u.format(port=9) for u in REFUSED] + [f"http://{loopback_name()}:9/h"]
        for url in urls:
            _refused(client.http.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]}))
            _refused(client.http.patch(f"/v1/webhook_endpoints/{ep['id']}", json={"url": url}))
        listed = client.ok("GET", "/v1/webhook_endpoints")["data"]
        assert [(e["id"], e["url"]) for e in listed] == [(ep["id"], "https://hooks.example/h")]
    finally:
        client.close()


def test_a_name_resolving_to_loopback_saved_where_allowed_is_refused_when_sent(
    strict_stack: Stack, open_api: str, receiver: Receiver
) -> None:
    merchant = strict_stack.merchant()
    strict, lenient = Client(strict_stack.api_url, merchant["secret_key"]), Client(open_api, merchant["secret_key"])
    try:
        url = f"http://{loopback_name()}:{receiver.port}/hooks"
        _refused(strict.http.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]}))
        lenient.endpoint(url)
        strict.pay()
        # the strict worker's attempt: refused at connect time, recorded, the next one scheduled
        d = strict.delivery_when(lambda d: d["attempts"] != [], event_type="payment.captured")
        (attempt,) = d["attempts"]
        assert attempt["error"] == "destination_not_allowed" and attempt["response_status"] is None
        assert d["status"] == "pending"
        # a manual retry from the strict API process: refused as well, and it ends the delivery
        r = strict.ok("POST", f"/v1/webhook_deliveries/{d['id']}/retry")
        assert r["status"] == "failed" and r["attempts"][-1]["error"] == "destination_not_allowed"
        assert receiver.received == []
        # where private destinations are allowed the same name does reach the receiver on loopback
        r = lenient.ok("POST", f"/v1/webhook_deliveries/{d['id']}/retry")
        assert r["status"] == "succeeded" and len(receiver.at("/hooks")) == 1
    finally:
        strict.close()
        lenient.close()


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no {name} in the page"
    return html.unescape(found.group(1))


def test_the_dashboard_refuses_private_destinations_with_the_same_validator(strict_stack: Stack) -> None:
    merchant = strict_stack.merchant()
    with httpx.Client(base_url=strict_stack.api_url, timeout=30) as browser:
        login = browser.get("/dashboard/login")
        r = browser.post("/dashboard/login", data={"email": merchant["email"], "password": merchant["password"],
                                                   "csrf_token": _field(login.text, "csrf_token")})
        assert r.status_code in (302, 303), r.text
        for url in [u.format(port=9) for u in REFUSED] + [f"http://{loopback_name()}:9/h"]:
            page = browser.get("/dashboard/webhooks").text
            r = browser.post("/dashboard/webhooks", data={"url": url, "csrf_token": _field(page, "csrf_token"),
                                                          "idem": _field(page, "idem")})
            assert r.status_code == 400, (url, r.status_code)
            assert "PAYGATE_WEBHOOK_ALLOW_PRIVATE" in r.text and 'data-test-id="action-error"' in r.text
        page = browser.get("/dashboard/webhooks").text
        r = browser.post("/dashboard/webhooks", data={"url": "HTTPS://hooks.example/h",
                                                      "csrf_token": _field(page, "csrf_token"),
                                                      "idem": _field(page, "idem")})
        assert r.status_code == 201, r.text  # an upper-case scheme is fine, as at the API
    client = Client(strict_stack.api_url, merchant["secret_key"])
    try:
        assert [e["url"] for e in client.ok("GET", "/v1/webhook_endpoints")["data"]] == ["HTTPS://hooks.example/h"]
    finally:
        client.close()
