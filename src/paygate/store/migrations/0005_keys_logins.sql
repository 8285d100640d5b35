-- Merchant credentials (API.md §19): case-insensitive unique emails, rolled API keys with a grace
-- period, and the failed dashboard logins that throttling counts across every API process.

-- Emails: logins look merchants up by lower(email), so uniqueness must hold on lower(email) too, or two
-- merchants could share one login. Refuse to migrate (naming the clash) rather than pick one silently.
DO $$
DECLARE
    clash text;
BEGIN
    SELECT string_agg(e, ', ') INTO clash
    FROM (SELECT lower(email) AS e FROM merchants GROUP BY 1 HAVING count(*) > 1) d;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'merchants share an email up to case (%); give each its own before migrating', clash;
    END IF;
END;
$$;
ALTER TABLE merchants DROP CONSTRAINT merchants_email_key;
CREATE UNIQUE INDEX merchants_email_lower ON merchants (lower(email));

-- A key authenticates while revoked_at is NULL or still in the future: rolling a merchant's keys sets
-- the old ones' revoked_at to now() + the grace period (now() itself for "at once").
COMMENT ON COLUMN api_keys.revoked_at IS 'the key stops authenticating at this time (NULL: never)';

-- One row per failed dashboard login, kept for the throttling window. Email and client address are
-- stored as SHA-256 (the counts need equality only, and a dump should not list who tried what from where).
CREATE TABLE login_failures (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_hash   bytea NOT NULL,
    client_hash  bytea NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email ON login_failures (email_hash, failed_at DESC);
CREATE INDEX login_failures_client ON login_failures (client_hash, failed_at DESC);
CREATE INDEX login_failures_age ON login_failures (failed_at);
