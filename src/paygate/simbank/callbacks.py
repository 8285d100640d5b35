"""The bank's background loop: settle due UPI authorizations and deliver the callback outbox.

Both are durable rows in the `bank` schema, polled every 100 ms and claimed with FOR UPDATE SKIP LOCKED,
so several bank processes can share the work and a restart loses nothing (a callback whose sender died
is re-sent after its lease: at least once). Each delivery runs as its own task, so one slow receiver
does not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from paygate.simbank import money, signing, store
from paygate.simbank.faults import Faults

log = logging.getLogger(__name__)

POLL_S = 0.1
DELIVERY_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 50


class CallbackWorker:
    def __init__(
        self,
        pool: store.Pool,
        faults: Faults,
        secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_s: float = POLL_S,
        settlement_interval_s: float = 0.0,
    ) -> None:
        self._settlement_interval_s = settlement_interval_s
        self._next_settlement = time.monotonic() + settlement_interval_s
        signing.secret_bytes(secret)  # fail at start, not at the first callback
        self._pool = pool
        self._faults = faults
        self._secret = secret
        self._poll_s = poll_s
        self._http = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S, transport=transport, trust_env=False)
        self._stop = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="bank-callbacks")

    async def stop(self, grace_s: float = DELIVERY_TIMEOUT_S + 1.0) -> None:
        """Stop polling; let deliveries in flight finish and record their result for up to `grace_s`,
        then cancel the rest (their lease expires and they are sent again later: at least once)."""
        self._stop.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=grace_s)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._http.aclose()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception:  # keep going: the database may be briefly away
                log.exception("bank background tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._poll_s)

    async def tick(self) -> None:
        while await store.settle_due(
            self._pool, duplicate=self._faults.duplicate, duplicate_delay=self._faults.duplicate_delay
        ):
            pass
        while await money.due_work(self._pool):  # disputes to open, evidence to decide
            pass
        if self._settlement_interval_s > 0 and time.monotonic() >= self._next_settlement:
            self._next_settlement = time.monotonic() + self._settlement_interval_s
            await money.close_batches(self._pool)
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            return
        for cb in await store.claim_callbacks(self._pool, limit=room):
            task = asyncio.create_task(self._deliver(cb), name=f"bank-callback-{cb.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, cb: store.Callback) -> None:
        error: str | None = None
        try:
            headers = signing.headers(self._secret, cb.event_id, cb.body)
            headers["content-type"] = "application/json"
            resp = await self._http.post(cb.url, content=cb.body, headers=headers)
            if not 200 <= resp.status_code < 300:
                error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            log.info("bank callback %s attempt %d failed: %s", cb.event_id, cb.attempts + 1, error)
        try:
            await store.finish_callback(self._pool, cb, error)
        except Exception:  # the lease will expire and the callback will be sent again
            log.exception("could not record bank callback %s", cb.event_id)
