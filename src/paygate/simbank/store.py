"""The simulated bank's SQL — the one documented exception to "SQL only in store/". It runs in the bank's
own schema (`bank`, or `bank_<name>`), set as every pooled session's search_path.

Every mutation runs in one transaction that first claims its idempotency key (a primary-key insert: a
concurrent duplicate blocks on it until the first commits, then replays), then acts under row locks
(an authorization's row, then the card's account row — always in that order), then binds the key to
the operation it answered. Card numbers are stored only as a keyed hash (cards.card_hash); CVCs never.

The hot operations (a card's authorization, capture, void, refund) run that transaction as one PL/pgSQL
function each (migrations/0005, docs/decisions/0021): one statement, one round trip. Python still decides
everything the card table and the rules say, and passes it in; a key found taken is replayed here.
"""

from __future__ import annotations

import dataclasses
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from paygate.simbank import cards
from paygate.simbank.rules import new_id

Conn = AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Conn]

CALLBACK_LEASE_S = 30.0  # a claimed callback is re-sent after this if its sender vanished
CALLBACK_BACKOFF_BASE_S = 0.2
CALLBACK_BACKOFF_CAP_S = 10.0
CHECK_AFTER_IDLE_S = 1.0


def make_pool(conninfo: str, schema: str, *, min_size: int = 1, max_size: int = 20, statement_timeout_ms: int = 5000,
              lock_timeout_ms: int = 3000) -> Pool:
    """Autocommit sessions whose search_path is this bank's schema (so two named banks in one database
    never see each other's rows), with server-side timeouts, closed until the app's lifespan opens it. A
    caller waits up to 30 s for a free connection: under a benchmark's load the bank queues, not fails."""
    own = str(conninfo_to_dict(conninfo).get("options") or os.environ.get("PGOPTIONS", ""))
    options = (f"{own} -c search_path={schema} -c statement_timeout={int(statement_timeout_ms)}"
               f" -c lock_timeout={int(lock_timeout_ms)}").strip()

    async def configure(conn: Conn) -> None:
        await conn.set_autocommit(True)

    last_handed_out: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()

    async def check(conn: Conn) -> None:
        """An empty round trip before handing out a connection idle for a second or more (one that may have
        died meanwhile); a busy pool pays nothing — the gateway's rule (paygate/store/db.py `_check`)."""
        now = time.monotonic()
        last, last_handed_out[conn] = last_handed_out.get(conn), now
        if last is None or now - last >= CHECK_AFTER_IDLE_S:
            await AsyncConnectionPool.check_connection(conn)

    return AsyncConnectionPool(
        conninfo, min_size=min_size, max_size=max_size, open=False, name=f"paygate-{schema}", timeout=30.0,
        kwargs={"row_factory": dict_row, "prepare_threshold": 0, "connect_timeout": 3, "options": options},
        connection_class=AsyncConnection[DictRow], configure=configure, check=check,
        max_lifetime=1800, reconnect_timeout=0,
    )


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NotApplied(Exception):
    """Raised inside an action to roll the whole transaction back (key included) and answer 500."""


class KeyReused(Exception):
    """The idempotency key was first used with a different request."""


@dataclass(frozen=True)
class Operation:
    id: str
    reference: str | None
    type: str | None
    status: str
    amount: int
    currency: str | None
    captured: bool
    failure_code: str | None
    tombstone: bool
    created_at: datetime
    # an authorization with automatic capture: the id of the capture operation made with it (paygate's
    # acquirer_references.capture, API.md §14)
    capture_id: str | None = None
    challenge_url: str | None = None  # an authentication: the challenge page the cardholder answers (§15)

    @classmethod
    def from_row(cls, row: DictRow) -> Operation:
        return cls(
            id=row["id"],
            reference=row["reference"],
            type=row["type"],
            status=row["status"],
            amount=row["amount"],
            currency=row["currency"],
            captured=row["captured"],
            failure_code=row["failure_code"],
            tombstone=row["tombstone"],
            created_at=row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        out = self._json()
        if self.type == "authentication":
            out["challenge_url"] = self.challenge_url
        return out

    def _json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "bank_operation",
            "reference": self.reference,
            "type": self.type,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "captured": self.captured,
            "failure_code": self.failure_code,
            "capture_id": self.capture_id,
            "created_at": rfc3339(self.created_at),
        }


_OP_COLUMNS = "id, reference, type, status, amount, currency, captured, failure_code, tombstone, created_at"


