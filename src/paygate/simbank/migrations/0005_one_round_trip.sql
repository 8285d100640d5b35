-- The hot operations' whole transactions, one function each (docs/decisions/0021): the card authorization
-- (with or without automatic capture), the capture, the void and the refund. Each is called by one statement
-- on an autocommit connection, so it runs in that statement's own transaction: one round trip, one commit.
--
-- They do only the reads and writes that simbank/store.py did in the transaction, in the same order and under
-- the same locks (the key's row, the reference's advisory lock, the authorization's row, then the account's).
-- Every decision Python makes (the card table, expiry, CVC, challenge cards, the dispute test card, ids,
-- delays) arrives as a parameter. A key that is already taken is answered `exists` and nothing is written:
-- Python then replays it on its usual path (the replay, the key-reuse conflict, the late-original fence of
-- decision 0003). Tables are unqualified: they resolve through the caller's search_path, the bank's schema.

CREATE TYPE bank_answer AS (
    outcome       text,        -- 'applied' | 'exists' (the key was taken: nothing written, replay in Python)
    id            text,
    reference     text,
    type          text,
    status        text,
    amount        bigint,
    currency      text,
    captured      boolean,
    failure_code  text,
    tombstone     boolean,
    created_at    timestamptz,
    capture_id    text         -- an authorization with automatic capture: its capture's operation
);

-- store._claim_key: a primary-key insert; a concurrent duplicate blocks on it until the owner commits.
CREATE FUNCTION bank_claim_key(p_key text, p_request_hash bytea) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO idempotency_keys (key, request_hash) VALUES (p_key, p_request_hash) ON CONFLICT (key) DO NOTHING;
    RETURN FOUND;
END
$$;

-- One operation row inserted, the key bound to it, and the answer (`_insert_op` then `_bind_key`).
CREATE FUNCTION bank_answer_op(p_key text, p_id text, p_reference text, p_type text, p_status text,
                               p_amount bigint, p_currency text, p_failure_code text)
RETURNS bank_answer
LANGUAGE plpgsql AS $$
DECLARE
    answer bank_answer;
BEGIN
    INSERT INTO operations (id, reference, type, status, amount, currency, captured, failure_code, tombstone)
        VALUES (p_id, p_reference, p_type, p_status, p_amount, p_currency, false, p_failure_code, false)
        RETURNING 'applied', id, reference, type, status, amount, currency, captured, failure_code, tombstone,
                  created_at, NULL
        INTO answer;
    UPDATE idempotency_keys SET operation_id = p_id WHERE key = p_key;
    RETURN answer;
END
$$;

-- store.authorize_card / store._hold, after the card table spoke (p_failure: its decline, or NULL).
CREATE FUNCTION bank_authorize_card(
    p_key text, p_request_hash bytea, p_reference text, p_amount bigint, p_currency text, p_card_hash bytea,
    p_balance bigint, p_failure text, p_capture boolean, p_callback_url text, p_disputed boolean,
    p_dispute_delay_s double precision, p_op_id text, p_capture_op_id text, p_movement_id text, p_dispute_id text
) RETURNS bank_answer
LANGUAGE plpgsql AS $$
DECLARE
    failure text := p_failure;
    acct record;
BEGIN
    IF NOT bank_claim_key(p_key, p_request_hash) THEN
        RETURN ROW('exists', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::bank_answer;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('bank.ref:' || p_reference, 0));
    PERFORM 1 FROM authorizations WHERE reference = p_reference FOR UPDATE;
    IF FOUND THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'authorization', 'failed', p_amount, p_currency,
                              'duplicate_reference');
    END IF;
    IF failure IS NULL THEN
        -- store._lock_account: the DO UPDATE (of nothing) locks the row and returns its latest committed version
        INSERT INTO accounts (card_hash, balance) VALUES (p_card_hash, p_balance)
            ON CONFLICT (card_hash) DO UPDATE SET balance = accounts.balance
            RETURNING balance, held INTO acct;
        IF acct.balance - acct.held < p_amount THEN
            failure := 'insufficient_funds';
        END IF;
    END IF;
    IF failure IS NOT NULL THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'authorization', 'failed', p_amount, p_currency,
                              failure);
    END IF;
    IF p_capture THEN  -- hold then capture at once: two operations
        INSERT INTO operations (id, reference, type, status, amount, currency, captured)
            VALUES (p_op_id, p_reference, 'authorization', 'succeeded', p_amount, p_currency, true),
                   (p_capture_op_id, p_reference, 'capture', 'succeeded', p_amount, p_currency, false);
        UPDATE accounts SET balance = balance - p_amount, captured = captured + p_amount
            WHERE card_hash = p_card_hash;
        INSERT INTO authorizations (reference, operation_id, card_hash, amount, currency, state, captured_amount,
                                    callback_url, dispute_on_capture)
            VALUES (p_reference, p_op_id, p_card_hash, p_amount, p_currency, 'captured', p_amount, p_callback_url,
                    p_disputed);
        PERFORM bank_after_capture(p_reference, p_amount, p_currency, p_disputed, p_dispute_delay_s, p_movement_id,
                                   p_dispute_id);
    ELSE
        INSERT INTO operations (id, reference, type, status, amount, currency)
            VALUES (p_op_id, p_reference, 'authorization', 'succeeded', p_amount, p_currency);
        UPDATE accounts SET held = held + p_amount WHERE card_hash = p_card_hash;
        INSERT INTO authorizations (reference, operation_id, card_hash, amount, currency, state, captured_amount,
                                    callback_url, dispute_on_capture)
            VALUES (p_reference, p_op_id, p_card_hash, p_amount, p_currency, 'active', 0, p_callback_url,
                    p_disputed);
    END IF;
    UPDATE idempotency_keys SET operation_id = p_op_id WHERE key = p_key;
    RETURN (SELECT ROW('applied', o.id, o.reference, o.type, o.status, o.amount, o.currency, o.captured,
                       o.failure_code, o.tombstone, o.created_at,
                       CASE WHEN p_capture THEN p_capture_op_id END)::bank_answer
            FROM operations o WHERE o.id = p_op_id);
