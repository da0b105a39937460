-- Languages, test keys and per-key rate limits (issue 15; postgres, kept in step with the other dialect).

-- A template version is written in one language (a short BCP-47 code: en, cy, …). Approval and
-- retirement are per (name, channel, language): approving a Welsh version retires only the Welsh
-- version before it. Version numbers still run per (name, channel), across languages.
ALTER TABLE template_versions ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
DROP INDEX template_versions_one_approved;
CREATE UNIQUE INDEX template_versions_one_approved ON template_versions (name, channel, language) WHERE state = 'approved';

-- The language of the version a message was rendered from.
ALTER TABLE messages ADD COLUMN language TEXT NOT NULL DEFAULT 'en';

-- Test keys: their jobs are decided and recorded like any other, sent only to the sandbox, and
-- left out of reports. Test-ness is per job (and its message), never per case.
ALTER TABLE api_keys ADD COLUMN test BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outreach ADD COLUMN test BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN test BIGINT NOT NULL DEFAULT 0;

-- Requests a minute a key may make (a token bucket per key in each API process).
ALTER TABLE api_keys ADD COLUMN rate_limit BIGINT NOT NULL DEFAULT 3000;
