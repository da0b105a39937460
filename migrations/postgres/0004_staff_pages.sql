-- Staff pages: server-side sessions, staff notes on review actions, acknowledged alerts.
-- Postgres. Kept in step with migrations/sqlite/0004_staff_pages.sql.

-- A login session. The cookie holds a random id; only its SHA-256 is stored, so a copy of the
-- database does not let anyone act as a logged-in member of staff.
CREATE TABLE staff_sessions (
    id_hash      TEXT PRIMARY KEY,
    username     TEXT NOT NULL REFERENCES staff(username),
    csrf_token   TEXT NOT NULL,                     -- per session, in a hidden field of every form
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL                    -- absolute end, whatever the activity
);
CREATE INDEX staff_sessions_user ON staff_sessions (username);

-- The reason a member of staff gave for an action (release, cancel, mark unsafe, acknowledge).
-- Free text may name people, so it lives here (personal, redactable) and the timeline event
-- refers to it by id.
CREATE TABLE staff_notes (
    id          TEXT PRIMARY KEY,
    case_ref    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT,                               -- personal
    redacted_at BIGINT
);
CREATE INDEX staff_notes_case ON staff_notes (case_ref, at);

-- Alerts (events of type alert) that staff have dealt with: they leave the review queue.
CREATE TABLE alert_acknowledgements (
    event_id BIGINT PRIMARY KEY,
    actor    TEXT NOT NULL,
    at       BIGINT NOT NULL
);
