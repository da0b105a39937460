-- Safe-contact v2 (postgres; kept in step with migrations/sqlite/0007_case_memory_calls.sql).

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
INSERT INTO case_categories (case_ref, category)
SELECT DISTINCT o.case_ref, lower(btrim(c.value))
FROM outreach o
CROSS JOIN LATERAL jsonb_array_elements_text(
    CASE WHEN jsonb_typeof(o.request_json::jsonb -> 'crime' -> 'categories') = 'array'
         THEN o.request_json::jsonb -> 'crime' -> 'categories' ELSE '[]'::jsonb END) AS c(value)
WHERE o.request_json IS NOT NULL AND btrim(c.value) <> ''
ON CONFLICT DO NOTHING;

-- Calls decide: the number called (a `wrong_number` suppresses it) as its keyed hash, and why the
-- victim declined (personal: free text, cleared by retention like staff notes).
ALTER TABLE calls ADD COLUMN number_key TEXT;
ALTER TABLE calls ADD COLUMN reason TEXT;
ALTER TABLE calls ADD COLUMN redacted_at BIGINT;
CREATE INDEX calls_reason_retention ON calls (recorded_at) WHERE reason IS NOT NULL AND redacted_at IS NULL;
