"""The email loop: lease due outbox emails, send them concurrently, record each attempt.

Emails are few next to webhook deliveries, so this loop polls (every `PAYGATE_WORKER_POLL_S`, at once
again after a full batch) instead of listening for NOTIFY. Several workers share the outbox through
FOR UPDATE SKIP LOCKED; a killed one's leases expire and its emails are sent again, with the same
Message-ID. Without `PAYGATE_SMTP_URL` due emails are recorded `skipped` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

import structlog

from paygate.config import Settings
from paygate.domain.retry import parse_schedule
from paygate.mail.transport import Smtp, Transport, parse_url
from paygate.services import emails
from paygate.services.gateway import Gateway
from paygate.store.db import Row

log = structlog.get_logger("paygate.emails")

BATCH = 16
PURGE_EVERY_S = 600.0
STOP_GRACE_S = 5.0


class EmailLoop:
    def __init__(self, gw: Gateway, transport: Transport | None, *, batch: int = BATCH,
                 poll_s: float | None = None, stop_grace_s: float = STOP_GRACE_S) -> None:
        self.gw = gw
        self.stop_grace_s = stop_grace_s
        self.transport = transport
        self.schedule = parse_schedule(gw.settings.webhook_retry_schedule)
        self.batch = batch
        self.poll_s = gw.settings.worker_poll_s if poll_s is None else poll_s
        self._held: dict[str, datetime] = {}  # leases of the emails being sent right now

    async def once(self) -> int:
        """One pass: how many emails it handled (sent, failed, rescheduled or skipped)."""
        if self.transport is None:
            return await emails.skip_due(self.gw)
        rows = await emails.claim(self.gw, limit=self.batch, schedule=self.schedule)
        for row in rows:
            self._held[row["id"]] = row["locked_until"]
        await asyncio.gather(*(self._deliver(self.transport, row) for row in rows))
        return len(rows)

    async def _deliver(self, transport: Transport, row: Row) -> None:
        try:
            await emails.deliver(self.gw, transport, row, self.schedule)
        except Exception as exc:  # not recorded: the lease runs out and the email is sent again
            log.warning("email_record_failed", email=row["id"], error=type(exc).__name__, detail=str(exc)[:200])
        finally:
            self._held.pop(row["id"], None)

    async def run(self, stop: asyncio.Event) -> None:
        purged_at = 0.0
        while not stop.is_set():
            handled = 0
            if time.monotonic() - purged_at >= PURGE_EVERY_S:
                purged_at = time.monotonic()
                try:
                    await emails.purge(self.gw)
                except Exception as exc:
                    log.warning("email_purge_failed", error=type(exc).__name__, detail=str(exc)[:200])
            work = asyncio.create_task(self.once(), name="emails-pass")
            stopping = asyncio.create_task(stop.wait(), name="emails-stop")
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not work.done():  # stopping mid-pass: let attempts finish briefly, then hand the rest back
                await asyncio.wait({work}, timeout=self.stop_grace_s)
                if not work.done():
                    held = list(self._held.items())  # before cancelling: each task forgets its lease as it ends
                    work.cancel()
                    await asyncio.gather(work, return_exceptions=True)
                    with contextlib.suppress(Exception):
                        await emails.release(self.gw, held)
                    return
            try:
                handled = work.result()
            except Exception as exc:  # the database may be away: log, then wait like an idle pass
                log.warning("email_claim_failed", error=type(exc).__name__, detail=str(exc)[:200])
            if handled >= self.batch:
                continue  # a full batch: more may be due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)


def check_settings(settings: Settings) -> None:
    """Refuse to start on an unusable `PAYGATE_SMTP_URL` (before any loop runs), naming the variable and
    never echoing the URL: it may hold a password."""
    if settings.smtp_url:
        try:
            parse_url(settings.smtp_url)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None


def transport_for(gw: Gateway) -> Transport | None:
    url = gw.settings.smtp_url
    return Smtp(parse_url(url)) if url else None


async def run(gw: Gateway, stop: asyncio.Event) -> None:
    """`paygate worker`'s email loop, until `stop` is set."""
    transport = transport_for(gw)
    if transport is None:
        log.info("email_disabled", reason="PAYGATE_SMTP_URL is not set; due emails are recorded as skipped")
    await EmailLoop(gw, transport).run(stop)
