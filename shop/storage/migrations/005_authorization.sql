-- Authorization mode (FLEX_TRANSACTION_TYPE=AUTHORIZATION): what the merchant asked Flex to
-- do with an authorization, recorded BEFORE the call (shop/orders/authorizations.py). One row per
-- order (the primary key): a double click, a second node, or a cancel after a capture finds
-- the row and sends nothing. An unanswered call stays 'pending' and is replayed with the
-- SAME idempotency_key until Flex answers. Plain SQL for SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS flex_authorization_actions (
    order_id        TEXT PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    action          TEXT NOT NULL CHECK (action IN ('capture', 'cancel')),
    idempotency_key TEXT NOT NULL UNIQUE,  -- sent on every attempt, first to last
    amount_cents    INTEGER CHECK (amount_cents > 0),  -- capture: what is captured; cancel: NULL
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | done | refused | failed
    attempts        INTEGER NOT NULL DEFAULT 0,  -- calls that ended (answered or not)
    last_error      TEXT,                  -- refused/failed: the reason shown on the order page
    next_attempt_at DOUBLE PRECISION NOT NULL,
    leased_until    DOUBLE PRECISION NOT NULL DEFAULT 0,  -- someone is calling Flex until then
    created_at      DOUBLE PRECISION NOT NULL,
    settled_at      DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS flex_authorization_actions_due
    ON flex_authorization_actions (state, next_attempt_at);
