-- Several acquirers (API.md §14): each merchant's routing, every authorization attempt at an acquirer,
-- and one circuit breaker per acquirer shared by every API process (docs/decisions/0015).

-- A merchant's routing document (domain/routing.py `to_document`), validated when it was PUT. No row: the
-- default routing (every configured acquirer, in configuration order).
CREATE TABLE merchant_routing (
    merchant_id  text PRIMARY KEY REFERENCES merchants (id),
    document     jsonb NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- One row per authorization attempt at an acquirer, written by the authorize flow in the transaction that
-- records the attempt's outcome (store/acquirer_health.py `record_attempt`).
CREATE TABLE acquirer_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id    text NOT NULL,
    merchant_id   text NOT NULL,
    acquirer      text NOT NULL,
    result        text NOT NULL CHECK (result IN ('succeeded', 'declined', 'unavailable', 'unknown')),
    failure_code  text,
    at            timestamptz NOT NULL
);
-- "the last 100 attempts at this acquirer" (approval_rate) reads this index backwards, 100 entries at most
CREATE INDEX acquirer_attempts_recent ON acquirer_attempts (acquirer, at DESC, id DESC);
-- a payment's attempts, oldest first (its acquirer_attempts)
CREATE INDEX acquirer_attempts_payment ON acquirer_attempts (payment_id, id);

-- The breaker (domain/health.py). No row: up, no failure. Named by the configured name, so a renamed
-- acquirer starts healthy.
CREATE TABLE acquirer_health (
    acquirer              text PRIMARY KEY,
    status                text NOT NULL DEFAULT 'up' CHECK (status IN ('up', 'down')),
    consecutive_failures  integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    down_until            timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
