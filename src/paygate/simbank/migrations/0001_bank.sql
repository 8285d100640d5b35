-- The simulated bank keeps its own state, apart from the gateway's. Applied with search_path set to the
-- bank's own schema (`bank`, or `bank_<name>` for `paygate bank --name NAME`), so names are unqualified.

-- Card accounts, keyed by SHA-256 of the number (never the number, never the CVC).
-- available = balance - held; capture moves money out of balance, refund puts it back.
CREATE TABLE accounts (
    card_hash   bytea PRIMARY KEY,
    balance     bigint NOT NULL,
    held        bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    captured    bigint NOT NULL DEFAULT 0,
    refunded    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (held <= balance)
);

-- Every operation the bank received (and tombstones written by inquiries, never listed).
CREATE TABLE operations (
    id            text PRIMARY KEY,
    reference     text,
    type          text CHECK (type IN ('authorization', 'capture', 'void', 'refund')),
    status        text NOT NULL CHECK (status IN ('succeeded', 'failed', 'pending')),
    amount        bigint NOT NULL,
    currency      text,
    captured      boolean NOT NULL DEFAULT false,
    failure_code  text,
    tombstone     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (tombstone OR (reference IS NOT NULL AND type IS NOT NULL))
);
CREATE INDEX operations_reference_idx ON operations (reference, created_at, id);

-- One row per idempotency key, inserted first in the transaction that acts: a concurrent duplicate
-- blocks on the primary key until the first commits, then replays. request_hash is NULL for a
-- tombstone (an inquiry found nothing): whatever arrives later with that key gets the tombstone.
CREATE TABLE idempotency_keys (
    key           text PRIMARY KEY,
    request_hash  bytea,
    operation_id  text REFERENCES operations (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The live state of each reference's successful (or pending) authorization.
-- state: pending (UPI, not settled) | active (held) | captured | voided | failed (UPI declined)
CREATE TABLE authorizations (
    reference         text PRIMARY KEY,
    operation_id      text NOT NULL REFERENCES operations (id),
    card_hash         bytea REFERENCES accounts (card_hash),
    amount            bigint NOT NULL,
    currency          text NOT NULL,
    state             text NOT NULL CHECK (state IN ('pending', 'active', 'captured', 'voided', 'failed')),
    captured_amount   bigint NOT NULL DEFAULT 0,
    refunded_amount   bigint NOT NULL DEFAULT 0,
    CHECK (refunded_amount <= captured_amount AND captured_amount <= amount)
);

-- UPI settlements due later: durable, so a bank restart does not lose them.
CREATE TABLE settlements (
    operation_id  text PRIMARY KEY REFERENCES operations (id),
    succeed       boolean NOT NULL,
    callback_url  text,
    settle_at     timestamptz NOT NULL
);
CREATE INDEX settlements_due_idx ON settlements (settle_at);

-- Outbox of signed callbacks, written in the settlement's transaction. A duplicate (fault injection)
-- is a second row with the same event_id and body.
CREATE TABLE callbacks (
    id            bigserial PRIMARY KEY,
    event_id      text NOT NULL,
    url           text NOT NULL,
    body          bytea NOT NULL,
    due_at        timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callbacks_due_idx ON callbacks (due_at) WHERE delivered_at IS NULL;
