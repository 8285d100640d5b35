"""The simulated acquiring bank (API.md §12): a FastAPI app of its own, with its state in its own schema
(`bank`, or `bank_<name>` for a named bank, §12 v2).

It imports nothing of the gateway but the Standard Webhooks primitives and the neutral migration runner
(docs/decisions/0014). `create_app(conninfo, config)` builds it; its lifespan opens the connection pool and runs the
background loop that settles UPI payments and delivers their signed callbacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from paygate import heap
from paygate.simbank import cards, challenges, money, routes_money, store
from paygate.simbank.callbacks import CallbackWorker
from paygate.simbank.config import BankConfig
from paygate.simbank.faults import Faults, parse_range_ms
from paygate.simbank.rules import digits_only, luhn_valid, valid_vpa

log = logging.getLogger(__name__)

MIGRATIONS = "paygate.simbank.migrations"
MAX_AMOUNT = 99_999_999


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, type_: str, code: str, message: str, param: str | None = None) -> Response:
    err: dict[str, Any] = {"type": type_, "code": code, "message": message}
    if param is not None:
        err["param"] = param
    return _json(status, {"error": err})


def _server_error() -> Response:
    return _error(500, "api_error", "bank_error", "The bank could not process the request.")


# --- request validation ------------------------------------------------------------------------------


def _object(value: Any, allowed: set[str], required: set[str], where: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _BadRequest("Expected a JSON object.", where or None)
    for name in value:
        if name not in allowed:
            raise _BadRequest(f"Unknown field {where}{name}.", f"{where}{name}")
    for name in required:
        if name not in value:
            raise _BadRequest(f"Missing {where}{name}.", f"{where}{name}", "parameter_missing")
    return value


def _str(body: dict[str, Any], name: str, *, max_len: int = 255, where: str = "") -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise _BadRequest(f"{where}{name} must be a non-empty string.", f"{where}{name}")
    return value


def _int(body: dict[str, Any], name: str, low: int, high: int, where: str = "") -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _BadRequest(f"{where}{name} must be an integer in [{low}, {high}].", f"{where}{name}")
    return value


def _amount(body: dict[str, Any]) -> int:
    return _int(body, "amount", 1, MAX_AMOUNT)


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if not key:
        raise _BadRequest("Idempotency-Key header is required.", "Idempotency-Key", "parameter_missing")
    if len(key) > 255 or not all(32 <= ord(c) < 127 for c in key):
        raise _BadRequest("Idempotency-Key must be 1-255 printable ASCII characters.", "Idempotency-Key")
    return key


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _BadRequest("The body is not valid JSON.") from None


def _request_hash(path: str, body: dict[str, Any], card_key: bytes) -> bytes:
    """What a replay must match. The card number enters only as its keyed hash and the CVC not at all."""
    canonical = dict(body)
    pm = canonical.get("payment_method")
    if isinstance(pm, dict) and isinstance(pm.get("card"), dict):
        card = {k: v for k, v in pm["card"].items() if k != "cvc"}
        card["number"] = cards.card_hash(str(card.get("number", "")), card_key).hex()
        canonical["payment_method"] = {**pm, "card": card}
    return hashlib.sha256(path.encode() + b"\n" + orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()


# --- actions -----------------------------------------------------------------------------------------


def _authorization_action(body: dict[str, Any], faults: Faults, *, card_key: bytes) -> store.Plan:
    _object(
        body,
        {"reference", "amount", "currency", "capture", "payment_method", "callback_url"},
        {"reference", "amount", "currency", "payment_method"},
    )
    reference = _str(body, "reference")
    amount = _amount(body)
    currency = _str(body, "currency", max_len=3).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise _BadRequest("currency must be an ISO 4217 code.", "currency")
    capture = body.get("capture", False)
    if not isinstance(capture, bool):
        raise _BadRequest("capture must be a boolean.", "capture")
    callback_url = body.get("callback_url")
    if callback_url is not None and (
        not isinstance(callback_url, str) or not callback_url.startswith(("http://", "https://"))
    ):
        raise _BadRequest("callback_url must be an http(s) URL or null.", "callback_url")
    pm = _object(body["payment_method"], {"type", "card", "upi", "authentication"}, {"type"}, "payment_method.")
    if pm["type"] == "authenticated":  # §15: the card its holder authenticated, named by the authentication
        authentication = _str(pm, "authentication", where="payment_method.")

        async def authenticated_action(conn: store.Conn) -> store.Operation:
            return await store.authorize_authenticated(conn, reference=reference, amount=amount, currency=currency,
                                                       authentication=authentication, capture=capture,
                                                       callback_url=callback_url)

        return authenticated_action
    if pm["type"] == "card":
        where = "payment_method.card."
        card = _object(
            pm.get("card"),
            {"number", "exp_month", "exp_year", "cvc"},
            {"number", "exp_month", "exp_year"},  # no cvc: a stored-credential charge of a saved card (§16)
            where,
        )
        number = digits_only(_str(card, "number", max_len=32, where=where))
        if not luhn_valid(number):
            raise _BadRequest("The card number is not valid.", where + "number", "invalid_number")
        exp_month = _int(card, "exp_month", 1, 12, where)
        exp_year = _int(card, "exp_year", 0, 9999, where)
        cvc = _str(card, "cvc", max_len=4, where=where) if "cvc" in card else None
        now = datetime.now(UTC)

        return store.plan_authorize_card(reference=reference, amount=amount, currency=currency, number=number,
                                         exp_month=exp_month, exp_year=exp_year, cvc=cvc, capture=capture, now=now,
                                         card_key=card_key, callback_url=callback_url)
    if pm["type"] == "upi":
        upi = _object(pm.get("upi"), {"vpa"}, {"vpa"}, "payment_method.upi.")
        vpa = _str(upi, "vpa", max_len=320, where="payment_method.upi.")
        if not valid_vpa(vpa):
            raise _BadRequest("The VPA is not valid.", "payment_method.upi.vpa", "invalid_vpa")
        succeed = vpa.lower() != "failure@upi"
        delay_s = faults.upi_delay()

        async def upi_action(conn: store.Conn) -> store.Operation:
            return await store.authorize_upi(
                conn,
                reference=reference,
                amount=amount,
                currency=currency,
                succeed=succeed,
                callback_url=callback_url,
                delay_s=delay_s,
            )

        return upi_action
    raise _BadRequest("payment_method.type must be card, upi or authenticated.", "payment_method.type")


def _http_url(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > 2048 or not value.startswith(("http://", "https://")):
        raise _BadRequest(f"{name} must be an http(s) URL.", name)
    return value


def _authentication_action(body: dict[str, Any], faults: Faults, *, card_key: bytes, base_url: str) -> store.Action:
    """`POST /v1/authentications` (§15): open a challenge for a card, for `reference` and `amount`. The card's
    rules (expiry, CVC, fixed declines) are checked now; the answer carries the challenge page's URL."""
    _object(body, {"reference", "amount", "currency", "payment_method", "callback_url", "return_url"},
            {"reference", "amount", "currency", "payment_method", "return_url"})
    reference, amount = _str(body, "reference"), _amount(body)
    currency = _str(body, "currency", max_len=3).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise _BadRequest("currency must be an ISO 4217 code.", "currency")
    callback_url = _http_url(body, "callback_url", required=False)
    return_url = _http_url(body, "return_url", required=True)
    assert return_url is not None
    pm = _object(body["payment_method"], {"type", "card"}, {"type", "card"}, "payment_method.")
    if pm["type"] != "card":
        raise _BadRequest("Only cards are authenticated.", "payment_method.type")
    where = "payment_method.card."
    card = _object(pm["card"], {"number", "exp_month", "exp_year", "cvc"}, {"number", "exp_month", "exp_year"}, where)
    number = digits_only(_str(card, "number", max_len=32, where=where))
    if not luhn_valid(number):
        raise _BadRequest("The card number is not valid.", where + "number", "invalid_number")
    exp_month, exp_year = _int(card, "exp_month", 1, 12, where), _int(card, "exp_year", 0, 9999, where)
    cvc = _str(card, "cvc", max_len=4, where=where) if "cvc" in card else None
    now = datetime.now(UTC)
    return lambda conn: store.authenticate_card(
        conn, reference=reference, amount=amount, currency=currency, number=number, exp_month=exp_month,
        exp_year=exp_year, cvc=cvc, now=now, card_key=card_key, callback_url=callback_url, return_url=return_url,
        base_url=base_url)


