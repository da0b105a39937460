-- The satisfaction survey (issue 15; sqlite, kept in step with the other dialect).

-- A reply read as a survey answer (classification survey_answer) keeps its score, 1 to 5: a count
-- for the report, not personal data, so retention leaves it when it redacts the reply's text.
ALTER TABLE replies ADD COLUMN survey_score BIGINT;

-- The report finds the answers to the surveys of a period by their message.
CREATE INDEX replies_message ON replies (message_id) WHERE message_id IS NOT NULL;