async def _one(conn: Conn, sql: str, params: tuple[Any, ...]) -> DictRow | None:
    cur = await conn.execute(sql.encode(), params)
    return await cur.fetchone()


async def _insert_op(
    conn: Conn,
    *,
    reference: str | None,
    type_: str | None,
    status: str,
    amount: int,
    currency: str | None = None,
    captured: bool = False,
    failure_code: str | None = None,
    tombstone: bool = False,
) -> Operation:
    row = await _one(
        conn,
        "INSERT INTO operations (id, reference, type, status, amount, currency, captured, failure_code,"
        f" tombstone) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_OP_COLUMNS}",
        (new_id("bop"), reference, type_, status, amount, currency, captured, failure_code, tombstone),
    )
    assert row is not None
    return Operation.from_row(row)


async def _insert_ops(conn: Conn, specs: list[dict[str, Any]]) -> list[Operation]:
    """Several `_insert_op`s in one statement (the same columns and defaults), in the order given."""
    rows = [(new_id("bop"), spec["reference"], spec["type_"], spec["status"], spec["amount"], spec.get("currency"),
             spec.get("captured", False), spec.get("failure_code"), spec.get("tombstone", False)) for spec in specs]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    cur = await conn.execute(
        "INSERT INTO operations (id, reference, type, status, amount, currency, captured, failure_code,"
        f" tombstone) VALUES {values} RETURNING {_OP_COLUMNS}".encode(),
        [value for row in rows for value in row],
    )
    by_id = {r["id"]: Operation.from_row(r) for r in await cur.fetchall()}
    return [by_id[row[0]] for row in rows]


async def get_operation(conn: Conn, op_id: str) -> Operation:
    row = await _one(conn, f"SELECT {_OP_COLUMNS} FROM operations WHERE id = %s", (op_id,))
    if row is None:
        raise LookupError(op_id)
    op = Operation.from_row(row)
    if op.type == "authorization" and op.captured and op.reference is not None:
        capture = await _one(conn, "SELECT id FROM operations WHERE reference = %s AND type = 'capture'"
                                   " ORDER BY created_at, id LIMIT 1", (op.reference,))
        if capture is not None:
            op = dataclasses.replace(op, capture_id=capture["id"])
    if op.type == "authentication":
        auth = await _one(conn, "SELECT challenge_url FROM authentications WHERE operation_id = %s", (op.id,))
        if auth is not None:
            op = dataclasses.replace(op, challenge_url=auth["challenge_url"])
    return op


# --- idempotency ------------------------------------------------------------------------------------


async def _claim_key(conn: Conn, key: str, request_hash: bytes | None) -> DictRow | None:
    """None when this transaction now owns the key; else the committed row (blocks on a running owner)."""
    claimed = await _one(
        conn,
        "INSERT INTO idempotency_keys (key, request_hash) VALUES (%s, %s)"
        " ON CONFLICT (key) DO NOTHING RETURNING key",
        (key, request_hash),
    )
    if claimed is not None:
        return None
    row = await _one(conn, "SELECT request_hash, operation_id FROM idempotency_keys WHERE key = %s", (key,))
    assert row is not None  # keys are never deleted, and an owner always binds before committing
    return row


async def _bind_key(conn: Conn, key: str, op_id: str) -> None:
    await conn.execute(b"UPDATE idempotency_keys SET operation_id = %s WHERE key = %s", (op_id, key))


Action = Callable[[Conn], Awaitable[Operation]]


@dataclass(frozen=True)
class OneTrip:
    """An operation's whole transaction as one call of its PL/pgSQL function (migration 0005, decision 0021):
    one statement on an autocommit connection runs in its own transaction, so one round trip and one commit.
    `sql` takes the key and the request's hash first, then `params` (every decision Python made)."""

    sql: bytes
    params: tuple[Any, ...]


Plan = Action | OneTrip


def _call(function: str, arity: int) -> bytes:
    return f"SELECT * FROM {function}({', '.join(['%s'] * arity)})".encode()


async def _key_taken(conn: Conn) -> Operation:
    raise NotApplied("unreachable: a key is never deleted, so one taken stays taken")


@dataclass(frozen=True)
class Arrival:
    """What an operation request asked for: recorded if it arrives after an inquiry fenced its key off."""

    type: str
    reference: str
    amount: int
    currency: str | None = None


