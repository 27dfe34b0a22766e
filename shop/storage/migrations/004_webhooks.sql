-- Flex's signed webhooks (shop/webhooks/receiver.py). Plain SQL that SQLite and PostgreSQL both run.
-- Every verified event is stored here BEFORE the receiver answers 2xx, once: `event_id` is
-- flex.webhooks.event_id_for(), the same for every delivery of one event. Times are epoch s.
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id          TEXT PRIMARY KEY,
    event_type        TEXT NOT NULL,             -- e.g. order.refunded; unknown names kept as sent
    order_id          TEXT,                      -- our order, when the event names one we have
    order_session_key TEXT,                      -- Flex's OrderId
    external_order_id TEXT,                      -- Flex's ExternalOrderId (our order id)
    happened_at       DOUBLE PRECISION NOT NULL, -- the event's TimeStamp
    received_at       DOUBLE PRECISION NOT NULL,
    is_resent         INTEGER NOT NULL,          -- 1: the first delivery we got was a resend
    deliveries        INTEGER NOT NULL DEFAULT 1,  -- redeliveries are counted, never re-applied
    body              TEXT NOT NULL,             -- the raw body, exactly as signed
    headers           TEXT NOT NULL,             -- JSON: nonce, date, host, content hash
    applied_at        DOUBLE PRECISION,          -- NULL: its effect is not recorded yet
    outcome           TEXT,                      -- what it changed, or why it waits
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   DOUBLE PRECISION NOT NULL  -- when the sweep may apply it (a lease till then)
);
CREATE INDEX IF NOT EXISTS webhook_events_received ON webhook_events (received_at DESC);
CREATE INDEX IF NOT EXISTS webhook_events_order ON webhook_events (order_id, received_at);
CREATE INDEX IF NOT EXISTS webhook_events_due ON webhook_events (next_attempt_at)
    WHERE applied_at IS NULL;

-- Nonces of accepted deliveries, to refuse a replayed request (flex.webhooks.NonceStore):
-- the primary key makes "seen before" one atomic insert, on every node at once.
CREATE TABLE IF NOT EXISTS webhook_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_nonces_expiry ON webhook_nonces (expires_at);

-- Deliveries refused (bad signature, stale date, replay...): counted by reason, nothing else
-- kept, so a flood of forged requests cannot fill the database.
CREATE TABLE IF NOT EXISTS webhook_rejections (
    reason     TEXT PRIMARY KEY,
    count      INTEGER NOT NULL,
    last_at    DOUBLE PRECISION NOT NULL
);

-- payment.chargeback.received: the cardholder disputed the charge.
ALTER TABLE orders ADD COLUMN chargeback_at DOUBLE PRECISION;
-- Refunds and chargebacks name the order by Flex's orderSessionKey.
CREATE INDEX IF NOT EXISTS orders_session_key ON orders (order_session_key);
