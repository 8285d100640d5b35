-- Disputes, settlement batches and reconciliation (API.md §17, §18).

-- What open and lost disputes hold back from refunds (§17); it drops back when a dispute is won.
ALTER TABLE payments ADD COLUMN amount_disputed bigint NOT NULL DEFAULT 0 CHECK (amount_disputed >= 0);

CREATE TABLE disputes (
    id                     text PRIMARY KEY,
    merchant_id            text NOT NULL REFERENCES merchants (id),
    payment_id             text NOT NULL REFERENCES payments (id),
    acquirer               text NOT NULL,
    bank_dispute_id        text NOT NULL,
    amount                 bigint NOT NULL CHECK (amount > 0),
    currency               text NOT NULL,
    reason                 text NOT NULL CHECK (reason IN ('fraudulent', 'product_not_received', 'duplicate', 'general')),
    status                 text NOT NULL CHECK (status IN ('needs_response', 'under_review', 'won', 'lost')),
    evidence_text          text,
    evidence_submitted_at  timestamptz,
    evidence_due_by        timestamptz NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    UNIQUE (acquirer, bank_dispute_id)
);
CREATE INDEX disputes_merchant ON disputes (merchant_id, id DESC);
CREATE INDEX disputes_payment ON disputes (payment_id);

-- A bank's batch as paygate saw it: announced (callback or poll), then processed once by the worker.
CREATE TABLE settlements (
    id                  text PRIMARY KEY,
    acquirer            text NOT NULL,
    bank_settlement_id  text NOT NULL,
    currency            text NOT NULL,
    status              text NOT NULL CHECK (status IN ('announced', 'processed')),
    created_at          timestamptz NOT NULL,
    processed_at        timestamptz,
    UNIQUE (acquirer, bank_settlement_id)
);
CREATE INDEX settlements_announced ON settlements (created_at) WHERE status = 'announced';

-- Each line of a processed batch: matched to a journal of ours, or an exception. merchant_id is NULL for a
-- reference paygate never charged.
CREATE TABLE settlement_lines (
    settlement_id  text NOT NULL REFERENCES settlements (id),
    seq            integer NOT NULL,
    reference      text NOT NULL,
    type           text NOT NULL,
    amount         bigint NOT NULL,
    fee            bigint NOT NULL,
    net            bigint NOT NULL,
    merchant_id    text,
    payment_id     text,
    journal_id     text,           -- the journal of ours the line settles (also set for an amount_mismatch)
    matched        boolean NOT NULL,
    PRIMARY KEY (settlement_id, seq)
);
CREATE INDEX settlement_lines_merchant ON settlement_lines (merchant_id, settlement_id);
-- A journal is settled by at most one line, ever.
CREATE UNIQUE INDEX settlement_lines_journal ON settlement_lines (journal_id) WHERE journal_id IS NOT NULL;

-- status: open | closed (the line arrived later) | resolved (an operator, with a note). dedupe makes each
-- exception recorded once however often the worker looks.
CREATE TABLE reconciliation_exceptions (
    id             text PRIMARY KEY,
    type           text NOT NULL CHECK (type IN ('unknown_reference', 'amount_mismatch', 'missing_from_settlement')),
    dedupe         text NOT NULL UNIQUE,
    acquirer       text NOT NULL,
    reference      text NOT NULL,
    merchant_id    text,
    settlement_id  text REFERENCES settlements (id),
    journal_id     text,
    expected       bigint,
    actual         bigint,
    status         text NOT NULL CHECK (status IN ('open', 'closed', 'resolved')),
    note           text,
    created_at     timestamptz NOT NULL,
    closed_at      timestamptz
);
CREATE INDEX reconciliation_exceptions_open ON reconciliation_exceptions (created_at) WHERE status = 'open';

-- Journals that move money through the acquirer and await its settlement (capture, refund, dispute,
-- dispute_reversal): found quickly by payment, and by age for missing_from_settlement.
CREATE INDEX ledger_journals_payment_kind ON ledger_journals (payment_id, kind);
CREATE INDEX ledger_journals_settleable ON ledger_journals (created_at)
    WHERE kind IN ('capture', 'refund', 'dispute', 'dispute_reversal');
