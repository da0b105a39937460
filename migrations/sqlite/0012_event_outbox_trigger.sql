-- Every event gets its row in the event outbox from the database itself, in the statement that
-- inserts the event: no path can forget it, and a transaction's events and their rows are one
-- statement instead of two. Kept in step with the other dialect.
CREATE TRIGGER events_to_outbox AFTER INSERT ON events
BEGIN
    INSERT INTO event_outbox (event_id, case_ref, next_at) VALUES (NEW.id, NEW.case_ref, NEW.at);
END;
