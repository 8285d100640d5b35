-- The merchant's surfaces (API.md §11 v2): what the dashboard home shows of the API keys, and the
-- legacy signature header a webhook endpoint may ask for.

-- A publishable key is public by design (it is baked into the merchant's pages), so it is kept in clear
-- for the dashboard to show in full; of a secret key only its last 4 characters are kept, never the key.
-- Keys made before this migration have neither: the dashboard says "roll keys to display".
ALTER TABLE api_keys ADD COLUMN display text;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_display_shape CHECK (
    display IS NULL
    OR (kind = 'publishable' AND display LIKE 'pk\_%')
    OR (kind = 'secret' AND length(display) = 4));
COMMENT ON COLUMN api_keys.display IS
    'publishable: the key itself; secret: its last 4 characters only (NULL: made before 0006)';

-- Endpoints that also want X-Webhook-Signature (hex HMAC-SHA256 of the body, keyed with the secret string).
ALTER TABLE webhook_endpoints ADD COLUMN legacy_signature boolean NOT NULL DEFAULT false;