async def execute(
    pool: Pool, key: str, request_hash: bytes, action: Plan, arrival: Arrival | None = None
) -> tuple[Operation, bool]:
    """Run `action` once per key: returns (operation, replayed). Raises KeyReused, NotApplied.

    A `OneTrip` is tried first: its function claims the key and acts, or, finding the key taken (after
    waiting for a running owner to commit), writes nothing and answers `exists` — the replay below then
    answers it as for any other action (the key is permanent, so the claim there finds it again).

    A request whose key an inquiry tombstoned (decision 0003: the late original) is answered with the
    tombstone and does not act; it is listed as a failed operation of its own (`processing_error`), so
    that the inspection API shows the bank received it and refused it.

    In pipeline mode: statements whose results are not read (the advisory lock, the account's upsert, the
    movements, the key's binding) go out with the next read or the COMMIT (docs/decisions/0019)."""
    if isinstance(action, OneTrip):
        async with pool.connection() as conn:
            cur = await conn.execute(action.sql, (key, request_hash, *action.params))
            row = await cur.fetchone()
        assert row is not None
        if row["outcome"] == "applied":
            return dataclasses.replace(Operation.from_row(row), capture_id=row["capture_id"]), False
        action = _key_taken
    async with pool.connection() as conn, conn.pipeline(), conn.transaction():
        existing = await _claim_key(conn, key, request_hash)
        if existing is not None:
            stored = existing["request_hash"]
            if stored is not None and bytes(stored) != request_hash:
                raise KeyReused(key)
            op = await get_operation(conn, existing["operation_id"])
            if op.tombstone and arrival is not None:
                await _insert_op(conn, reference=arrival.reference, type_=arrival.type, status="failed",
                                 amount=arrival.amount, currency=arrival.currency, failure_code="processing_error")
            return op, True
        op = await action(conn)
        await _bind_key(conn, key, op.id)
        return op, False


async def inquire(pool: Pool, key: str) -> tuple[Operation, bool]:
    """(operation, found). Nothing under the key: write a tombstone so a late original cannot act."""
    async with pool.connection() as conn, conn.pipeline(), conn.transaction():
        existing = await _claim_key(conn, key, None)
        if existing is None:
            op = await _insert_op(
                conn,
                reference=None,
                type_=None,
                status="failed",
                amount=0,
                failure_code="processing_error",
                tombstone=True,
            )
            await _bind_key(conn, key, op.id)
            return op, False
        op = await get_operation(conn, existing["operation_id"])
        return op, not op.tombstone


# --- accounts and authorizations ------------------------------------------------------------------


_UPSERT_ACCOUNT = (b"INSERT INTO accounts (card_hash, balance) VALUES (%s, %s) ON CONFLICT (card_hash)"
                   b" DO UPDATE SET balance = accounts.balance RETURNING balance, held, captured, refunded")


async def _lock_account(conn: Conn, card_hash: bytes, initial_balance: int) -> DictRow:
    """The card's account, created with `initial_balance` if new, locked until the end of the transaction —
    one statement: the conflict's DO UPDATE (of nothing) locks the row as FOR UPDATE would, and returns
    its latest committed version."""
    cur = await conn.execute(_UPSERT_ACCOUNT, (card_hash, initial_balance))
    row = await cur.fetchone()
    assert row is not None
    return row


async def _move(
    conn: Conn, card_hash: bytes, *, balance: int = 0, held: int = 0, captured: int = 0, refunded: int = 0
) -> None:
    await conn.execute(
        b"UPDATE accounts SET balance = balance + %s, held = held + %s, captured = captured + %s,"
        b" refunded = refunded + %s WHERE card_hash = %s",
        (balance, held, captured, refunded, card_hash),
    )


async def _lock_reference(conn: Conn, reference: str) -> DictRow | None:
    """Serialise authorizations of one reference, and return its authorization (locked) if any."""
    await conn.execute(b"SELECT pg_advisory_xact_lock(hashtextextended('bank.ref:' || %s, 0))", (reference,))
    return await _lock_authorization(conn, reference)


async def _lock_authorization(conn: Conn, reference: str) -> DictRow | None:
    return await _one(
        conn,
        "SELECT reference, operation_id, card_hash, amount, currency, state, captured_amount, refunded_amount,"
        " dispute_on_capture FROM authorizations WHERE reference = %s FOR UPDATE",
        (reference,),
    )