def _verification_action(body: dict[str, Any], faults: Faults) -> store.Action:
    _object(body, {"reference", "payment_method"}, {"reference", "payment_method"})
    reference = _str(body, "reference")
    pm = _object(body["payment_method"], {"type", "card"}, {"type", "card"}, "payment_method.")
    if pm["type"] != "card":
        raise _BadRequest("Only cards can be verified.", "payment_method.type")
    where = "payment_method.card."
    card = _object(pm["card"], {"number", "exp_month", "exp_year", "cvc"}, {"number", "exp_month", "exp_year", "cvc"},
                   where)
    number = digits_only(_str(card, "number", max_len=32, where=where))
    if not luhn_valid(number):
        raise _BadRequest("The card number is not valid.", where + "number", "invalid_number")
    exp_month, exp_year = _int(card, "exp_month", 1, 12, where), _int(card, "exp_year", 0, 9999, where)
    cvc, now = _str(card, "cvc", max_len=4, where=where), datetime.now(UTC)
    return lambda conn: store.verify_card(conn, reference=reference, number=number, exp_month=exp_month,
                                          exp_year=exp_year, cvc=cvc, now=now)


def _capture_action(body: dict[str, Any], faults: Faults) -> store.Plan:
    _object(body, {"reference", "amount"}, {"reference", "amount"})
    reference, amount = _str(body, "reference"), _amount(body)
    return store.plan_capture(reference=reference, amount=amount)


