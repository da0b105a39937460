-- On-call alerts and staff second factors (issue 18; sqlite, kept in step with
-- migrations/postgres/0011_oncall_two_factor.sql).

-- An urgent item: a reply that needs a person now (distress; unsafe on a case). Raised in the
-- reply's own transaction; acknowledged when staff acknowledge its alert (or, from a number on no
-- case, the reply) on the review page, which stops the escalation.
CREATE TABLE urgent_items (
    id              TEXT PRIMARY KEY,
    case_ref        TEXT,                           -- NULL: a reply from a number on no case
    reply_id        TEXT NOT NULL,
    alert_event_id  BIGINT,                         -- the alert on the case's timeline
    classification  TEXT NOT NULL,
    raised_at       BIGINT NOT NULL,
    next_step       BIGINT NOT NULL DEFAULT 0,      -- the escalation step to notify next
    escalate_at     BIGINT,                         -- when it is due; NULL: nobody to notify, or acknowledged
    acknowledged_at BIGINT,
    acknowledged_by TEXT
);
CREATE INDEX urgent_items_open ON urgent_items (raised_at) WHERE acknowledged_at IS NULL;
CREATE INDEX urgent_items_alert ON urgent_items (alert_event_id);
CREATE INDEX urgent_items_reply ON urgent_items (reply_id);

-- One notification of an urgent item to one on-call contact, delivered through the outbox, the
-- queue and the worker like a victim's message: claimed with a lease, retried after transient
-- failures, never sent twice when in doubt. No body is kept: the wording is fixed.
CREATE TABLE oncall_notifications (
    id            TEXT PRIMARY KEY,
    item_id       TEXT NOT NULL REFERENCES urgent_items(id),
    step          BIGINT NOT NULL,
    channel       TEXT NOT NULL,                    -- sms, email
    contact_index BIGINT NOT NULL,                  -- place in SAFEREACH_ONCALL_SMS / _EMAIL
    recipient     TEXT NOT NULL,                    -- staff's number or address (staff data)
    status        TEXT NOT NULL,                    -- queued sending sent failed in_doubt stopped
    attempts      BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT,
    provider      TEXT,
    provider_ref  TEXT,
    created_at    BIGINT NOT NULL,
    status_at     BIGINT NOT NULL,
    sent_at       BIGINT
);
CREATE INDEX oncall_notifications_item ON oncall_notifications (item_id, step);

-- A member of staff's TOTP second factor (RFC 6238). The secret is sealed (ChaCha20-Poly1305)
-- with a key derived from the hash key, which is never kept in the database: a copy of the
-- database alone cannot make codes. enrolled_at NULL: enrolment started, not confirmed yet.
CREATE TABLE staff_two_factor (
    username    TEXT PRIMARY KEY REFERENCES staff(username),
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    enrolled_at BIGINT,
    last_step   BIGINT NOT NULL DEFAULT 0           -- the last time step a code was used for: no replay
);

-- Recovery codes, shown once at enrolment; stored as keyed hashes, each good once.
CREATE TABLE staff_recovery_codes (
    username  TEXT NOT NULL REFERENCES staff(username),
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (username, code_hash)
);

-- A sign-in whose password was right and whose second factor is awaited. The cookie holds a
-- random id; only its SHA-256 is stored.
CREATE TABLE staff_login_challenges (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES staff(username),
    next       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0
);