async def _insert_authorization(
    conn: Conn, op: Operation, card_hash: bytes | None, state: str, captured_amount: int = 0,
    callback_url: str | None = None, dispute_on_capture: bool = False,
) -> None:
    await conn.execute(
        b"INSERT INTO authorizations (reference, operation_id, card_hash, amount, currency, state,"
        b" captured_amount, callback_url, dispute_on_capture) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (op.reference, op.id, card_hash, op.amount, op.currency, state, captured_amount, callback_url,
         dispute_on_capture),
    )


async def verify_card(conn: Conn, *, reference: str, number: str, exp_month: int, exp_year: int, cvc: str,
                      now: datetime) -> Operation:
    """The test-card rules without the balance and without a hold: could this card be charged?"""
    if cards.lookup(number).server_error:
        raise NotApplied("test card 4000000000000119")
    failure = cards.decide(number, exp_month, exp_year, cvc, now)
    return await _insert_op(conn, reference=reference, type_="verification",
                            status="failed" if failure else "succeeded", amount=0, currency=None,
                            failure_code=failure)


def _card_failure(number: str, exp_month: int, exp_year: int, cvc: str | None, now: datetime) -> str | None:
    """What the card table says of an authorization, before the balance (None: only the balance remains)."""
    failure = cards.decide(number, exp_month, exp_year, cvc, now)
    # §15: a challenge card is authorized only after its holder passed a challenge — unless it is a charge of a
    # stored card (no CVC: the merchant charging a saved card off-session, §16, needs none)
    if failure is None and cards.lookup(number).challenge and cvc is not None:
        failure = "authentication_required"
    return failure


_AUTHORIZE_CARD = _call("bank_authorize_card", 16)


async def _server_error_card(conn: Conn) -> Operation:
    raise NotApplied("test card 4000000000000119")


def plan_authorize_card(
    *, reference: str, amount: int, currency: str, number: str, exp_month: int, exp_year: int, cvc: str | None,
    capture: bool, now: datetime, card_key: bytes, callback_url: str | None = None,
) -> Plan:
    """A card authorization, in one round trip: the card table decides here, `bank_authorize_card` does the
    rest (the reference's duplicate check, the balance, the hold or the capture). The server-error test card
    (500, nothing applied — but a replay of its key still answers) keeps the usual path."""
    from paygate.simbank import money

    rule = cards.lookup(number)
    if rule.server_error:
        return _server_error_card
    disputed = number == money.AUTO_DISPUTE_CARD
    # drawn only where after_capture would draw it (a declined one is drawn for nothing: the rng is unseeded)
    delay = money.TIMING.dispute_delay() if disputed and capture else 0.0
    return OneTrip(_AUTHORIZE_CARD, (
        reference, amount, currency, cards.card_hash(number, card_key), rule.balance,
        _card_failure(number, exp_month, exp_year, cvc, now), capture, callback_url, disputed, delay,
        new_id("bop"), new_id("bop"), new_id("bmv"), new_id("bdp")))


async def _hold(conn: Conn, *, reference: str, amount: int, currency: str, card_hash: bytes, balance: int,
                failure: str | None, capture: bool, callback_url: str | None, disputed: bool) -> Operation:
    """The authorization once the card's rules have spoken: the balance check, then the hold (and capture)."""
    from paygate.simbank import money

    if failure is None:
        account = await _lock_account(conn, card_hash, balance)
        if account["balance"] - account["held"] < amount:
            failure = "insufficient_funds"
    if failure is not None:
        return await _insert_op(
            conn,
            reference=reference,
            type_="authorization",
            status="failed",
            amount=amount,
            currency=currency,
            failure_code=failure,
        )
    if capture:  # hold then capture at once: recorded as two operations, inserted by one statement
        op, taken = await _insert_ops(conn, [
            dict(reference=reference, type_="authorization", status="succeeded", amount=amount, currency=currency,
                 captured=True),
            dict(reference=reference, type_="capture", status="succeeded", amount=amount, currency=currency)])
        op = dataclasses.replace(op, capture_id=taken.id)
        await _move(conn, card_hash, balance=-amount, captured=amount)
        await _insert_authorization(conn, op, card_hash, "captured", captured_amount=amount,
                                    callback_url=callback_url, dispute_on_capture=disputed)
        await money.after_capture(conn, reference, amount, currency, disputed=disputed)
        return op
    op = await _insert_op(conn, reference=reference, type_="authorization", status="succeeded", amount=amount,
                          currency=currency)
    await _move(conn, card_hash, held=amount)
    await _insert_authorization(conn, op, card_hash, "active", callback_url=callback_url, dispute_on_capture=disputed)
    return op


