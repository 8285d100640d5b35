-- Webhook delivery: indexes for the per-endpoint delivery list and the merchant's queue (GET /v1/queue).

-- A delivery list filtered by endpoint, newest first; also what DELETE of an endpoint walks.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);

-- GET /v1/queue counts what is not (yet) delivered; succeeded rows, the vast majority, stay out of it.
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (merchant_id, status, next_attempt_at)
    WHERE status <> 'succeeded';

