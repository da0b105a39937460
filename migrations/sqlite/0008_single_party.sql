-- No single party can undo a victim's protection (sqlite; kept in step with migrations/postgres/0008_single_party.sql).

-- Kannel re-delivers replies without an id of its own: the time it says a reply was sent (`ts`)
-- lets the same reply within a minute be recognised.
ALTER TABLE replies ADD COLUMN provider_at BIGINT;
CREATE INDEX replies_same_sender ON replies (provider, from_key, provider_at);

-- Who created each staff account (`staff:<admin>` or `cli`), for the four-eyes rule.
ALTER TABLE staff ADD COLUMN created_by TEXT;
-- Wrong passwords no longer lock an account (anyone could lock anyone out): they slow the
-- username from that address instead (login_throttle).
ALTER TABLE staff DROP COLUMN failed_logins;
ALTER TABLE staff DROP COLUMN locked_until;

-- Failed logins per username typed and client address, both as keyed hashes (a typed username
-- may be a mistyped password). No password is checked for them before next_at.
CREATE TABLE login_throttle (
    username_key   TEXT NOT NULL,
    address_key    TEXT NOT NULL,
    failures       BIGINT NOT NULL,
    last_failed_at BIGINT NOT NULL,
    next_at        BIGINT NOT NULL,
    PRIMARY KEY (username_key, address_key)
);
CREATE INDEX login_throttle_last ON login_throttle (last_failed_at);

-- What admins did (accounts, keys, unlocks), with who and when; shown on the admin page.
CREATE TABLE audit_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
