-- Why each Flex call was made ("vaulting the card", "checking the refunded total") and the
-- action it belongs to (one checkout, one refund, one webhook's effects), so an order's
-- timeline groups and times calls by action (flex/purposes.py). Numbered 008: 006 and 007
-- are taken by another change in flight. Only adds nullable columns: older rows show the
-- endpoint's own purpose and are grouped by time, as before.
ALTER TABLE flex_calls ADD COLUMN purpose TEXT;
ALTER TABLE flex_calls ADD COLUMN action TEXT;
