"""The webhook delivery loop: wake on NOTIFY (or poll), lease due deliveries, send them concurrently.

Each delivery is its own asyncio task, at most `concurrency` at once and at most `per_endpoint` per
endpoint, so a receiver that hangs for its full 15 s holds a few slots, never the worker. Several worker
processes share the queue through FOR UPDATE SKIP LOCKED; a killed one's leases expire and its
deliveries are sent again (at least once: receivers deduplicate on `webhook-id`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import psycopg
import structlog

from paygate.domain.retry import parse_schedule
from paygate.services.gateway import Gateway, utcnow
from paygate.store.db import Row, listen_connection
from paygate.store.events import NOTIFY_CHANNEL
from paygate.webhooks.sender import Sender
from paygate.worker import attempts

log = structlog.get_logger("paygate.deliveries")

CONCURRENCY = 32
PER_ENDPOINT = 16
STOP_GRACE_S = 5.0  # below the 10 s a supervisor gives between SIGTERM and SIGKILL
LISTEN_RETRY_MAX_S = 10.0


@dataclass(frozen=True)
class _Held:
    delivery_id: str
    endpoint_id: str
    lease: datetime


class DeliveryLoop:
    """One worker's share of the delivery queue."""

    def __init__(
        self, gw: Gateway, sender: Sender, *, concurrency: int = CONCURRENCY, per_endpoint: int = PER_ENDPOINT,
        poll_s: float | None = None,
    ) -> None:
        self.gw = gw
        self.sender = sender
        self.schedule = parse_schedule(gw.settings.webhook_retry_schedule)
        self.recorder = attempts.Recorder(gw, self.schedule)  # records many attempts per statement when busy
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.poll_s = gw.settings.worker_poll_s if poll_s is None else poll_s
        self.batch = max(1, concurrency // 4)
        self._wake = asyncio.Event()
        self._poked = True  # new work may be due: claim at the next pass whatever the free slots
        self._backlog = False  # the last claim left due deliveries behind (capped endpoints, rows locked)
        self._freed = 0  # deliveries finished since the last claim
        self._tasks: dict[asyncio.Task[None], _Held] = {}
        self._in_flight: Counter[str] = Counter()
        self._next_due: datetime | None = None  # earliest retry this worker scheduled itself
        self.listening = asyncio.Event()  # set while LISTEN is active (tests wait on it instead of sleeping)

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop), name="deliveries-listen")
        watcher = asyncio.create_task(self._wake_on(stop), name="deliveries-stop")
        try:
            while not stop.is_set():
                self._wake.clear()
                free = self.concurrency - len(self._tasks)
                # Claim when told there is new work (NOTIFY, a due retry, the poll), or, when the last
                # claim left due deliveries behind, once enough have finished since to make a claim worth
                # its round trip (draining a backlog one freed slot at a time would spend the worker on
                # claims) or none is left in flight. A claim that took everything due is not followed by
                # another one when its deliveries finish: that one would find nothing (it was one
                # statement per delivery of an idle worker); whatever falls due later is announced.
                if free > 0 and (self._poked or (self._backlog and (self._freed >= self.batch or not self._tasks))):
                    self._poked, self._freed = False, 0
                    try:
                        if await self.fill(free) == free:
                            continue  # a full batch: more may be due right now
                    except Exception as exc:  # the database may be away: log, then wait like an idle pass
                        log.warning("delivery_claim_failed", error=type(exc).__name__, detail=str(exc)[:200])
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle_timeout())
                except TimeoutError:
                    self._poked = True
        finally:
            listener.cancel()
            watcher.cancel()
            await asyncio.gather(listener, watcher, return_exceptions=True)
            await self._drain()

    async def fill(self, wanted: int) -> int:
        """Lease up to `wanted` due deliveries and start a task for each; returns how many."""
        in_flight = dict(self._in_flight)
        self._backlog = True  # until the claim says otherwise (it may fail)
        rows = await attempts.claim(self.gw, limit=wanted, per_endpoint=self.per_endpoint,
                                    in_flight=in_flight, schedule=self.schedule)
        # Left behind: due rows the claim saw but did not take, or an endpoint it skipped at its cap. With
        # nothing taken the claim says nothing; then only what is in flight can have held work back.
        capped = any(n >= self.per_endpoint for n in in_flight.values())
        self._backlog = capped or (rows[0]["due_seen"] > len(rows) if rows else bool(in_flight))
        for row in rows:
            held = _Held(row["id"], row["endpoint_id"], row["locked_until"])
            self._in_flight[held.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(row), name=f"delivery-{held.delivery_id}")
            self._tasks[task] = held
            task.add_done_callback(self._done)
        return len(rows)

    async def _deliver(self, row: Row) -> None:
        try:
            result = await attempts.attempt(self.sender, row, self.gw.settings.secret_key)
            done = await self.recorder.record(row, result)
        except Exception as exc:  # not recorded: the lease runs out and the delivery is sent again
            log.warning("delivery_record_failed", delivery=row["id"], error=type(exc).__name__, detail=str(exc)[:200])
            return
        if done["status"] != "succeeded":  # the attempt that was just recorded: `result`
            log.info("delivery_attempt_failed", delivery=done["id"], endpoint=done["endpoint_id"],
                     status=done["status"], response_status=result.response_status, error=result.as_json()["error"])
        due = done["next_attempt_at"]
        if done["status"] == "pending" and due is not None and (self._next_due is None or due < self._next_due):
            self._next_due = due

    def _done(self, task: asyncio.Task[None]) -> None:
        held = self._tasks.pop(task, None)
        if held is not None:
            self._in_flight[held.endpoint_id] -= 1
            if self._in_flight[held.endpoint_id] <= 0:
                del self._in_flight[held.endpoint_id]
        self._freed += 1
        self._wake.set()  # a free slot: there may be due work waiting for it

    def _poke(self) -> None:
        self._poked = True
        self._wake.set()

    def _idle_timeout(self) -> float:
        """Poll at least every `poll_s`; sooner if a retry this worker scheduled falls due before that."""
        if self._next_due is None:
            return self.poll_s
        left = (self._next_due - utcnow()).total_seconds()
        if left <= 0:
            self._next_due = None
            return 0.0
        return min(self.poll_s, left)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN on a dedicated autocommit connection; reconnect with backoff (polling covers the gap)."""
        url = self.gw.settings.database_url
        assert url is not None
        pause = 0.5
        while not stop.is_set():
            try:
                async with await listen_connection(url) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}".encode())
                    self._poke()  # whatever was notified while we were not listening
                    self.listening.set()
                    pause = 0.5
                    async for _ in conn.notifies():
                        self._poke()
            except psycopg.Error as exc:
                log.warning("delivery_listen_failed", error=type(exc).__name__, detail=str(exc)[:200])
            self.listening.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
            pause = min(pause * 2, LISTEN_RETRY_MAX_S)

    async def _drain(self) -> None:
        """Let attempts in flight finish briefly; cancel the rest and hand their leases back."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE_S)
        unfinished = dict(self._tasks)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        await self.recorder.aclose()
        if unfinished:
            with contextlib.suppress(Exception):
                await attempts.release(self.gw, [(h.delivery_id, h.lease) for h in unfinished.values()])


async def run(gw: Gateway, stop: asyncio.Event) -> None:
    """`paygate worker`'s delivery loop, until `stop` is set."""
    async with attempts.sender_for(gw) as sender:
        await DeliveryLoop(gw, sender).run(stop)
