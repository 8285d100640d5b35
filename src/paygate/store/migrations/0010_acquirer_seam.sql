-- Several acquirers (API.md §14): every payment, and every bank operation, remembers which acquirer it
-- went to, so that capture, void, refunds, expiry, recovery and callbacks go to / are matched with it.
-- Before this migration there was one acquirer, `bank`: existing rows went there.

ALTER TABLE payments ADD COLUMN acquirer text;
-- NOT NULL with a default, so that code of the previous release (one acquirer) still inserts (expand only)
ALTER TABLE bank_operations ADD COLUMN acquirer text NOT NULL DEFAULT 'bank';
-- the bank's own id of the operation (its inspection API's `id`), once it answered: §14 acquirer_references
ALTER TABLE bank_operations ADD COLUMN acquirer_reference text;

UPDATE payments p SET acquirer = 'bank'
 WHERE EXISTS (SELECT 1 FROM bank_operations o WHERE o.payment_id = p.id AND o.kind = 'authorization');
