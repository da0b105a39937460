-- Safe-contact v2 (sqlite; kept in step with migrations/postgres/0007_case_memory_calls.sql).

-- A case remembers: the crime categories of every job accepted on it (lower-case), so that a
-- follow-up that says only `burglary` on a domestic-abuse case is still decided as one. Not
-- personal data: retention leaves it; erasure moves it with the case's counts.
CREATE TABLE case_categories (
    case_ref TEXT NOT NULL,
    category TEXT NOT NULL,
    PRIMARY KEY (case_ref, category)
);
-- Cases accepted before this migration: from their stored requests (a redacted request keeps
-- its categories).
INSERT OR IGNORE INTO case_categories (case_ref, category)
SELECT o.case_ref, lower(trim(j.value))
FROM outreach o, json_each(o.request_json, '$.crime.categories') j
WHERE o.request_json IS NOT NULL AND json_valid(o.request_json)
  AND json_type(o.request_json, '$.crime.categories') = 'array' AND trim(j.value) <> '';

-- Calls decide: the number called (a `wrong_number` suppresses it) as its keyed hash, and why the
-- victim declined (personal: free text, cleared by retention like staff notes).
ALTER TABLE calls ADD COLUMN number_key TEXT;
ALTER TABLE calls ADD COLUMN reason TEXT;
ALTER TABLE calls ADD COLUMN redacted_at BIGINT;
CREATE INDEX calls_reason_retention ON calls (recorded_at) WHERE reason IS NOT NULL AND redacted_at IS NULL;
