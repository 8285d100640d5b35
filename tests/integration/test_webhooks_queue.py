"""The delivery queue against a real PostgreSQL: fan-out, claims, leases, recording rules, the worker loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from paygate.acquirers.memory import MemoryAcquirer
from paygate.bootstrap import build_gateway
from paygate.config import Settings
from paygate.domain.ids import new_id
from paygate.domain.webhooks import Attempt
from paygate.errors import InvalidRequest
from paygate.services import merchants
from paygate.services import webhook_endpoints as service
from paygate.services.gateway import Gateway, Principal, utcnow
from paygate.services.idempotency import KeyHandle
from paygate.store import events, queue
from paygate.store import webhooks as store
from paygate.store.db import Row, make_pool, transaction
from paygate.webhooks.sender import Sender
from paygate.worker import attempts
from paygate.worker.deliveries import DeliveryLoop
from tests.polling import eventually


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    pool = make_pool(database_url, min_size=1, max_size=8)
    await pool.open(wait=True)
    bank = MemoryAcquirer("bank")  # never called here
    # receivers here listen on 127.0.0.1: private destinations are allowed explicitly
    settings = Settings(database_url=database_url, webhook_retry_schedule="0,1,2", worker_poll_s=30.0,
                        webhook_allow_private=True)
    try:
        yield build_gateway(settings, pool, {"bank": bank})
    finally:
        await bank.aclose()
        await pool.close()


@pytest.fixture
async def who(gw: Gateway) -> Principal:
    made = await merchants.create(gw.pool, name="M", email=f"{new_id('m')}@example.com", password="pw-long-enough")
    return Principal(made.merchant_id, "secret")


async def endpoint(gw: Gateway, who: Principal, url: str = "http://127.0.0.1:9/x", types: list[str] | None = None
                   ) -> dict[str, Any]:
    out = await service.create_endpoint(gw, who, url=url, enabled_events=types or ["*"], description=None,
                                        key=KeyHandle(who.merchant_id, None))
    created: dict[str, Any] = orjson.loads(out.body)
    return created


async def emit(gw: Gateway, who: Principal, type: str = "payment.captured", n: int = 1) -> list[str]:
    ids = []
    async with transaction(gw.pool) as conn:
        for _ in range(n):
            event_id, obj_id = new_id("evt"), new_id("pay")
            await events.emit(conn, event_id=event_id, merchant_id=who.merchant_id, type=type, object_id=obj_id,
                              data={"id": obj_id, "object": "payment"}, now=utcnow())
            ids.append(event_id)
    return ids


async def claim(gw: Gateway, *, now: datetime | None = None, limit: int = 100, per_endpoint: int = 100,
                in_flight: dict[str, int] | None = None, first_delay_s: float = 0.0) -> list[Row]:
    at = now or utcnow()
    async with transaction(gw.pool) as conn:
        return await store.claim(conn, now=at, lease_until=at + attempts.LEASE, first_due=at - timedelta(
            seconds=first_delay_s), limit=limit, per_endpoint=per_endpoint, in_flight=in_flight or {}, scan=1000)


async def deliveries(gw: Gateway, who: Principal, **filters: Any) -> list[Row]:
    async with gw.pool.connection() as conn:
        return await store.page_deliveries(conn, who.merchant_id, limit=1000, **filters)


async def endpoint_row(gw: Gateway, endpoint_id: str) -> Row:
    async with gw.pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM webhook_endpoints WHERE id = %s", (endpoint_id,))
        row = await cur.fetchone()
    assert row is not None
    return row


def attempt(status: int | None, retry_after_s: float | None = None) -> Attempt:
    return Attempt(at=utcnow(), response_status=status, duration_ms=3,
                   error=None if status == 200 else "x", retry_after_s=retry_after_s)


async def record(gw: Gateway, leased: Row, result: Attempt, schedule: list[float] | None = None,
                 manual: bool = False) -> Row:
    async with transaction(gw.pool) as conn:
        return await attempts.record_in(conn, leased, result, schedule or [0, 1, 2], manual=manual)


async def test_emit_fans_out_to_subscribed_live_endpoints_only(gw: Gateway, who: Principal) -> None:
    every = await endpoint(gw, who)
    refunds = await endpoint(gw, who, types=["refund.succeeded"])
    disabled = await endpoint(gw, who)
    deleted = await endpoint(gw, who)
    key = KeyHandle(who.merchant_id, None)
    await service.update_endpoint(gw, who, disabled["id"], {"disabled": True}, key)
    await service.delete_endpoint(gw, who, deleted["id"], key)

    captured = await emit(gw, who, "payment.captured", 3)
    refunded = await emit(gw, who, "refund.succeeded")
    rows = await deliveries(gw, who)
    assert sorted((r["endpoint_id"], r["event_id"]) for r in rows) == sorted(
        [(every["id"], e) for e in captured + refunded] + [(refunds["id"], refunded[0])])
    assert all(r["status"] == "pending" and r["attempts"] == [] for r in rows)


async def test_concurrent_claims_never_share_a_delivery_and_leases_expire(gw: Gateway, who: Principal) -> None:
    await endpoint(gw, who)
    await endpoint(gw, who)
    await emit(gw, who, n=30)  # 60 deliveries
    batches = await asyncio.gather(*(claim(gw, limit=10) for _ in range(8)))
    ids = [r["id"] for batch in batches for r in batch]
    assert len(ids) == len(set(ids)) == 60
    assert await claim(gw) == []  # all leased

    later = utcnow() + attempts.LEASE + timedelta(seconds=1)
    again = await claim(gw, now=later)  # the leases of a worker that died have run out
    assert len(again) == 60
    row = again[0]
    assert row["ev_type"] == "payment.captured" and row["url"] == "http://127.0.0.1:9/x"
    assert row["secret"] and not row["secret"].startswith("whsec_") and row["locked_until"] == later + attempts.LEASE


async def test_a_first_delay_in_the_schedule_defers_the_first_attempt(gw: Gateway, who: Principal) -> None:
    await endpoint(gw, who)
    await emit(gw, who)
    assert await claim(gw, first_delay_s=5) == []
    assert len(await claim(gw, now=utcnow() + timedelta(seconds=5.1), first_delay_s=5)) == 1


async def test_one_endpoint_cannot_take_every_slot(gw: Gateway, who: Principal) -> None:
    slow = await endpoint(gw, who, types=["payment.captured"])
    fast = await endpoint(gw, who, types=["refund.succeeded"])
    await emit(gw, who, "payment.captured", 20)
    await emit(gw, who, "refund.succeeded", 3)
    got = await claim(gw, limit=32, per_endpoint=8, in_flight={slow["id"]: 2})
    per = {ep: sum(1 for r in got if r["endpoint_id"] == ep) for ep in (slow["id"], fast["id"])}
    assert per == {slow["id"]: 6, fast["id"]: 3}
    assert await claim(gw, limit=32, per_endpoint=8, in_flight={slow["id"]: 8}) == []


async def test_a_disabled_endpoint_waits_and_resumes_when_enabled(gw: Gateway, who: Principal) -> None:
    ep = await endpoint(gw, who)
    await emit(gw, who, n=2)
    key = KeyHandle(who.merchant_id, None)
    await service.update_endpoint(gw, who, ep["id"], {"disabled": True}, key)
    assert await claim(gw) == []
    await emit(gw, who)  # not queued at all for a disabled endpoint
    assert len(await deliveries(gw, who)) == 2
    q = await _queue(gw, who)
    assert q["pending"] == 2 and q["lag_since"] is None  # waiting on the merchant, not on us
    await service.update_endpoint(gw, who, ep["id"], {"disabled": False}, key)
    assert len(await claim(gw)) == 2


async def _queue(gw: Gateway, who: Principal) -> Row:
    async with gw.pool.connection() as conn:
        return await queue.stats(conn, who.merchant_id, utcnow())


async def test_recording_follows_the_schedule(gw: Gateway, who: Principal) -> None:
    ep = await endpoint(gw, who)
    await emit(gw, who)
    (leased,) = await claim(gw)
    row = await record(gw, leased, attempt(500))
    assert row["status"] == "pending" and row["attempt_count"] == 1 and row["locked_until"] is None
    delay = (row["next_attempt_at"] - utcnow()).total_seconds()
    assert 0.6 < delay <= 1.2  # schedule[1] = 1 s, ±20 %
    assert (await endpoint_row(gw, ep["id"]))["failing_since"] is not None

    (leased,) = await claim(gw, now=row["next_attempt_at"])
    row = await record(gw, leased, attempt(503, retry_after_s=120))
    assert row["attempt_count"] == 2 and (row["next_attempt_at"] - utcnow()).total_seconds() > 110

    (leased,) = await claim(gw, now=row["next_attempt_at"])
    row = await record(gw, leased, attempt(500))
    assert row["status"] == "failed" and row["next_attempt_at"] is None and row["attempt_count"] == 3
    assert [a["response_status"] for a in row["attempts"]] == [500, 503, 500]
    assert set(row["attempts"][0]) == {"at", "response_status", "duration_ms", "error", "response_body"}

    # a manual retry is one more attempt whose outcome is the status, not counted in the schedule
    async with transaction(gw.pool) as conn:
        manual = await store.lease_one(conn, who.merchant_id, row["id"], now=utcnow(),
                                       lease_until=utcnow() + attempts.LEASE)
    assert manual is not None
    row = await record(gw, manual, attempt(200), manual=True)
    assert row["status"] == "succeeded" and row["attempt_count"] == 3 and len(row["attempts"]) == 4
    assert (await endpoint_row(gw, ep["id"]))["failing_since"] is None


async def test_gone_disables_and_five_failing_days_disable(gw: Gateway, who: Principal) -> None:
    gone = await endpoint(gw, who, types=["payment.captured"])
    flaky = await endpoint(gw, who, types=["refund.failed"])
    await emit(gw, who, "payment.captured")
    await emit(gw, who, "refund.failed")
    leased = {r["endpoint_id"]: r for r in await claim(gw)}

    row = await record(gw, leased[gone["id"]], attempt(410))
    assert row["status"] == "failed" and row["attempt_count"] == 1
    assert (await endpoint_row(gw, gone["id"]))["disabled"] is True

    async with gw.pool.connection() as conn:
        await conn.execute("UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' WHERE id = %s",
                           (flaky["id"],))
    row = await record(gw, leased[flaky["id"]], attempt(None))
    ep = await endpoint_row(gw, flaky["id"])
    assert ep["disabled"] is True
    assert row["status"] == "pending" and row["next_attempt_at"] is not None  # paused with the endpoint

    key = KeyHandle(who.merchant_id, None)
    await service.update_endpoint(gw, who, flaky["id"], {"disabled": False}, key)
    assert (await endpoint_row(gw, flaky["id"]))["failing_since"] is None  # a fresh start


async def test_an_attempt_under_a_lost_lease_is_history_only(gw: Gateway, who: Principal) -> None:
    await endpoint(gw, who)
    await emit(gw, who)
    (first,) = await claim(gw)
    (second,) = await claim(gw, now=utcnow() + attempts.LEASE + timedelta(seconds=1))  # first one's lease ran out
    late = await record(gw, first, attempt(500))
    assert late["attempt_count"] == 0 and late["status"] == "pending" and late["locked_until"] is not None
    row = await record(gw, second, attempt(200))
    assert row["status"] == "succeeded" and row["attempt_count"] == 1 and len(row["attempts"]) == 2


async def test_manual_retry_takes_over_a_dead_workers_lease(gw: Gateway, who: Principal) -> None:
    receiver = await HttpReceiver.start()
    try:
        ep = await endpoint(gw, who, url=receiver.url)
        (event_id,) = await emit(gw, who)
        (leased,) = await claim(gw)  # a worker took it, then died
        started = time.monotonic()
        out = await service.retry_delivery(gw, who, leased["id"], KeyHandle(who.merchant_id, None), wait_s=0.3)
        assert time.monotonic() - started >= 0.3
        row = orjson.loads(out.body)
        assert row["status"] == "succeeded" and len(row["attempts"]) == 1
        assert Webhook(ep["secret"]).verify(receiver.got[0].body, receiver.got[0].headers)["id"] == event_id
    finally:
        await receiver.stop()


async def test_the_loop_wakes_on_notify_and_delivers_signed_events(gw: Gateway, who: Principal) -> None:
    receiver = await HttpReceiver.start()
    try:
        ep = await endpoint(gw, who, url=receiver.url)
        stop = asyncio.Event()
        async with Sender(allow_private=True) as sender:
            loop = DeliveryLoop(gw, sender, poll_s=30.0)  # only NOTIFY can wake it in time
            task = asyncio.create_task(loop.run(stop))
            await asyncio.wait_for(loop.listening.wait(), 5)
            ids = await emit(gw, who, n=25)
            await eventually(lambda: len(receiver.got) >= 25, 5)
            await until_async(gw, who, lambda rows: all(r["status"] == "succeeded" for r in rows))
            ids += await emit(gw, who, n=5)  # the loop is idle now, with 30 s to its next poll
            await eventually(lambda: len(receiver.got) >= 30, 5)
            stop.set()
            await asyncio.wait_for(task, 10)
        webhook = Webhook(ep["secret"])
        assert sorted(webhook.verify(r.body, r.headers)["id"] for r in receiver.got) == sorted(ids)
        await until_async(gw, who, lambda rows: all(r["status"] == "succeeded" for r in rows))
    finally:
        await receiver.stop()


class CountingLoop(DeliveryLoop):
    """The real loop, counting its claims."""

    claims = 0

    async def fill(self, wanted: int) -> int:
        self.claims += 1
        return await super().fill(wanted)


async def test_a_claim_that_took_everything_due_is_not_followed_by_an_empty_one(gw: Gateway, who: Principal) -> None:
    receiver = await HttpReceiver.start()
    try:
        await endpoint(gw, who, url=receiver.url)
        stop = asyncio.Event()
        async with Sender(allow_private=True) as sender:
            loop = CountingLoop(gw, sender, poll_s=30.0)
            task = asyncio.create_task(loop.run(stop))
            await asyncio.wait_for(loop.listening.wait(), 5)
            await asyncio.sleep(0.3)  # the start-up claims (first pass, LISTEN up) are made by now
            before = loop.claims
            await emit(gw, who, n=3)  # one NOTIFY: one claim takes the three
            await until_async(gw, who, lambda rows: len(rows) == 3 and all(r["status"] == "succeeded" for r in rows))
            await asyncio.sleep(0.3)  # the deliveries are done: a claim after them would have been made by now
            claims = loop.claims - before
            stop.set()
            await asyncio.wait_for(task, 10)
        assert claims == 1 and len(receiver.got) == 3
    finally:
        await receiver.stop()


async def test_deliveries_held_back_by_the_endpoint_cap_are_claimed_as_slots_free_without_a_poll(
    gw: Gateway, who: Principal
) -> None:
    receiver = await HttpReceiver.start()
    try:
        await endpoint(gw, who, url=receiver.url)
        stop = asyncio.Event()
        async with Sender(allow_private=True) as sender:
            loop = CountingLoop(gw, sender, concurrency=8, per_endpoint=2, poll_s=30.0)
            task = asyncio.create_task(loop.run(stop))
            await asyncio.wait_for(loop.listening.wait(), 5)
            await emit(gw, who, n=7)
            await until_async(gw, who, lambda rows: len(rows) == 7 and all(r["status"] == "succeeded" for r in rows))
            stop.set()
            await asyncio.wait_for(task, 10)
        assert len(receiver.got) == 7
    finally:
        await receiver.stop()


def strict(gw: Gateway, **changes: Any) -> Gateway:
    """The same gateway with the destination check on (or other settings changed)."""
    settings = gw.settings.model_copy(update={"webhook_allow_private": False, **changes})
    return build_gateway(settings, gw.pool, gw.acquirers)


async def test_a_nul_in_the_receivers_answer_is_recorded_counted_and_the_delivery_fails(
    gw: Gateway, who: Principal
) -> None:
    body = b"oops\x00\x00 \x1b[31m\xff"
    receiver = await HttpReceiver.start(
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
    fast = strict(gw, webhook_allow_private=True, webhook_retry_schedule="0,0.1,0.1")
    try:
        await endpoint(fast, who, url=receiver.url)
        stop = asyncio.Event()
        async with Sender(allow_private=True) as sender:
            loop = DeliveryLoop(fast, sender, poll_s=0.2)
            task = asyncio.create_task(loop.run(stop))
            await emit(fast, who)
            await until_async(fast, who, lambda rows: rows[0]["status"] == "failed")
            stop.set()
            await asyncio.wait_for(task, 10)
        (row,) = await deliveries(fast, who)
        assert row["attempt_count"] == 3 and len(row["attempts"]) == 3 and len(receiver.got) == 3
        for entry in row["attempts"]:
            assert entry["response_status"] == 500 and entry["response_body"] == "oops\ufffd\ufffd \ufffd[31m\ufffd"
    finally:
        await receiver.stop()


class Rebinding:
    """A name that answers a public address first and a private one afterwards (DNS rebinding)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_a_rebinding_name_is_accepted_when_saved_and_refused_when_sent(gw: Gateway, who: Principal) -> None:
    guarded = strict(gw)
    resolver = Rebinding(["93.184.215.14"], ["10.0.0.7"])
    url = await service.validate_url(guarded, "https://rebind.example/hook", resolver=resolver)
    await endpoint(guarded, who, url=url)
    await emit(guarded, who)
    (leased,) = await claim(guarded)
    async with Sender(resolver=resolver) as sender:  # the real guarded transport: refused before connecting
        row = await attempts.deliver(guarded, sender, leased, [0, 1, 2])
    assert resolver.asked == ["rebind.example", "rebind.example"]
    assert row["status"] == "pending" and row["attempt_count"] == 1
    (entry,) = row["attempts"]
    assert entry["error"] == "destination_not_allowed" and entry["response_status"] is None
    with pytest.raises(InvalidRequest) as refused:  # a PATCH to it now would be refused as well
        await service.validate_url(guarded, url, resolver=resolver)
    assert refused.value.param == "url" and refused.value.code == "parameter_invalid"


