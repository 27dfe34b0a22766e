-- Every order state resolves by itself (shop/recovery/sweep.py, flex/recovery.py). Plain SQL
-- that SQLite and PostgreSQL both run. Times are epoch seconds.

-- The simulated processor's durable ledger, keyed by the merchant's reference (the order
-- id for an authorization, "refund:<id>" for a refund), as a real PSP's idempotency keys
-- and lookups are: a replayed authorization returns the first answer, never a second charge.
CREATE TABLE IF NOT EXISTS processor_ledger (
    reference      TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,            -- authorization | refund
    transaction_id TEXT NOT NULL,
    approved       INTEGER NOT NULL,
    response_code  TEXT NOT NULL,
    response_text  TEXT NOT NULL,
    cvv_result     TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL,
    created_at     DOUBLE PRECISION NOT NULL
);

-- An order's timeline of resolutions: who settled it, what was asked, what came back.
CREATE TABLE IF NOT EXISTS order_events (
    id         TEXT PRIMARY KEY,             -- a UUID (one file for both engines)
    order_id   TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    at         DOUBLE PRECISION NOT NULL,
    actor      TEXT NOT NULL,                -- recovery | checkout | refund
    asked      TEXT NOT NULL,
    answered   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS order_events_order ON order_events (order_id, at);

-- Pending orders are found by age.
CREATE INDEX IF NOT EXISTS orders_pending ON orders (outcome, created_at);

-- A refund whose answer is unknown is checked again at `recover_at`, `recover_attempts`
-- times at most; `note` says why it settled the way it did.
ALTER TABLE refunds ADD COLUMN recover_at DOUBLE PRECISION;
ALTER TABLE refunds ADD COLUMN recover_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refunds ADD COLUMN note TEXT;

-- What the order was created with (JSON: the priced purchase and the card summary, never a
-- card number), so recovery can finish a checkout that a crash interrupted.
ALTER TABLE orders ADD COLUMN checkout TEXT;
