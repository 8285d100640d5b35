-- Customer authentication (API.md §15, §12 v2): `POST /v1/authentications` opens a challenge, answered once on
-- the bank's challenge page. What the later authorization needs of the card is kept here as the bank keeps it
-- everywhere: its keyed hash, never the number, never the CVC (the CVC was checked when the challenge opened).
-- contract: the CHECK is dropped and re-added wider in one transaction; older code never writes 'authentication'
ALTER TABLE operations DROP CONSTRAINT operations_type_check;
ALTER TABLE operations ADD CONSTRAINT operations_type_check
    CHECK (type IN ('authentication', 'authorization', 'capture', 'void', 'refund', 'verification'));

CREATE TABLE authentications (
    operation_id  text PRIMARY KEY REFERENCES operations (id),
    reference     text NOT NULL,
    card_hash     bytea NOT NULL,
    amount        bigint NOT NULL,
    currency      text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    challenge_url text NOT NULL,
    return_url    text NOT NULL,     -- where the browser goes once the challenge is answered (paygate's)
    callback_url  text,              -- where the signed result goes
    answered_at   timestamptz,
    used          boolean NOT NULL DEFAULT false,  -- an authorization was made with it (at most one)
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX authentications_reference_idx ON authentications (reference);