async def test_a_manual_retry_from_the_api_is_guarded_too_through_the_real_resolver(
    gw: Gateway, who: Principal
) -> None:
    receiver = await HttpReceiver.start()
    try:
        port = receiver.server.sockets[0].getsockname()[1]
        url = f"http://localhost:{port}/hook"  # the system resolver says 127.0.0.1 (and maybe ::1)
        assert await service.validate_url(gw, url) == url  # allowed where private destinations are
        with pytest.raises(InvalidRequest):
            await service.validate_url(strict(gw), url)
        await endpoint(gw, who, url=url)
        (event_id,) = await emit(gw, who)
        (delivery,) = await deliveries(gw, who)
        out = await service.retry_delivery(strict(gw), who, delivery["id"], KeyHandle(who.merchant_id, None))
        row = orjson.loads(out.body)
        assert row["status"] == "failed" and row["attempts"][0]["error"] == "destination_not_allowed"
        assert receiver.got == []
        out = await service.retry_delivery(gw, who, delivery["id"], KeyHandle(who.merchant_id, None))
        assert orjson.loads(out.body)["status"] == "succeeded" and len(receiver.got) == 1
        assert orjson.loads(receiver.got[0].body)["id"] == event_id
    finally:
        await receiver.stop()


async def until_async(gw: Gateway, who: Principal, check: Callable[[list[Row]], bool], within_s: float = 5) -> None:
    """Until `check` holds for the merchant's delivery rows."""

    async def holds() -> bool:
        return check(await deliveries(gw, who))

    await eventually(holds, within_s, interval=0.05)


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@dataclass
class HttpReceiver:
    """Just enough HTTP/1.1 on 127.0.0.1 to take webhooks and answer 200 (keep-alive), or `answer`."""

    server: asyncio.Server
    got: list[Request] = field(default_factory=list)

    @property
    def url(self) -> str:
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    @classmethod
    async def start(cls, answer: bytes = OK) -> HttpReceiver:
        holder: list[HttpReceiver] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")[1:]
                    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                    holder[0].got.append(Request(headers, body))
                    writer.write(answer)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        receiver = cls(await asyncio.start_server(handle, "127.0.0.1", 0))
        holder.append(receiver)
        return receiver

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_the_recorder_records_concurrent_attempts_in_one_batch_like_record_in(
    gw: Gateway, who: Principal
) -> None:
    ep = await endpoint(gw, who)
    await emit(gw, who, n=6)
    leased = await claim(gw)
    assert len(leased) == 6
    # one lease lost meanwhile (another worker took the row over): that attempt goes the locked way
    async with gw.pool.connection() as conn:
        await conn.execute("UPDATE webhook_deliveries SET locked_until = now() + interval '1 hour' WHERE id = %s",
                           (leased[0]["id"],))
    recorder = attempts.Recorder(gw, [0, 1, 2])
    results = [attempt(200), attempt(200), attempt(500), attempt(200), attempt(200), attempt(200)]
    done = await asyncio.gather(*(recorder.record(row, r) for row, r in zip(leased, results, strict=True)))
    await recorder.aclose()
    by_id = {d["id"]: d for d in await deliveries(gw, who)}
    for row, result, got in zip(leased, results, done, strict=True):
        stored = by_id[row["id"]]
        assert got["id"] == row["id"] and got["status"] == stored["status"]
        assert len(stored["attempts"]) == 1 and stored["attempts"][0]["response_status"] == result.response_status
    assert [d["status"] for d in done] == ["succeeded", "succeeded", "pending", "succeeded", "succeeded", "succeeded"]
    assert by_id[leased[2]["id"]]["attempt_count"] == 1 and by_id[leased[2]["id"]]["next_attempt_at"] is not None
    assert by_id[leased[0]["id"]]["attempt_count"] == 0  # not the lease holder's to count: history only
    assert all(by_id[r["id"]]["locked_until"] is None for r in leased[1:])
    assert (await endpoint_row(gw, ep["id"]))["failing_since"] is not None  # the 500 started a streak


