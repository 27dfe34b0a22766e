-- One vocabulary: an order whose /evaluate answer is unknown is "recovering" (the shopper
-- sees "Awaiting confirmation"), checked again at `recover_at`, as unknown refunds are.
-- Renames the columns 001 created under an older name; existing databases keep their rows.
ALTER TABLE orders RENAME COLUMN reconcile TO recovering;
ALTER TABLE orders RENAME COLUMN reconcile_attempts TO recover_attempts;
ALTER TABLE orders RENAME COLUMN reconcile_at TO recover_at;
DROP INDEX IF EXISTS orders_reconcile;
CREATE INDEX IF NOT EXISTS orders_recovering ON orders (recovering, recover_at);
