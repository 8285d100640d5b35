-- Receipts and checkout links by email (API.md §16): an outbox of emails written in the transaction of
-- the change they report, sent by the worker like webhook deliveries (lease, attempts, retry schedule).

-- The address a payment's receipts go to (POST /v1/payments `receipt_email`).
ALTER TABLE payments ADD COLUMN receipt_email text;

CREATE TABLE emails (
    id              text PRIMARY KEY,                 -- em_…; the message's Message-ID is derived from it
    merchant_id     text NOT NULL REFERENCES merchants (id),
    kind            text NOT NULL CHECK (kind IN ('payment_receipt', 'refund_receipt', 'checkout_link')),
    object_id       text NOT NULL,                    -- the payment, refund or order it is about
    recipient       text NOT NULL,
    data            jsonb NOT NULL,                   -- what the message says: public views only, never a card number
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempt_count   int NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    attempts        jsonb NOT NULL DEFAULT '[]',
    next_attempt_at timestamptz,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    sent_at         timestamptz
);

-- One receipt per (object, kind), whichever path settles the payment or refund (request, recovery,
-- callback); checkout links are sent as often as the merchant asks.
CREATE UNIQUE INDEX emails_once ON emails (object_id, kind) WHERE kind <> 'checkout_link';
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';
CREATE INDEX emails_merchant ON emails (merchant_id, id DESC);