END
$$;

-- money.after_capture: the movement owed to the merchant; the dispute test card's dispute, scheduled.
CREATE FUNCTION bank_after_capture(p_reference text, p_amount bigint, p_currency text, p_disputed boolean,
                                   p_dispute_delay_s double precision, p_movement_id text, p_dispute_id text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO movements (id, reference, type, amount, currency)
        VALUES (p_movement_id, p_reference, 'capture', p_amount, p_currency);
    IF p_disputed THEN
        INSERT INTO disputes (id, reference, amount, currency, reason, status, open_at)
            VALUES (p_dispute_id, p_reference, p_amount, p_currency, 'fraudulent', 'scheduled',
                    now() + make_interval(secs => p_dispute_delay_s));
    END IF;
END
$$;

-- store.capture: the whole hold goes; only the amount leaves the account (the rest of the hold is released).
CREATE FUNCTION bank_capture(
    p_key text, p_request_hash bytea, p_reference text, p_amount bigint, p_dispute_delay_s double precision,
    p_op_id text, p_movement_id text, p_dispute_id text
) RETURNS bank_answer
LANGUAGE plpgsql AS $$
DECLARE
    auth record;
BEGIN
    IF NOT bank_claim_key(p_key, p_request_hash) THEN
        RETURN ROW('exists', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::bank_answer;
    END IF;
    SELECT operation_id, card_hash, amount, currency, state, dispute_on_capture INTO auth
        FROM authorizations WHERE reference = p_reference FOR UPDATE;
    IF NOT FOUND THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'capture', 'failed', p_amount, NULL,
                              'authorization_not_found');
    ELSIF auth.state <> 'active' THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'capture', 'failed', p_amount, NULL,
                              'authorization_not_active');
    ELSIF p_amount > auth.amount THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'capture', 'failed', p_amount, NULL,
                              'amount_exceeds_authorization');
    END IF;
    UPDATE accounts SET balance = balance - p_amount, held = held - auth.amount, captured = captured + p_amount
        WHERE card_hash = auth.card_hash;
    UPDATE authorizations SET state = 'captured', captured_amount = p_amount WHERE reference = p_reference;
    UPDATE operations SET captured = true WHERE id = auth.operation_id;
    PERFORM bank_after_capture(p_reference, p_amount, auth.currency, auth.dispute_on_capture, p_dispute_delay_s,
                               p_movement_id, p_dispute_id);
    RETURN bank_answer_op(p_key, p_op_id, p_reference, 'capture', 'succeeded', p_amount, auth.currency, NULL);
END
$$;

-- store.void: the hold released.
CREATE FUNCTION bank_void(p_key text, p_request_hash bytea, p_reference text, p_op_id text) RETURNS bank_answer
LANGUAGE plpgsql AS $$
DECLARE
    auth record;
BEGIN
    IF NOT bank_claim_key(p_key, p_request_hash) THEN
        RETURN ROW('exists', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::bank_answer;
    END IF;
    SELECT card_hash, amount, currency, state INTO auth FROM authorizations WHERE reference = p_reference FOR UPDATE;
    IF NOT FOUND THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'void', 'failed', 0, NULL, 'authorization_not_found');
    ELSIF auth.state <> 'active' THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'void', 'failed', auth.amount, NULL,
                              'authorization_not_active');
    END IF;
    UPDATE accounts SET held = held - auth.amount WHERE card_hash = auth.card_hash;
    UPDATE authorizations SET state = 'voided' WHERE reference = p_reference;
    RETURN bank_answer_op(p_key, p_op_id, p_reference, 'void', 'succeeded', auth.amount, auth.currency, NULL);
END
$$;

-- store.refund: back to the card's account (a UPI authorization has none), and a negative movement.
CREATE FUNCTION bank_refund(p_key text, p_request_hash bytea, p_reference text, p_amount bigint, p_op_id text,
                            p_movement_id text) RETURNS bank_answer
LANGUAGE plpgsql AS $$
DECLARE
    auth record;
BEGIN
    IF NOT bank_claim_key(p_key, p_request_hash) THEN
        RETURN ROW('exists', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::bank_answer;
    END IF;
    SELECT card_hash, currency, state, captured_amount, refunded_amount INTO auth
        FROM authorizations WHERE reference = p_reference FOR UPDATE;
    IF NOT FOUND THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'refund', 'failed', p_amount, NULL,
                              'authorization_not_found');
    ELSIF auth.state <> 'captured' THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'refund', 'failed', p_amount, NULL,
                              'authorization_not_captured');
    ELSIF p_amount > auth.captured_amount - auth.refunded_amount THEN
        RETURN bank_answer_op(p_key, p_op_id, p_reference, 'refund', 'failed', p_amount, NULL,
                              'amount_exceeds_captured');
    END IF;
    IF auth.card_hash IS NOT NULL THEN
            UPDATE accounts SET balance = balance + p_amount, refunded = refunded + p_amount
            WHERE card_hash = auth.card_hash;
    END IF;
    UPDATE authorizations SET refunded_amount = refunded_amount + p_amount WHERE reference = p_reference;
    INSERT INTO movements (id, reference, type, amount, currency)
        VALUES (p_movement_id, p_reference, 'refund', -p_amount, auth.currency);
    RETURN bank_answer_op(p_key, p_op_id, p_reference, 'refund', 'succeeded', p_amount, auth.currency, NULL);
END
$$;
