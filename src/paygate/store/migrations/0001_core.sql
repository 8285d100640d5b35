-- paygate core schema: merchants, keys, orders, payments, refunds, bank intents, idempotency keys,
-- events, ledger, webhook endpoints and deliveries. Amount invariants are CHECK constraints so that no
-- code path, however buggy, can commit an overshoot.

-- Time-sortable ids made inside SQL (same layout as paygate.domain.ids: 10 chars of ms clock, 16 random).
CREATE FUNCTION paygate_id(prefix text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    alphabet text := '0123456789abcdefghjkmnpqrstvwxyz';
    ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
    r bytea := decode(replace(gen_random_uuid()::text, '-', ''), 'hex');
    out text := '';
BEGIN
    FOR i IN REVERSE 9..0 LOOP
        out := out || substr(alphabet, ((ms >> (5 * i)) & 31)::int + 1, 1);
    END LOOP;
    FOR i IN 0..15 LOOP
        out := out || substr(alphabet, (get_byte(r, i) & 31) + 1, 1);
    END LOOP;
    RETURN prefix || '_' || out;
END;
$$;

CREATE TABLE merchants (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_hash    bytea PRIMARY KEY,                 -- sha256 of the key; the key itself is shown once
    merchant_id text NOT NULL REFERENCES merchants (id),
    kind        text NOT NULL CHECK (kind IN ('secret', 'publishable')),
    hint        text NOT NULL,                     -- e.g. sk_test_…a1b2, for display
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

CREATE TABLE orders (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants (id),
    amount      bigint NOT NULL CHECK (amount BETWEEN 1 AND 99999999),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    receipt     text,
    notes       json NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'attempted', 'paid')),
    amount_paid bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX orders_merchant ON orders (merchant_id, id DESC);

CREATE TABLE payments (
    id                       text PRIMARY KEY,
    merchant_id              text NOT NULL REFERENCES merchants (id),
    status                   text NOT NULL CHECK (status IN ('pending', 'authorized', 'capturing', 'voiding',
                               'captured', 'partially_refunded', 'refunded', 'voided', 'failed', 'expired')),
    amount                   bigint NOT NULL CHECK (amount BETWEEN 1 AND 99999999),
    currency                 text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_captured          bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0 AND amount_captured <= amount),
    amount_refunded          bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    amount_refund_reserved   bigint NOT NULL DEFAULT 0 CHECK (amount_refund_reserved >= 0),
    amount_fee               bigint NOT NULL DEFAULT 0 CHECK (amount_fee >= 0),
    capture_method           text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
    method_type              text NOT NULL CHECK (method_type IN ('card', 'upi')),
    payment_method           json NOT NULL,       -- public view only: brand, last4, expiry, fingerprint / vpa
    order_id                 text REFERENCES orders (id),
    customer_id              text,
    description              text,
    metadata                 json NOT NULL DEFAULT '{}',
    failure_code             text,
    failure_message          text,
    authorization_expires_at timestamptz,
    status_history           json NOT NULL,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    CHECK (amount_refunded + amount_refund_reserved <= amount_captured)
);
CREATE INDEX payments_merchant ON payments (merchant_id, id DESC);
CREATE INDEX payments_merchant_status ON payments (merchant_id, status, id DESC);
CREATE INDEX payments_order ON payments (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_customer ON payments (merchant_id, customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX payments_expiring ON payments (authorization_expires_at) WHERE status = 'authorized';

CREATE TABLE refunds (
    id           text PRIMARY KEY,
    merchant_id  text NOT NULL REFERENCES merchants (id),
    payment_id   text NOT NULL REFERENCES payments (id),
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     text NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason       text,
    failure_code text,
    metadata     json NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX refunds_merchant ON refunds (merchant_id, id DESC);
CREATE INDEX refunds_payment ON refunds (payment_id);

-- Write-ahead intents: one row per operation sent to the bank, committed before the call. Its id is
-- the Idempotency-Key the bank sees, on the first call and on every retry or recovery.
CREATE TABLE bank_operations (
    id              text PRIMARY KEY,
    merchant_id     text NOT NULL,
    payment_id      text NOT NULL REFERENCES payments (id),
    refund_id       text REFERENCES refunds (id),
    kind            text NOT NULL CHECK (kind IN ('authorization', 'capture', 'void', 'expiry', 'refund')),
    amount          bigint NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_code    text,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz
);
CREATE INDEX bank_operations_due ON bank_operations (next_attempt_at) WHERE status = 'pending';
CREATE INDEX bank_operations_payment ON bank_operations (payment_id);

CREATE TABLE idempotency_keys (
    merchant_id     text NOT NULL,
    key             text NOT NULL,
    method          text NOT NULL,
    path            text NOT NULL,
    fingerprint     bytea NOT NULL,
    locked_until    timestamptz,          -- set while a request executes the key
    recovery_point  text NOT NULL DEFAULT 'started',
    resource_id     text,
    response_status int,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_abandoned ON idempotency_keys (locked_until)
    WHERE response_status IS NULL AND recovery_point <> 'started';

-- Events: at most one per object and type, written in the transaction of the change itself.
CREATE TABLE events (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL,
    type        text NOT NULL,
    object_id   text NOT NULL,
    data        json NOT NULL,              -- json, not jsonb: keeps the object's key order
    created_at  timestamptz NOT NULL,
    UNIQUE (object_id, type)
);
CREATE INDEX events_merchant ON events (merchant_id, id DESC);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE ledger_journals (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL,
    kind        text NOT NULL,
    currency    text NOT NULL,
    payment_id  text,
    refund_id   text,
    created_at  timestamptz NOT NULL
);

CREATE TABLE ledger_entries (
    id          text PRIMARY KEY,
    journal_id  text NOT NULL REFERENCES ledger_journals (id),
    merchant_id text NOT NULL,
    account     text NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount      bigint NOT NULL CHECK (amount > 0),
    currency    text NOT NULL,
    payment_id  text,
    refund_id   text,
    created_at  timestamptz NOT NULL
);
CREATE INDEX ledger_entries_journal ON ledger_entries (journal_id);
CREATE INDEX ledger_entries_merchant ON ledger_entries (merchant_id, id DESC);
CREATE INDEX ledger_entries_payment ON ledger_entries (payment_id);
CREATE INDEX ledger_entries_balance ON ledger_entries (merchant_id, account, currency);

-- An unbalanced journal cannot commit: checked once per journal at commit time.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced int;
BEGIN
    SELECT count(*) INTO unbalanced FROM (
        SELECT currency
        FROM ledger_entries
        WHERE journal_id = NEW.journal_id
        GROUP BY currency
        HAVING sum(CASE WHEN direction = 'debit' THEN amount ELSE -amount END) <> 0
    ) AS u;
    IF unbalanced > 0 THEN
        RAISE EXCEPTION 'ledger journal % does not balance', NEW.journal_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT OR UPDATE ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- Ledger postings are append-only.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE webhook_endpoints (
    id                 text PRIMARY KEY,
    merchant_id        text NOT NULL REFERENCES merchants (id),
    url                text NOT NULL,
    enabled_events     text[] NOT NULL,
    description        text,
    secret             text NOT NULL,
    previous_secret    text,
    previous_secret_expires_at timestamptz,
    disabled           boolean NOT NULL DEFAULT false,
    failing_since      timestamptz,
    deleted            boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id) WHERE NOT deleted;

CREATE TABLE webhook_deliveries (
    id              text PRIMARY KEY,
    merchant_id     text NOT NULL,
    endpoint_id     text NOT NULL REFERENCES webhook_endpoints (id),
    event_id        text NOT NULL REFERENCES events (id),
    event_type      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        jsonb NOT NULL DEFAULT '[]',
    attempt_count   int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_merchant ON webhook_deliveries (merchant_id, id DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE bank_events (
    id          text PRIMARY KEY,          -- the bank's event id: applied at most once
    reference   text NOT NULL,
    type        text NOT NULL,
    outcome     text NOT NULL,             -- applied | ignored | unknown_reference
    body        jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dashboard_sessions (
    id_hash     bytea PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants (id),
    csrf_token  text NOT NULL,
    expires_at  timestamptz NOT NULL
);
