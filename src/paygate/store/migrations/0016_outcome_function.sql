-- The create's outcome phase in one statement (docs/decisions/0026). Four small pieces that the store
-- modules call one by one (store/events.py, store/ledger.py, store/acquirer_health.py, store/idempotency.py)
-- and that paygate_conclude_authorization calls together: one copy of each statement. PL/pgSQL rather
-- than SQL functions so that each session plans them once (PostgreSQL 15 re-plans a SQL function per call).
-- Only new functions: nothing the running processes use changes (expand-only, docs/deploy.md).

-- An event once per (object, type), a delivery per subscribed endpoint, and a wake-up for the workers
-- when there is one (was store/events.py `emit`'s one statement, a CTE; the same three steps).
CREATE FUNCTION paygate_emit_event(p_id text, p_merchant text, p_type text, p_object text, p_data json,
                                   p_now timestamptz) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (id, merchant_id, type, object_id, data, created_at)
    VALUES (p_id, p_merchant, p_type, p_object, p_data, p_now) ON CONFLICT (object_id, type) DO NOTHING;
    IF NOT FOUND THEN  -- this object's event of this type exists: it is not emitted twice
        RETURN;
    END IF;
    INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, next_attempt_at,
                                    created_at, updated_at)
    SELECT paygate_id('wd'), p_merchant, e.id, p_id, p_type, p_now, p_now, p_now FROM webhook_endpoints e
    WHERE e.merchant_id = p_merchant AND NOT e.deleted AND NOT e.disabled
      AND (e.enabled_events @> ARRAY['*'] OR e.enabled_events @> ARRAY[p_type]::text[]);
    IF FOUND THEN  -- a delivery to make: wake the workers
        PERFORM pg_notify('paygate_deliveries', '');
    END IF;
END $$;