async def _lay_out_in_reverse(gw: Gateway, ids: list[str]) -> None:
    """Rewrite the rows last-id-first, so a scan in table order meets them in reverse id order (the order in
    which a multi-row UPDATE left to its plan would lock them)."""
    async with gw.pool.connection() as conn:
        for delivery_id in reversed(ids):
            await conn.execute("UPDATE webhook_deliveries SET updated_at = updated_at WHERE id = %s", (delivery_id,))
        cur = await conn.execute("SELECT id FROM webhook_deliveries WHERE id = ANY(%s) ORDER BY ctid", (ids,))
        assert [r["id"] for r in await cur.fetchall()] == list(reversed(ids))


async def _locked_while_blocked(gw: Gateway, ids: list[str], statement: Callable[[Any], Any]) -> tuple[bool, bool]:
    """Hold the middle row, start `statement`, and once it waits for that row report whether it already
    holds (first id, last id): ordered locking holds the first and not yet the last."""
    async with gw.pool.connection() as holder, holder.transaction():
        await holder.execute("SELECT id FROM webhook_deliveries WHERE id = %s FOR UPDATE", (ids[1],))

        async def run() -> None:
            async with gw.pool.connection() as conn:
                await conn.execute("SET lock_timeout = 0")  # it waits for as long as the holder takes
                try:
                    await statement(conn)
                finally:
                    await conn.execute("RESET lock_timeout")

        task = asyncio.create_task(run())

        async def waiting() -> bool:
            async with gw.pool.connection() as watcher:  # not the holder's: its transaction sees one snapshot
                cur = await watcher.execute("SELECT count(*) AS n FROM pg_stat_activity "
                                            "WHERE datname = current_database() AND wait_event_type = 'Lock'")
                row = await cur.fetchone()
            return row is not None and row["n"] >= 1

        await eventually(waiting)

        async def held(delivery_id: str) -> bool:
            async with gw.pool.connection() as probe:
                try:
                    async with probe.transaction():
                        await probe.execute("SELECT id FROM webhook_deliveries WHERE id = %s FOR UPDATE NOWAIT",
                                            (delivery_id,))
                except psycopg.errors.LockNotAvailable:
                    return True
                return False

        first, last = await held(ids[0]), await held(ids[2])
    await asyncio.wait_for(task, 15)
    return first, last