# --- customer authentication (§15) ----------------------------------------------------------------


async def authenticate_card(
    conn: Conn, *, reference: str, amount: int, currency: str, number: str, exp_month: int, exp_year: int,
    cvc: str | None, now: datetime, card_key: bytes, callback_url: str | None, return_url: str, base_url: str,
) -> Operation:
    """Open a challenge for the card: `pending` with its page, or `failed` with the card's decline code when
    the card could not be charged anyway (nothing to authenticate). A card that needs no challenge is
    authenticated at once (`succeeded`, frictionless)."""
    rule = cards.lookup(number)
    if rule.server_error:
        raise NotApplied("test card 4000000000000119")
    failure = cards.decide(number, exp_month, exp_year, cvc, now)
    status = "failed" if failure else ("pending" if rule.challenge else "succeeded")
    op = await _insert_op(conn, reference=reference, type_="authentication", status=status, amount=amount,
                          currency=currency, failure_code=failure)
    if failure:
        return op
    challenge_url = f"{base_url.rstrip('/')}/challenge/{op.id}"
    await conn.execute(
        b"INSERT INTO authentications (operation_id, reference, card_hash, amount, currency, status, challenge_url,"
        b" return_url, callback_url, answered_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (op.id, reference, cards.card_hash(number, card_key), amount, currency, status, challenge_url, return_url,
         callback_url, None if rule.challenge else now),
    )
    return dataclasses.replace(op, challenge_url=challenge_url)


async def authorize_authenticated(conn: Conn, *, reference: str, amount: int, currency: str, authentication: str,
                                  capture: bool, callback_url: str | None) -> Operation:
    """The authorization of a card its holder authenticated: the card is the one the authentication saw (its
    hash), for at most the amount and the reference it was authenticated for, once."""

    if await _lock_reference(conn, reference) is not None:
        return await _insert_op(conn, reference=reference, type_="authorization", status="failed", amount=amount,
                                currency=currency, failure_code="duplicate_reference")
    auth = await _one(
        conn,
        "SELECT card_hash, amount, currency, status, used FROM authentications"
        " WHERE operation_id = %s AND reference = %s FOR UPDATE",
        (authentication, reference),
    )
    usable = (auth is not None and auth["status"] == "succeeded" and not auth["used"]
              and amount <= auth["amount"] and currency == auth["currency"])
    if auth is None or not usable:
        return await _insert_op(conn, reference=reference, type_="authorization", status="failed", amount=amount,
                                currency=currency, failure_code="authentication_required")
    await conn.execute(b"UPDATE authentications SET used = true WHERE operation_id = %s", (authentication,))
    card_hash = bytes(auth["card_hash"])
    # the balance a fresh account opens with: the challenge card's own (the default)
    return await _hold(conn, reference=reference, amount=amount, currency=currency, card_hash=card_hash,
                       balance=cards.DEFAULT_BALANCE, failure=None, capture=capture, callback_url=callback_url,
                       disputed=False)


@dataclass(frozen=True)
class Challenge:
    id: str
    reference: str
    amount: int
    currency: str
    status: str
    return_url: str


async def challenge(pool: Pool, op_id: str) -> Challenge | None:
    async with pool.connection() as conn:
        row = await _one(conn, "SELECT operation_id, reference, amount, currency, status, return_url"
                               " FROM authentications WHERE operation_id = %s", (op_id,))
    if row is None:
        return None
    return Challenge(row["operation_id"], row["reference"], row["amount"], row["currency"], row["status"],
                     row["return_url"])


def _authentication_event(event_id: str, reference: str, succeeded: bool, created_at: datetime) -> bytes:
    return orjson.dumps({
        "id": event_id,
        "type": "authentication.succeeded" if succeeded else "authentication.failed",
        "created_at": rfc3339(created_at),
        "data": {"reference": reference},
    })


