-- Customer authentication (API.md §15, docs/authentication.md, decision 0018).
-- contract: the CHECKs are dropped and re-added wider in one transaction; older code never writes the new values
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('requires_action', 'pending', 'authorized',
    'capturing', 'voiding', 'captured', 'partially_refunded', 'refunded', 'voided', 'failed', 'expired'));
ALTER TABLE bank_operations DROP CONSTRAINT bank_operations_kind_check;
ALTER TABLE bank_operations ADD CONSTRAINT bank_operations_kind_check
    CHECK (kind IN ('authentication', 'authorization', 'capture', 'void', 'expiry', 'refund'));

-- where the customer's browser goes after the challenge (only ever redirected to, API.md §19)
ALTER TABLE payments ADD COLUMN return_url text;
-- the bank's challenge page, once the bank answered the authentication (next_action.redirect_to_url.url)
ALTER TABLE payments ADD COLUMN challenge_url text;
ALTER TABLE orders ADD COLUMN return_url text;
-- an authorization made with a cardholder's authentication: the bank's id of that authentication. Such an
-- authorization carries no card (paygate keeps none), so recovery may send it again with the same key.
ALTER TABLE bank_operations ADD COLUMN authentication_ref text;
-- the worker's timeout scan (PAYGATE_AUTHENTICATION_TTL)
CREATE INDEX payments_requires_action ON payments (created_at) WHERE status = 'requires_action';

-- A card to save once its payment's challenge passes (§16 "save it while paying, through the challenge"). The
-- create request is the only one that ever sees the number, and the authorization comes later, in another
-- request (or the worker): so the number waits here, sealed by the vault for the saved method's id it will get
-- (`pm_id`), and is moved into payment_methods by the transaction that records the authorization — or erased
-- (the row deleted) by the one that ends the payment otherwise.
CREATE TABLE pending_card_saves (
    payment_id        text PRIMARY KEY REFERENCES payments (id),
    merchant_id       text NOT NULL REFERENCES merchants (id),
    customer_id       text NOT NULL REFERENCES customers (id),
    pm_id             text NOT NULL,
    brand             text NOT NULL,
    last4             text NOT NULL,
    exp_month         integer NOT NULL,
    exp_year          integer NOT NULL,
    fingerprint       text NOT NULL,
    vault_key_id      text NOT NULL,
    vault_nonce       bytea NOT NULL,
    vault_ciphertext  bytea NOT NULL,
    created_at        timestamptz NOT NULL
);