def _void_action(body: dict[str, Any], faults: Faults) -> store.Plan:
    _object(body, {"reference"}, {"reference"})
    reference = _str(body, "reference")
    return store.plan_void(reference=reference)


def _refund_action(body: dict[str, Any], faults: Faults) -> store.Plan:
    _object(body, {"reference", "amount"}, {"reference", "amount"})
    reference, amount = _str(body, "reference"), _amount(body)
    return store.plan_refund(reference=reference, amount=amount)


ActionFactory = Callable[[dict[str, Any], Faults], store.Plan]


# --- the app ---------------------------------------------------------------------------------------


def create_app(
    conninfo: str,
    config: BankConfig,
    *,
    run_migrations: bool = False,
    pool_max_size: int = 20,
) -> FastAPI:
    """The bank service. `run_migrations` applies the bank's migrations at startup (idempotent)."""
    faults = Faults.from_config(config)
    money.TIMING.dispute_delay_s = parse_range_ms(config.dispute_delay_ms)
    money.TIMING.decision_delay_s = parse_range_ms(config.dispute_decision_ms)
    money.TIMING.fee_bps = config.fee_bps
    card_key = cards.card_key(config.webhook_secret)
    pool = store.make_pool(conninfo, config.schema, max_size=pool_max_size,
                           statement_timeout_ms=config.statement_timeout_ms, lock_timeout_ms=config.lock_timeout_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            from paygate import sqlmigrate

            await asyncio.to_thread(sqlmigrate.apply, conninfo, config.schema, MIGRATIONS)
        await pool.open(wait=True)
        worker = CallbackWorker(pool, faults, config.webhook_secret,
                                settlement_interval_s=config.settlement_interval_s)
        worker.start()
        app.state.callback_worker = worker
        heap.freeze_once()  # the app as built lives as long as the process (paygate/heap.py)
        try:
            yield
        finally:
            await worker.stop()
            await pool.close()

    app = FastAPI(title=f"paygate simulated bank {config.name}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.pool = pool
    app.state.faults = faults

    async def mutate(request: Request, type_: str, factory: ActionFactory) -> Response:
        try:
            key = _idempotency_key(request)
            # The body first, then the latency: a slow bank has received the request and acts late even
            # if the caller has given up (a client gone before the body is read would act never).
            body = await _body(request)
            await faults.latency()
            if faults.fail():
                log.info("bank fault: failing %s without acting", request.url.path)
                return _server_error()
            if not isinstance(body, dict):
                raise _BadRequest("Expected a JSON object.")
            action = factory(body, faults)
            currency = body.get("currency")
            arrival = store.Arrival(type_, body["reference"], body.get("amount", 0),
                                    currency.upper() if isinstance(currency, str) else None)
            op, replayed = await store.execute(pool, key, _request_hash(request.url.path, body, card_key), action,
                                               arrival)
        except _BadRequest as exc:
            return _error(400, "invalid_request_error", exc.code, exc.message, exc.param)
        except store.KeyReused:
            return _error(
                422,
                "idempotency_error",
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request.",
            )
        except store.NotApplied:
            return _server_error()
        if not replayed and faults.lose():
            log.info("bank fault: %s applied (%s), answer lost", request.url.path, op.id)
            return _server_error()
        return _json(200, op.to_json(), {"Idempotent-Replayed": "true"} if replayed else None)

    def route(type_: str, factory: ActionFactory) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await mutate(request, type_, factory)

        return handler

    app.add_api_route("/v1/authorizations", route("authorization", partial(_authorization_action, card_key=card_key)),
                      methods=["POST"])
    app.add_api_route("/v1/captures", route("capture", _capture_action), methods=["POST"])

    @app.post("/v1/authentications")
    async def authentications(request: Request) -> Response:
        # the challenge page lives on this bank's own address, as the caller reached it
        base = str(request.base_url)
        return await mutate(request, "authentication",
                            partial(_authentication_action, card_key=card_key, base_url=base))

    challenges.install(app, pool, faults)  # the cardholder's challenge page (§15)
    app.add_api_route("/v1/verifications", route("verification", _verification_action), methods=["POST"])
    app.add_api_route("/v1/voids", route("void", _void_action), methods=["POST"])
    app.add_api_route("/v1/refunds", route("refund", _refund_action), methods=["POST"])

    @app.post("/v1/inquiries")
    async def inquiries(request: Request) -> Response:
        """Never faulted. Nothing under the key: a tombstone makes sure nothing ever will be."""
        try:
            _idempotency_key(request)
            body = _object(await _body(request), {"idempotency_key"}, {"idempotency_key"})
            key = _str(body, "idempotency_key")
        except _BadRequest as exc:
            return _error(400, "invalid_request_error", exc.code, exc.message, exc.param)
        op, found = await store.inquire(pool, key)
        return _json(200, {"object": "bank_inquiry", "found": found, "operation": op.to_json()})

    @app.get("/v1/operations")
    async def operations(reference: str | None = None) -> Response:
        if not reference:
            return _error(400, "invalid_request_error", "parameter_missing", "reference is required.", "reference")
        ops = await store.list_operations(pool, reference)
        return _json(200, {"object": "list", "data": [op.to_json() for op in ops], "has_more": False})

    @app.get("/v1/cards/{number}")
    async def card(number: str) -> Response:
        if not luhn_valid(number):
            return _error(404, "invalid_request_error", "resource_missing", "No such card.")
        return _json(200, {"object": "bank_card", **await store.card_state(pool, digits_only(number), card_key)})

    @app.get("/v1/faults")
    async def get_faults() -> Response:
        return _json(200, faults.view())

    @app.put("/v1/faults")
    async def put_faults(request: Request) -> Response:
        """Any subset of the knobs; a bad value is 400 and changes nothing. Never faulted itself."""
        try:
            faults.update(await _body(request))
        except _BadRequest as exc:
            return _error(400, "invalid_request_error", exc.code, exc.message, exc.param)
        except ValueError as exc:
            return _error(400, "invalid_request_error", "parameter_invalid", str(exc))
        log.info("bank %s faults now %s", config.name, faults.view())
        return _json(200, faults.view())

    routes_money.install(app, pool)  # disputes and settlement batches (§12 v2)

    @app.get("/healthz")
    async def healthz() -> Response:
        try:
            async with pool.connection(timeout=2.0) as conn:
                await conn.execute(b"SELECT 1")
        except Exception:
            return _json(503, {"status": "unavailable"})
        return _json(200, {"status": "ok"})

    return app