async def test_multi_row_delivery_updates_lock_in_id_order_so_they_cannot_deadlock(
    gw: Gateway, who: Principal
) -> None:
    # A batch of recorded attempts, released leases and an endpoint's deletion all update many delivery rows;
    # locking them in plan order, two of them could each hold a row the other waits for. All lock in id order.
    ep = await endpoint(gw, who)
    await emit(gw, who, n=3)
    ids = sorted(r["id"] for r in await claim(gw))
    await _lay_out_in_reverse(gw, ids)
    leases = [(r["id"], r["locked_until"]) for r in await deliveries(gw, who)]

    async def release(conn: Any) -> None:  # a stopping worker gives its leases back
        assert await store.release(conn, sorted(leases, reverse=True)) == 3

    assert await _locked_while_blocked(gw, ids, release) == (True, False)

    leased = sorted(await claim(gw), key=lambda r: r["id"])
    assert [r["id"] for r in leased] == ids
    await _lay_out_in_reverse(gw, ids)
    items = [store.Recorded(r["id"], r["locked_until"], {"n": 1}, "pending", utcnow()) for r in reversed(leased)]

    async def record_batch(conn: Any) -> None:
        assert len(await store.record_many_if_leased(conn, items, now=utcnow())) == 3

    assert await _locked_while_blocked(gw, ids, record_batch) == (True, False)

    await _lay_out_in_reverse(gw, ids)

    async def fail_pending(conn: Any) -> None:
        assert await store.fail_pending_of_endpoint(conn, ep["id"], utcnow()) == 3

    assert await _locked_while_blocked(gw, ids, fail_pending) == (True, False)
    assert {d["status"] for d in await deliveries(gw, who)} == {"failed"}