async def answer_challenge(pool: Pool, op_id: str, *, succeeded: bool, callback_delay_s: float,
                           duplicate: bool, duplicate_delay_s: float) -> Challenge | None:
    """Answer a pending challenge once: the operation's outcome and the signed callback (retried until a 2xx)
    in one transaction. A challenge answered already is returned as it is and changes nothing."""
    async with pool.connection() as conn, conn.transaction():
        row = await _one(conn, "SELECT operation_id, reference, amount, currency, status, return_url, callback_url"
                               " FROM authentications WHERE operation_id = %s FOR UPDATE", (op_id,))
        if row is None:
            return None
        found = Challenge(row["operation_id"], row["reference"], row["amount"], row["currency"], row["status"],
                          row["return_url"])
        if row["status"] != "pending":
            return found
        status = "succeeded" if succeeded else "failed"
        now = datetime.now(UTC)
        await conn.execute(b"UPDATE authentications SET status = %s, answered_at = %s WHERE operation_id = %s",
                           (status, now, op_id))
        await conn.execute(b"UPDATE operations SET status = %s, failure_code = %s WHERE id = %s",
                           (status, None if succeeded else "authentication_failed", op_id))
        if row["callback_url"]:
            event_id = new_id("bevt")
            body = _authentication_event(event_id, row["reference"], succeeded, now)
            for delay in [callback_delay_s] + ([callback_delay_s + duplicate_delay_s] if duplicate else []):
                await conn.execute(
                    b"INSERT INTO callbacks (event_id, url, body, due_at)"
                    b" VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
                    (event_id, row["callback_url"], body, delay),
                )
        return dataclasses.replace(found, status=status)


async def authorize_upi(
    conn: Conn,
    *,
    reference: str,
    amount: int,
    currency: str,
    succeed: bool,
    callback_url: str | None,
    delay_s: float,
) -> Operation:
    """Answer pending now; a durable settlement row settles it after `delay_s` (UPI always captures)."""
    if await _lock_reference(conn, reference) is not None:
        return await _insert_op(
            conn,
            reference=reference,
            type_="authorization",
            status="failed",
            amount=amount,
            currency=currency,
            failure_code="duplicate_reference",
        )
    op = await _insert_op(
        conn, reference=reference, type_="authorization", status="pending", amount=amount, currency=currency
    )
    await _insert_authorization(conn, op, None, "pending", callback_url=callback_url)
    await conn.execute(
        b"INSERT INTO settlements (operation_id, succeed, callback_url, settle_at)"
        b" VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
        (op.id, succeed, callback_url, delay_s),
    )
    return op


_CAPTURE, _VOID, _REFUND = _call("bank_capture", 8), _call("bank_void", 4), _call("bank_refund", 6)


def plan_capture(*, reference: str, amount: int) -> OneTrip:
    """A capture, in one round trip (`bank_capture`). Whether its authorization's card is the auto-disputed
    one is read by the function, so the dispute's delay is drawn for every capture (and used for that card's)."""
    from paygate.simbank import money

    return OneTrip(_CAPTURE, (reference, amount, money.TIMING.dispute_delay(), new_id("bop"), new_id("bmv"),
                              new_id("bdp")))


def plan_void(*, reference: str) -> OneTrip:
    return OneTrip(_VOID, (reference, new_id("bop")))


def plan_refund(*, reference: str, amount: int) -> OneTrip:
    return OneTrip(_REFUND, (reference, amount, new_id("bop"), new_id("bmv")))


# --- inspection -----------------------------------------------------------------------------------


async def list_operations(pool: Pool, reference: str) -> list[Operation]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_OP_COLUMNS} FROM operations WHERE reference = %s AND NOT tombstone"
            " ORDER BY created_at, id".encode(),
            (reference,),
        )
        return [Operation.from_row(r) for r in await cur.fetchall()]


async def card_state(pool: Pool, number: str, card_key: bytes) -> dict[str, int]:
    async with pool.connection() as conn:
        row = await _one(
            conn,
            "SELECT balance, held, captured, refunded FROM accounts WHERE card_hash = %s",
            (cards.card_hash(number, card_key),),
        )
    if row is None:  # accounts are created lazily; an unused card shows its opening balance
        return {"available": cards.initial_balance(number), "held": 0, "captured": 0, "refunded": 0}
    return {
        "available": row["balance"] - row["held"],
        "held": row["held"],
        "captured": row["captured"],
        "refunded": row["refunded"],
    }


# --- background work: UPI settlements and the callback outbox ----------------------------------------


def _event_body(event_id: str, op: Operation, created_at: datetime, succeeded: bool) -> bytes:
    data: dict[str, Any] = {"reference": op.reference, "operation": "capture", "amount": op.amount}
    if not succeeded:
        data["failure_code"] = op.failure_code
    return orjson.dumps(
        {
            "id": event_id,
            "type": "operation.succeeded" if succeeded else "operation.failed",
            "created_at": rfc3339(created_at),
            "data": data,
        }
    )


