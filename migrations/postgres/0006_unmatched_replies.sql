-- Replies from numbers we had not texted (postgres; kept in step with migrations/sqlite/0006_unmatched_replies.sql).
-- They match no case, so no alert can be put on a timeline: the review queue lists them from here
-- until a member of staff acknowledges them, with the reason given (personal: redacted with the
-- reply's body).
ALTER TABLE replies ADD COLUMN reviewed_at BIGINT;
ALTER TABLE replies ADD COLUMN reviewed_by TEXT;
ALTER TABLE replies ADD COLUMN review_note TEXT;
CREATE INDEX replies_unmatched_waiting ON replies (received_at) WHERE case_ref IS NULL AND reviewed_at IS NULL;
