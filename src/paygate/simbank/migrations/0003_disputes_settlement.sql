-- Disputes and settlement batches (API.md §17, §18, §12 v2).

-- Where each reference's callbacks go (cards too, since disputes and settlements reach paygate by callback),
-- and whether its card is the auto-disputed test card 4000000000000259.
ALTER TABLE authorizations ADD COLUMN callback_url text;
ALTER TABLE authorizations ADD COLUMN dispute_on_capture boolean NOT NULL DEFAULT false;

-- Money movements the bank owes or claws back, waiting for a settlement batch: one row per capture, refund,
-- dispute (negative) and dispute reversal (positive). settlement_id is set when a batch takes the row.
CREATE TABLE movements (
    id             text PRIMARY KEY,
    reference      text NOT NULL,
    type           text NOT NULL CHECK (type IN ('capture', 'refund', 'dispute', 'dispute_reversal')),
    amount         bigint NOT NULL,
    currency       text NOT NULL,
    settlement_id  text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX movements_unsettled_idx ON movements (currency, created_at) WHERE settlement_id IS NULL;

-- status: scheduled (the test card's, opened at open_at) | needs_response | under_review | won | lost.
-- decide_at: when submitted evidence is decided (evidence_wins says how).
CREATE TABLE disputes (
    id             text PRIMARY KEY,
    reference      text NOT NULL,
    amount         bigint NOT NULL CHECK (amount > 0),
    currency       text NOT NULL,
    reason         text NOT NULL,
    status         text NOT NULL CHECK (status IN ('scheduled', 'needs_response', 'under_review', 'won', 'lost')),
    open_at        timestamptz,
    decide_at      timestamptz,
    evidence_wins  boolean,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX disputes_reference_idx ON disputes (reference);
CREATE INDEX disputes_due_idx ON disputes (open_at) WHERE status = 'scheduled';
CREATE INDEX disputes_decide_idx ON disputes (decide_at) WHERE status = 'under_review';

CREATE TABLE settlement_batches (
    id          text PRIMARY KEY,
    currency    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE settlement_lines (
    settlement_id  text NOT NULL REFERENCES settlement_batches (id),
    seq            integer NOT NULL,
    reference      text NOT NULL,
    type           text NOT NULL,
    amount         bigint NOT NULL,
    fee            bigint NOT NULL,
    net            bigint NOT NULL,
    PRIMARY KEY (settlement_id, seq)
);
