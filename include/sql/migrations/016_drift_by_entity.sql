-- Drift counts members and departments, not rows: what a full sync had to change that callback events
-- should have changed already. The merge finds the versions it closed by their end (now()).
CREATE INDEX IF NOT EXISTS departments_history_closed_valid_to ON wecom.departments_history_closed (valid_to);
CREATE INDEX IF NOT EXISTS user_departments_history_closed_valid_to ON wecom.user_departments_history_closed (valid_to);
COMMENT ON COLUMN wecom.sync_runs.drift IS 'Full runs, once callbacks are on (the wecom connection has a callback token, or events were ever applied): how many members and departments this sync had to add, change or remove that callback events should have changed already. A member counts once, with its memberships and leader flags; a department counts when it appeared, disappeared, moved or changed leaders (WeCom announces no rename or reordering of a department, so those are not drift). 0 when no event was lost; NULL without callbacks.';
