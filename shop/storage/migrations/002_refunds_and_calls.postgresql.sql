-- Tables keyed by a generated number: the one thing the engines spell differently
-- (SQLite: INTEGER PRIMARY KEY; PostgreSQL: an identity column). Keep the pair in step.
CREATE TABLE IF NOT EXISTS refunds (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- one row, one reservation, per refund attempt
    order_id     TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    channel      TEXT NOT NULL,              -- Flex | processor
    status       TEXT NOT NULL,              -- pending | succeeded | unknown
    created_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_order ON refunds (order_id);

-- Every Flex call, redacted, for the inspector (flex/calllog.py).
CREATE TABLE IF NOT EXISTS flex_calls (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   TEXT,
    endpoint   TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    status     INTEGER,
    ms         INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    error      TEXT,
    request    TEXT,
    response   TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS flex_calls_order ON flex_calls (order_id, id);
