-- Bank callbacks (POST /v1/bank/events): the primary key of bank_events makes each bank event id apply at
-- most once. These columns keep what an operator needs to reconcile: how often the bank re-sent an event
-- it had already delivered, when we last heard it, and why an event was not applied.
ALTER TABLE bank_events
    ADD COLUMN duplicates       int NOT NULL DEFAULT 0 CHECK (duplicates >= 0),
    ADD COLUMN last_received_at timestamptz,
    ADD COLUMN detail           text;

-- outcome: applied | redundant | ignored | unknown_reference ('received' only inside the receiving transaction)
CREATE INDEX bank_events_reference ON bank_events (reference);