async def settle_due(
    pool: Pool, *, duplicate: Callable[[], bool], duplicate_delay: Callable[[], float], limit: int = 50
) -> int:
    """Settle the UPI authorizations that are due; each with its callback(s) in the same transaction."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            b"SELECT operation_id, succeed, callback_url FROM settlements WHERE settle_at <= now()"
            b" ORDER BY settle_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        )
        due = await cur.fetchall()
        for row in due:
            await _settle_one(conn, row, duplicate, duplicate_delay)
        return len(due)


async def _settle_one(
    conn: Conn, row: DictRow, duplicate: Callable[[], bool], duplicate_delay: Callable[[], float]
) -> None:
    op = await get_operation(conn, row["operation_id"])
    assert op.reference is not None
    await _lock_authorization(conn, op.reference)
    succeeded = bool(row["succeed"])
    if succeeded:
        await conn.execute(b"UPDATE operations SET status = 'succeeded', captured = true WHERE id = %s", (op.id,))
        await conn.execute(
            b"UPDATE authorizations SET state = 'captured', captured_amount = amount WHERE reference = %s",
            (op.reference,),
        )
        await _insert_op(
            conn,
            reference=op.reference,
            type_="capture",
            status="succeeded",
            amount=op.amount,
            currency=op.currency,
        )
        from paygate.simbank import money

        await money.after_capture(conn, op.reference, op.amount, op.currency or "")
    else:
        await conn.execute(
            b"UPDATE operations SET status = 'failed', failure_code = 'payment_declined' WHERE id = %s",
            (op.id,),
        )
        await conn.execute(b"UPDATE authorizations SET state = 'failed' WHERE reference = %s", (op.reference,))
    await conn.execute(b"DELETE FROM settlements WHERE operation_id = %s", (op.id,))
    url = row["callback_url"]
    if not url:
        return
    settled = await get_operation(conn, op.id)
    event_id = new_id("bevt")
    body = _event_body(event_id, settled, datetime.now(UTC), succeeded)
    delays = [0.0] + ([duplicate_delay()] if duplicate() else [])
    for delay in delays:
        await conn.execute(
            b"INSERT INTO callbacks (event_id, url, body, due_at)"
            b" VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
            (event_id, url, body, delay),
        )


@dataclass(frozen=True)
class Callback:
    id: int
    event_id: str
    url: str
    body: bytes
    attempts: int


async def claim_callbacks(pool: Pool, limit: int = 20) -> list[Callback]:
    """Lease due callbacks (push their due time out) so that no other sender takes them meanwhile."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            b"WITH due AS (SELECT id FROM callbacks WHERE delivered_at IS NULL AND due_at <= now()"
            b" ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            b" UPDATE callbacks c SET due_at = now() + make_interval(secs => %s) FROM due"
            b" WHERE c.id = due.id RETURNING c.id, c.event_id, c.url, c.body, c.attempts",
            (limit, CALLBACK_LEASE_S),
        )
        return [
            Callback(r["id"], r["event_id"], r["url"], bytes(r["body"]), r["attempts"]) for r in await cur.fetchall()
        ]


def callback_backoff(attempts: int) -> float:
    """Delay after the `attempts`-th failed attempt: 0.2 s doubling, capped at 10 s."""
    return float(min(CALLBACK_BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), CALLBACK_BACKOFF_CAP_S))


async def finish_callback(pool: Pool, cb: Callback, error: str | None) -> None:
    async with pool.connection() as conn:
        if error is None:
            await conn.execute(
                b"UPDATE callbacks SET delivered_at = now(), attempts = attempts + 1, last_error = NULL"
                b" WHERE id = %s",
                (cb.id,),
            )
        else:
            await conn.execute(
                b"UPDATE callbacks SET attempts = attempts + 1, last_error = %s,"
                b" due_at = now() + make_interval(secs => %s) WHERE id = %s",
                (error[:500], callback_backoff(cb.attempts + 1), cb.id),
            )


async def pending_callbacks(pool: Pool) -> int:
    """Callbacks not yet delivered (for tests and drills)."""
    async with pool.connection() as conn:
        row = await _one(conn, "SELECT count(*) AS n FROM callbacks WHERE delivered_at IS NULL", ())
        return int(row["n"]) if row else 0
