"""A worker killed with SIGKILL in the middle of a burst loses nothing: at least once, never mixed up."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.procs import MakeStack
from tests.e2e.test_webhooks_receiver import Client, Receiver, Reply, running_receiver
from tests.polling import wait_for


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()

BURST = 200


@pytest.mark.slow
def test_sigkilled_worker_mid_burst_still_delivers_every_event(make_stack: MakeStack, receiver: Receiver) -> None:
    stack = make_stack(PAYGATE_WORKER_POLL_S="0.2")
    client = Client(stack.api_url, stack.merchant()["secret_key"])
    try:
        # slow enough answers that the worker always has deliveries in flight (leased) when it dies
        receiver.on("/burst", then=Reply(200, delay_s=0.2))
        endpoint = client.endpoint(receiver.url("/burst"), ["payment.captured"])
        worker = stack.procs["worker"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            burst = [pool.submit(client.pay) for _ in range(BURST)]
            assert wait_for(lambda: len(receiver.at("/burst")) >= 30, 60)
            worker.kill()  # SIGKILL to the process group, mid-burst
            payments = [f.result() for f in burst]
        killed_at = len(receiver.at("/burst"))
        assert killed_at < BURST, "the burst was over before the kill; nothing was tested"
        worker.start()

        paid = {p["id"] for p in payments}
        assert len(paid) == BURST and all(p["status"] == "captured" for p in payments)

        def all_arrived() -> bool:
            return {r.event()["data"]["object"]["id"] for r in receiver.at("/burst")} >= paid

        assert wait_for(all_arrived, 120, interval=0.2), (
            f"{len({r.webhook_id for r in receiver.at('/burst')})} of {BURST} events arrived")

        bodies: dict[str, set[bytes]] = defaultdict(set)
        ids_per_payment: dict[str, set[str]] = defaultdict(set)
        for r in receiver.at("/burst"):
            event = r.verify(endpoint["secret"])
            assert event["id"] == r.webhook_id
            bodies[r.webhook_id].add(r.body)
            ids_per_payment[event["data"]["object"]["id"]].add(r.webhook_id)
        assert all(len(b) == 1 for b in bodies.values())  # one webhook-id only ever carries one event
        assert all(len(ids) == 1 for ids in ids_per_payment.values())  # one event per payment
        assert len(bodies) == BURST
        print(f"received {len(receiver.at('/burst'))} requests for {BURST} events; {killed_at} before the kill")

        def all_recorded() -> bool:
            q = client.ok("GET", "/v1/queue")["webhook_deliveries"]
            return bool(q["pending"] == 0 and q["failed"] == 0)

        assert wait_for(all_recorded, 60, interval=0.2)
    finally:
        client.close()
