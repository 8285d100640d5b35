-- Failover (API.md §14, docs/decisions/0017): what a payment shows of where it went.
-- `acquirer_attempts` is the payment's copy of its rows in acquirer_attempts (oldest first), written in the
-- same transaction as each of them, so every view of a payment (API, lists, webhooks, dashboard) is built
-- from the payment row alone. `acquirer_references`: the bank's own ids of the operations that succeeded at
-- the payment's acquirer, as its inspection API lists them.
ALTER TABLE payments ADD COLUMN acquirer_attempts jsonb NOT NULL DEFAULT '[]';
ALTER TABLE payments ADD COLUMN acquirer_references jsonb NOT NULL
    DEFAULT '{"authorization": null, "capture": null, "void": null}';
ALTER TABLE refunds ADD COLUMN acquirer_reference text;
-- the resume path reads a payment's latest authorization attempt; ids within one millisecond do not sort
CREATE INDEX bank_operations_payment_kind ON bank_operations (payment_id, kind, created_at);
