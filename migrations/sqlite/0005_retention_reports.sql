-- Retention and reports (sqlite; kept in step with migrations/postgres/0005_retention_reports.sql).
-- A job whose request was redacted (or erased) is finished: it is never decided again.
ALTER TABLE outreach ADD COLUMN redacted_at BIGINT;

-- The retention pass looks for what is due by these times.
CREATE INDEX messages_retention ON messages (status_at) WHERE redacted_at IS NULL;
CREATE INDEX replies_retention ON replies (received_at) WHERE redacted_at IS NULL;
CREATE INDEX outreach_retention ON outreach (updated_at) WHERE redacted_at IS NULL;
-- Reports read events of a type within a period, and calls by time.
CREATE INDEX events_type_at ON events (type, at);
CREATE INDEX calls_at ON calls (at);
