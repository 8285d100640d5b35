-- Refund resume and the key completer look bank operations up by refund.
CREATE INDEX bank_operations_refund ON bank_operations (refund_id) WHERE refund_id IS NOT NULL;
