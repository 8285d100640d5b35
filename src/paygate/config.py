"""Configuration from `PAYGATE_*` environment variables; every knob has a safe default for a first run.

The four secrets have development defaults so that a checkout runs and tests build `Settings()` in
process; those values are public, so a production process refuses them (`production_refusal`, called
by `paygate api`, `worker` and `bank` before they start; docs/decisions/0009).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paygate.domain import key_strength
from paygate.domain.acquirers import parse_acquirers

DEFAULT_BANK_WEBHOOK_SECRET = "whsec_cGF5Z2F0ZS1kZXYtYmFuay1jYWxsYmFjay1zZWNyZXQ="
DEFAULT_FINGERPRINT_KEY = "paygate-dev-fingerprint-key"
DEFAULT_SECRET_KEY = "paygate-dev-secret-key"
DEFAULT_VAULT_KEY = "paygate-dev-vault-key"
# every secret value in the source: none of them is a secret, whichever variable it is put in
SHIPPED_SECRETS = frozenset({DEFAULT_BANK_WEBHOOK_SECRET, DEFAULT_FINGERPRINT_KEY, DEFAULT_SECRET_KEY,
                             DEFAULT_VAULT_KEY})
# what `paygate api` and `paygate worker` need (one configuration for both), and what `paygate bank` needs
GATEWAY_SECRETS = ("secret_key", "fingerprint_key", "bank_webhook_secret", "vault_key")
BANK_SECRETS = ("bank_webhook_secret",)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYGATE_", extra="ignore")

    # production: the secrets must be set and strong (else the process does not start);
    # development: the shipped defaults are allowed, with a warning. `paygate serve` runs in development.
    env: Literal["production", "development"] = "production"
    database_url: str | None = None
    bank_database_url: str | None = None
    home: str = "./.paygate"
    public_url: str = "http://127.0.0.1:8080"
    bank_url: str = "http://127.0.0.1:8787"
    # `name=url,…` (API.md §14); unset: one acquirer, `bank`, at bank_url. Read through `acquirer_urls`.
    acquirers: str | None = None
    # Each acquirer's circuit breaker (API.md §14): down after this many consecutive unavailable attempts,
    # for this long; then one request probes it. Shared by every API process through PostgreSQL.
    acquirer_trip_after: int = Field(default=5, ge=1)
    acquirer_cooldown_s: float = Field(default=30.0, gt=0)
    bank_webhook_secret: str = DEFAULT_BANK_WEBHOOK_SECRET
    # Keyed card fingerprints: the same number always gives the same fingerprint, and the
    # fingerprint cannot be reversed without this key.
    fingerprint_key: str = DEFAULT_FINGERPRINT_KEY
    # Webhook signing secrets are derived from this key and a per-endpoint seed, so the database never
    # holds a usable secret. Set your own in production; changing it changes every endpoint's secret.
    secret_key: str = DEFAULT_SECRET_KEY
    # Keys of the card vault (a later issue): comma-separated, the current key first, then older keys
    # still needed to read what they encrypted. Each one is checked like the secrets above.
    vault_key: str = DEFAULT_VAULT_KEY
    auth_ttl: int = 604_800
    # a customer authentication (§15) not completed within this many seconds fails the payment
    authentication_ttl: int = 900
    # Dashboard logins: after this many failures within the window (per email, and per client address),
    # every attempt is 429 until the oldest leaves the window; 0 disables (API.md §19).
    login_max_failures: int = 5
    login_window_s: int = 900
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    # Webhooks to loopback, private, link-local or reserved addresses (API.md §19); unset follows the
    # environment: allowed in development, refused in production. See `webhook_private_allowed`.
    webhook_allow_private: bool | None = None
    fee_bps: int = 0
    fee_fixed: int = 0
    # Bank connector: per-attempt timeout and bounded in-request retries.
    bank_timeout_s: float = 3.0
    bank_attempts: int = 3
    # How long an idempotency key stays locked by a running request before another request may
    # resume it. Longer than the slowest possible request (bank attempts x timeout + backoff).
    idempotency_lock_s: float = 30.0
    idempotency_retention_h: int = 24
    # Requests per second per merchant and API process (token bucket, burst = 2 s worth); 0 disables.
    rate_limit_per_s: float = 3000.0
    # The public surfaces (publishable keys, the hosted checkout) and failed authentications: requests per
    # minute per client address and API process (a minute's worth at once, then the steady rate); 0 disables.
    public_rate_limit_per_min: float = 60.0
    # Failed payments an order accepts; then its payments are 429 too_many_attempts (card testing).
    order_max_failed_payments: int = 10
    # Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For is believed. Empty:
    # the client address is the socket peer.
    trusted_proxies: str = ""
    db_pool_min: int = 2
    db_pool_max: int = 16
    # Every pooled database session: the longest a statement may run, and wait for a lock (ms; 0 = no limit).
    db_statement_timeout_ms: int = 5000
    db_lock_timeout_ms: int = 2000
    log_level: str = "info"
    # Bank simulator knobs (read by `paygate bank`).
    bank_failure_rate: float = 0.0
    bank_lost_rate: float = 0.0
    bank_latency_ms: str = "0-0"
    bank_duplicate_rate: float = 0.0
    bank_upi_delay_ms: str = "1000-3000"
    bank_callback_delay_ms: str = "0-0"  # authentication callbacks first due after this (§15; a test knob)
    bank_dispute_delay_ms: str = "1000-3000"
    bank_dispute_decision_ms: str = "1000-3000"
    bank_fee_bps: int = Field(default=0, ge=0, le=10_000)
    bank_settlement_interval_s: float = Field(default=0.0, ge=0)
    # Disputes and settlement (API.md §17, §18).
    dispute_fee: int = Field(default=0, ge=0, description="minor units debited per dispute opened")
    settlement_grace_s: float = Field(default=172800.0, ge=0,
                                      description="an operation in no batch after this is missing_from_settlement")
    settlement_match_wait_s: float = Field(default=60.0, ge=0, description="a batch whose lines find no "
                                           "journal yet waits this long for our side to catch up")
    settlement_poll_s: float = Field(default=60.0, gt=0, description="how often the worker lists the banks' batches")
    # Receipts and checkout links by email (docs/emails.md): smtp://host:port or smtps://user:password@host:port;
    # unset, no email is sent (the worker records due emails as skipped).
    smtp_url: str | None = None
    smtp_from: str = "paygate <receipts@localhost>"
    # The worker's Prometheus metrics (queue depth, delivery lag, recovery backlog, acquirer health) on
    # http://<host>:<port>/metrics; 0 turns them off. Several workers on one host need a port each.
    worker_metrics_port: int = 9464
    worker_metrics_host: str = "127.0.0.1"
    worker_poll_s: float = Field(default=1.0, description="polling fallback when no NOTIFY arrives")

    @property
    def acquirer_urls(self) -> dict[str, str]:
        """The configured acquirers, name → URL, in configuration order (domain/acquirers.py)."""
        return parse_acquirers(self.acquirers, self.bank_url)

    @property
    def webhook_private_allowed(self) -> bool:
        """PAYGATE_WEBHOOK_ALLOW_PRIVATE if set, else whether this is a development environment."""
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return self.env == "development"


def env_name(field: str) -> str:
    return f"PAYGATE_{field.upper()}"


def secret_problems(settings: Settings, fields: Iterable[str]) -> list[str]:
    """One line per named secret that is not fit for production ("PAYGATE_X is not set", …).

    Pure: it reads only `settings` — which fields were given (a default is "not set") and their values.
    """
    problems: list[str] = []
    for field in fields:
        given = field in settings.model_fields_set
        value: str = getattr(settings, field)
        whsec = field == "bank_webhook_secret"  # it is used as a Standard Webhooks secret
        if not given or not value:
            problems.append(f"{env_name(field)} is not set")
            continue
        parts = key_strength.keys(value) if field == "vault_key" else [value]
        for i, part in enumerate(parts, 1):
            why = key_strength.weakness(part, SHIPPED_SECRETS, standard_webhooks=whsec)
            if why is not None:
                which = f" (key {i} of {len(parts)})" if len(parts) > 1 else ""
                problems.append(f"{env_name(field)}{which} {why}")
    return problems


def production_refusal(settings: Settings, fields: Iterable[str]) -> str | None:
    """The one line a production process prints before exiting with code 2, or None when it may start."""
    if settings.env == "development":
        return None
    problems = secret_problems(settings, fields)
    if not problems:
        return None
    first = problems[0]
    how = ("whsec_$(openssl rand -base64 32)" if first.startswith(env_name("bank_webhook_secret"))
           else "$(openssl rand -hex 32)")
    return f"paygate: refusing to start in production: {first}; set a random value ({how}) or PAYGATE_ENV=development"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
