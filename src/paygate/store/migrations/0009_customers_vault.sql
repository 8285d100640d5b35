-- Customers and their saved payment methods (API.md §16), and the card vault (docs/decisions/0016).

-- A deleted customer keeps its row (payments may name it) but not its personal data: email, name,
-- description and metadata are cleared when `deleted_at` is set, and it is then as unknown as a foreign id.
CREATE TABLE customers (
    id           text PRIMARY KEY,
    merchant_id  text NOT NULL REFERENCES merchants (id),
    email        text,
    name         text,
    description  text,
    metadata     json NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    deleted_at   timestamptz
);
CREATE INDEX customers_merchant ON customers (merchant_id, id DESC) WHERE deleted_at IS NULL;
-- GET /v1/customers?email= is exact but case-insensitive
CREATE INDEX customers_email ON customers (merchant_id, lower(email), id DESC) WHERE deleted_at IS NULL;

-- A saved card. The number is only in the vault columns, AES-GCM sealed (src/paygate/vault): the key id
-- names the PAYGATE_VAULT_KEY entry that sealed it (never the key), the nonce is fresh per seal, and the
-- associated data binds the ciphertext to (merchant_id, id). Detaching erases all three, in the same
-- transaction, and the method can never be charged again.
CREATE TABLE payment_methods (
    id                text PRIMARY KEY,
    merchant_id       text NOT NULL REFERENCES merchants (id),
    customer_id       text REFERENCES customers (id),
    type              text NOT NULL DEFAULT 'card' CHECK (type = 'card'),
    brand             text NOT NULL,
    last4             text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month         integer NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year          integer NOT NULL,
    fingerprint       text NOT NULL,
    created_at        timestamptz NOT NULL,
    detached_at       timestamptz,
    vault_key_id      text,
    vault_nonce       bytea CHECK (octet_length(vault_nonce) = 12),
    vault_ciphertext  bytea,
    CHECK ((vault_key_id IS NULL) = (vault_nonce IS NULL) AND (vault_nonce IS NULL) = (vault_ciphertext IS NULL)),
    -- attached ⇔ charged with a sealed number; detached ⇔ no customer and nothing sealed
    CHECK ((detached_at IS NULL) = (customer_id IS NOT NULL)),
    CHECK (detached_at IS NULL OR vault_ciphertext IS NULL)
);
CREATE INDEX payment_methods_customer ON payment_methods (customer_id, id DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX payment_methods_merchant ON payment_methods (merchant_id, id DESC);