-- A journal with all its postings; the deferred trigger ledger_entries_balanced still refuses to commit
-- one that does not balance (was store/ledger.py `post`'s statement).
CREATE FUNCTION paygate_post_journal(p_journal text, p_merchant text, p_kind text, p_currency text,
                                     p_payment text, p_refund text, p_now timestamptz, p_ids text[],
                                     p_accounts text[], p_directions text[], p_amounts bigint[])
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH j AS (
        INSERT INTO ledger_journals (id, merchant_id, kind, currency, payment_id, refund_id, created_at)
        VALUES (p_journal, p_merchant, p_kind, p_currency, p_payment, p_refund, p_now))
    INSERT INTO ledger_entries (id, journal_id, merchant_id, account, direction, amount, currency, payment_id,
                                refund_id, created_at)
    SELECT e.id, p_journal, p_merchant, e.account, e.direction, e.amount, p_currency, p_payment, p_refund, p_now
    FROM unnest(p_ids, p_accounts, p_directions, p_amounts) AS e(id, account, direction, amount);
END $$;

-- One authorization attempt (the breaker's input), and the breaker as last committed (no lock): the
-- hot path's only read of store/acquirer_health.py `record_attempt`.
CREATE FUNCTION paygate_record_attempt(p_payment text, p_merchant text, p_acquirer text, p_result text,
                                       p_failure_code text, p_at timestamptz)
    RETURNS SETOF acquirer_health LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO acquirer_attempts (payment_id, merchant_id, acquirer, result, failure_code, at)
    VALUES (p_payment, p_merchant, p_acquirer, p_result, p_failure_code, p_at);
    RETURN QUERY SELECT * FROM acquirer_health WHERE acquirer = p_acquirer;
END $$;

-- A key's final answer; the first one stands (was store/idempotency.py `store_response`'s statement).
CREATE FUNCTION paygate_finish_key(p_merchant text, p_key text, p_status int, p_body bytea)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE idempotency_keys SET response_status = p_status, response_body = p_body, locked_until = NULL,
           recovery_point = 'finished', updated_at = now()
    WHERE merchant_id = p_merchant AND key = p_key AND response_status IS NULL;
END $$;

-- The outcome of a create's authorization, computed by services/outcome.py exactly as settle would, applied
-- only if the payment and its operation are still as the request committed them: the payment locked first
-- (as bank_ops.lock_with_payment does), then the operation read (its status changes only under that lock).
-- 'stale': something else wrote to either (recovery, a callback, a retried request), or the acquirer's
-- breaker is not plainly up (its write takes the breaker's lock: store/acquirer_health.py) — nothing was
-- written and the caller takes the ordinary path. 'done': everything below was written, in this statement's
-- transaction. Called on an autocommit connection, so the statement is the transaction.
CREATE FUNCTION paygate_conclude_authorization(
    p_payment text, p_op text,
    -- the payment and operation as the request left them
    p_was_status text, p_was_updated_at timestamptz, p_was_attempts jsonb, p_was_references jsonb,
    -- the attempt (health)
    p_acquirer text, p_result text, p_attempt_code text, p_at timestamptz,
    -- the operation's final answer
    p_op_status text, p_op_failure_code text, p_op_reference text,
    -- the payment as it will be stored
    p_status text, p_history json, p_captured bigint, p_fee bigint, p_expires timestamptz,
    p_failure_code text, p_failure_message text, p_attempts jsonb, p_references jsonb,
    -- its status's event
    p_event text, p_event_type text, p_event_data json,
    -- its journal (p_journal NULL: none)
    p_journal text, p_journal_kind text, p_entry_ids text[], p_accounts text[], p_directions text[],
    p_amounts bigint[],
    -- the key's answer (p_key NULL: no Idempotency-Key)
    p_key_merchant text, p_key text, p_response_status int, p_response_body bytea
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p record;
    o record;
BEGIN
    SELECT merchant_id, status, updated_at, acquirer, acquirer_attempts, acquirer_references, currency INTO p
    FROM payments WHERE id = p_payment FOR UPDATE;
    IF NOT FOUND OR p.status <> p_was_status OR p.updated_at <> p_was_updated_at
       OR p.acquirer IS DISTINCT FROM p_acquirer OR p.acquirer_attempts <> p_was_attempts
       OR p.acquirer_references <> p_was_references THEN
        RETURN 'stale';
    END IF;
    SELECT status, kind, payment_id, acquirer INTO o FROM bank_operations WHERE id = p_op;
    IF NOT FOUND OR o.status <> 'pending' OR o.kind <> 'authorization' OR o.payment_id <> p_payment
       OR o.acquirer <> p_acquirer THEN
        RETURN 'stale';
    END IF;
    -- domain/health.py needs_write: an answer at an up acquirer changes no breaker
    IF p_result NOT IN ('succeeded', 'declined') OR EXISTS (
        SELECT 1 FROM acquirer_health h WHERE h.acquirer = p_acquirer
        AND (h.status <> 'up' OR h.consecutive_failures <> 0 OR h.down_until IS NOT NULL)) THEN
        RETURN 'stale';
    END IF;

    PERFORM paygate_record_attempt(p_payment, p.merchant_id, p_acquirer, p_result, p_attempt_code, p_at);
    UPDATE bank_operations SET status = p_op_status, failure_code = p_op_failure_code, resolved_at = p_at,
           acquirer_reference = coalesce(p_op_reference, acquirer_reference)
    WHERE id = p_op;
    UPDATE payments SET status = p_status, status_history = p_history, updated_at = p_at,
           amount_captured = p_captured, amount_fee = p_fee, authorization_expires_at = p_expires,
           failure_code = p_failure_code, failure_message = p_failure_message, acquirer_attempts = p_attempts,
           acquirer_references = p_references
    WHERE id = p_payment;
    PERFORM paygate_emit_event(p_event, p.merchant_id, p_event_type, p_payment, p_event_data, p_at);
    IF p_journal IS NOT NULL THEN
        PERFORM paygate_post_journal(p_journal, p.merchant_id, p_journal_kind, p.currency, p_payment, NULL, p_at,
                                     p_entry_ids, p_accounts, p_directions, p_amounts);
    END IF;
    IF p_key IS NOT NULL THEN
        PERFORM paygate_finish_key(p_key_merchant, p_key, p_response_status, p_response_body);
    END IF;
    RETURN 'done';
END $$;
