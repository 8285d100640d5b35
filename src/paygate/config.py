"""Configuration from `PAYGATE_*` environment variables; every knob has a safe default for a first run."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BANK_WEBHOOK_SECRET = "whsec_cGF5Z2F0ZS1kZXYtYmFuay1jYWxsYmFjay1zZWNyZXQ="


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYGATE_", extra="ignore")

    database_url: str | None = None
    bank_database_url: str | None = None
    home: str = "./.paygate"
    public_url: str = "http://127.0.0.1:8080"
    bank_url: str = "http://127.0.0.1:8787"
    bank_webhook_secret: str = DEFAULT_BANK_WEBHOOK_SECRET
    # Keyed card fingerprints: the same number always gives the same fingerprint, and the
    # fingerprint cannot be reversed without this key.
    fingerprint_key: str = "paygate-dev-fingerprint-key"
    # Webhook signing secrets are derived from this key and a per-endpoint seed, so the database never
    # holds a usable secret. Set your own in production; changing it changes every endpoint's secret.
    secret_key: str = "paygate-dev-secret-key"
    auth_ttl: int = 604_800
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
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
    log_level: str = "info"
    # Bank simulator knobs (read by `paygate bank`).
    bank_failure_rate: float = 0.0
    bank_lost_rate: float = 0.0
    bank_latency_ms: str = "0-0"
    bank_duplicate_rate: float = 0.0
    bank_upi_delay_ms: str = "1000-3000"
    # Receipts and checkout links by email (docs/emails.md): smtp://host:port or smtps://user:password@host:port;
    # unset, no email is sent (the worker records due emails as skipped).
    smtp_url: str | None = None
    smtp_from: str = "paygate <receipts@localhost>"
    worker_poll_s: float = Field(default=1.0, description="polling fallback when no NOTIFY arrives")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
