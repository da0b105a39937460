-- Outbound case events and provider replies (issue 5). Kept in step with the other dialect.

-- Case events still to POST to SAFEREACH_EVENTS_URL: one row per event, written in the same
-- transaction as the event, deleted once the receiver took it. Only the oldest row of a case is
-- ever sent (order per case); a row that used up its tries stays, dead-lettered, for staff.
CREATE TABLE event_outbox (
    event_id      BIGINT PRIMARY KEY,               -- events.id
    case_ref      TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,                  -- not tried again before then
    claimed_until BIGINT NOT NULL DEFAULT 0,        -- a deliverer is sending it until then
    dead_at       BIGINT,                           -- dead-lettered
    last_error    TEXT                              -- a status code or transport failure, never a body
);
CREATE INDEX event_outbox_case ON event_outbox (case_ref, event_id);
CREATE INDEX event_outbox_due ON event_outbox (next_at);

-- A provider that delivers the same reply twice (Twilio retries) records it once.
CREATE UNIQUE INDEX replies_provider_ref ON replies (provider, provider_ref) WHERE provider_ref IS NOT NULL;
