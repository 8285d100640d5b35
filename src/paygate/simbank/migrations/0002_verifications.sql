-- Card verifications (`POST /v1/verifications`): a check that the card could be charged, holding nothing.
-- contract: the CHECK is dropped and re-added wider in one transaction; older code never writes 'verification'
ALTER TABLE operations DROP CONSTRAINT operations_type_check;
ALTER TABLE operations ADD CONSTRAINT operations_type_check
    CHECK (type IN ('authorization', 'capture', 'void', 'refund', 'verification'));
