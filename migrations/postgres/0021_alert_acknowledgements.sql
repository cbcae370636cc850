-- Acknowledgements of alerts (issue 20). Kept in step with ../sqlite/0021_alert_acknowledgements.sql.
-- Someone on it: who, when and what they said. An acknowledged alert gets no more reminders.
ALTER TABLE alerts ADD COLUMN acked_at BIGINT;
ALTER TABLE alerts ADD COLUMN acked_by TEXT;
ALTER TABLE alerts ADD COLUMN ack_comment TEXT;
