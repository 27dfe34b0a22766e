-- The merchant's orders and the Flex transmit outbox. Plain SQL that SQLite and PostgreSQL
-- both run. The status shown to people is derived from `outcome` and the succeeded refunds
-- (see shop/orders/records.py), never stored twice. Times are epoch seconds.
CREATE TABLE IF NOT EXISTS orders (
    id                TEXT PRIMARY KEY,      -- the checkout id (UUID4): idempotency key + senseKey
    created_at        DOUBLE PRECISION NOT NULL,
    outcome           TEXT NOT NULL DEFAULT 'pending',  -- pending | paid | rescued | declined
    amount_cents      INTEGER NOT NULL CHECK (amount_cents > 0),
    -- refunds succeeded, pending or unknown: what can no longer be refunded
    refund_reserved_cents INTEGER NOT NULL DEFAULT 0 CHECK (refund_reserved_cents >= 0),
    currency          TEXT NOT NULL,
    email             TEXT NOT NULL,
    card_brand        TEXT,
    card_first6       TEXT,
    card_last4        TEXT,
    processor_txn     TEXT,
    processor_code    TEXT,
    processor_message TEXT,
    flex_status       TEXT,                  -- APPROVED | CHALLENGE | DECLINED, when Flex answered
    order_session_key TEXT,                  -- Flex's order id, the key for refunds
    flex_error        TEXT,                  -- why Flex gave no answer
    reconcile         INTEGER NOT NULL DEFAULT 0,  -- 1: Flex's answer unknown, replay evaluate
    reconcile_attempts INTEGER NOT NULL DEFAULT 0,
    reconcile_at      DOUBLE PRECISION,      -- when to replay next
    evaluate_payload  TEXT,                  -- vault token, never a card number
    CHECK (refund_reserved_cents <= amount_cents)
);
CREATE INDEX IF NOT EXISTS orders_created ON orders (created_at DESC);
CREATE INDEX IF NOT EXISTS orders_reconcile ON orders (reconcile, reconcile_at);

CREATE TABLE IF NOT EXISTS order_items (
    order_id         TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0)
);
CREATE INDEX IF NOT EXISTS order_items_order ON order_items (order_id);

-- One /transmit per approved order (the primary key), written in the order's transaction
-- and delivered by flex/outbox.py's Relay through shop/storage/flex_store.py.
CREATE TABLE IF NOT EXISTS flex_outbox (
    order_id        TEXT PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    leased_until    DOUBLE PRECISION NOT NULL DEFAULT 0,  -- a relay is sending it until then
    created_at      DOUBLE PRECISION NOT NULL,
    delivered_at    DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS flex_outbox_due ON flex_outbox (state, next_attempt_at);
