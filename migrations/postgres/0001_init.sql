-- safereach schema (Postgres). Kept in step with migrations/sqlite/0001_init.sql.
-- Times are milliseconds since the Unix epoch (UTC). Columns that hold personal data are marked
-- "personal": retention sets them to NULL. Addresses are matched through keyed hashes (*_key),
-- which survive redaction. Flags are BIGINT 0/1: sqlx's Any driver cannot decode SQLite booleans.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE cases (
    case_ref         TEXT PRIMARY KEY,
    created_at       BIGINT NOT NULL,
    referral_source  TEXT,
    referred_at      BIGINT,
    local_authority  TEXT,
    categories       TEXT NOT NULL DEFAULT '',      -- comma list of crime categories
    priority         BIGINT NOT NULL DEFAULT 0,
    safety_sensitive BIGINT NOT NULL DEFAULT 0,
    cancelled_at     BIGINT,
    call_window      TEXT,                          -- from a time_preference reply
    erased_at        BIGINT
);

CREATE TABLE outreach (
    id            TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL UNIQUE,
    request_hash  TEXT NOT NULL,
    case_ref      TEXT NOT NULL REFERENCES cases(case_ref),
    kind          TEXT NOT NULL,
    priority      BIGINT NOT NULL,
    request_json  TEXT,                             -- personal
    accepted_at   BIGINT NOT NULL,
    status        TEXT NOT NULL,                    -- queued deferred held blocked sent failed cancelled
    outcome       TEXT NOT NULL,                    -- latest decision
    reason        TEXT,
    channel       TEXT,
    template      TEXT,
    not_before    BIGINT,
    response_json TEXT NOT NULL,                    -- the first answer, replayed for the same request_id
    attempts      BIGINT NOT NULL DEFAULT 0,       -- transient send failures so far
    updated_at    BIGINT NOT NULL
);
CREATE INDEX outreach_case ON outreach (case_ref, accepted_at);
CREATE INDEX outreach_status ON outreach (status);

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,              -- also the provider reference we ask for
    outreach_id      TEXT NOT NULL UNIQUE REFERENCES outreach(id),
    case_ref         TEXT NOT NULL REFERENCES cases(case_ref),
    channel          TEXT NOT NULL,
    template         TEXT NOT NULL,
    template_version BIGINT NOT NULL,
    status           TEXT NOT NULL,
    provider         TEXT,
    provider_ref     TEXT,
    to_key           TEXT NOT NULL,                 -- keyed hash of the normalised address
    to_address       TEXT,                          -- personal (JSON Recipient)
    subject          TEXT,                          -- personal
    body             TEXT,                          -- personal
    html             TEXT,                          -- personal
    encoding         TEXT,
    segments         BIGINT,
    created_at       BIGINT NOT NULL,
    claimed_until    BIGINT,                        -- a worker is sending it until then
    sent_at          BIGINT,
    status_at        BIGINT NOT NULL,
    final_at         BIGINT,
    redacted_at      BIGINT
);
CREATE INDEX messages_case ON messages (case_ref);
CREATE INDEX messages_to_key ON messages (to_key, created_at);
CREATE INDEX messages_provider_ref ON messages (provider, provider_ref);

CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    case_ref       TEXT NOT NULL,
    at             BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    type           TEXT NOT NULL,
    outreach_id    TEXT,
    message_id     TEXT,
    outcome        TEXT,
    reason         TEXT,
    channel        TEXT,
    status         TEXT,
    classification TEXT,
    detail         TEXT                              -- JSON, never personal data
);
CREATE INDEX events_case ON events (case_ref, id);
CREATE INDEX events_at ON events (at);

CREATE TABLE case_phones (
    case_ref   TEXT NOT NULL,
    number_key TEXT NOT NULL,
    is_victims BIGINT NOT NULL,
    PRIMARY KEY (case_ref, number_key, is_victims)
);
CREATE INDEX case_phones_number ON case_phones (number_key);

CREATE TABLE suppressions (
    address_key TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,                      -- opt_out or unsafe
    case_ref    TEXT,
    at          BIGINT NOT NULL,
    lifted_at   BIGINT
);

CREATE TABLE replies (
    id             TEXT PRIMARY KEY,
    case_ref       TEXT,
    message_id     TEXT,
    received_at    BIGINT NOT NULL,
    provider       TEXT NOT NULL,
    provider_ref   TEXT,
    from_key       TEXT NOT NULL,
    from_number    TEXT,                            -- personal
    body           TEXT,                            -- personal
    classification TEXT NOT NULL,
    redacted_at    BIGINT
);
CREATE INDEX replies_case ON replies (case_ref);

CREATE TABLE calls (
    id          TEXT PRIMARY KEY,
    case_ref    TEXT NOT NULL REFERENCES cases(case_ref),
    at          BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX calls_case ON calls (case_ref);

-- Work to hand to the queue. Written in the same transaction as the decision that needs it, so a
-- crash between commit and enqueue loses nothing; the relay moves due rows onto the queue.
CREATE TABLE job_outbox (
    id            BIGSERIAL PRIMARY KEY,
    outreach_id   TEXT NOT NULL,
    run_at        BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX job_outbox_due ON job_outbox (run_at);

CREATE TABLE template_versions (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    discreet     BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    state        TEXT NOT NULL,                     -- draft submitted approved rejected retired
    subject      TEXT,
    body         TEXT NOT NULL,
    html         TEXT,
    author       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    submitted_at BIGINT,
    decided_by   TEXT,
    decided_at   BIGINT,
    comment      TEXT,
    UNIQUE (name, channel, version)
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,                -- SHA-256 of the key (keys are long and random)
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE staff (
    username        TEXT PRIMARY KEY,
    password_hash   TEXT NOT NULL,                  -- argon2
    role            TEXT NOT NULL,                  -- author approver admin
    created_at      BIGINT NOT NULL,
    failed_logins   BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    disabled        BIGINT NOT NULL DEFAULT 0
);

-- At most one approved version of each template on each channel.
CREATE UNIQUE INDEX template_versions_one_approved ON template_versions (name, channel) WHERE state = 'approved';
