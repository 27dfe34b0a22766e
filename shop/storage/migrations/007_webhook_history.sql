-- What happened to each stored webhook event, one line per attempt or delivery, appended and
-- never rewritten: "waiting: ..." stays as it was when the event is applied later.
CREATE TABLE IF NOT EXISTS webhook_event_history (
    event_id TEXT NOT NULL REFERENCES webhook_events (event_id) ON DELETE CASCADE,
    at       DOUBLE PRECISION NOT NULL,
    what     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_event_history_event ON webhook_event_history (event_id, at);
-- Databases from before kept only the latest word: it becomes the first line.
INSERT INTO webhook_event_history (event_id, at, what)
    SELECT event_id, COALESCE(applied_at, received_at), outcome FROM webhook_events
    WHERE outcome IS NOT NULL;
-- `effect`: what applying the event did, written once when it is applied (an order's
-- `outcome` is the checkout's result: one word, one meaning).
ALTER TABLE webhook_events RENAME COLUMN outcome TO effect;
UPDATE webhook_events SET effect = NULL WHERE applied_at IS NULL;
