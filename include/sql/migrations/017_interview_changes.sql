-- What the pipeline has announced of each interview (its versions), what became of the reminder cards a
-- change superseded, and the interviews' entries in the app's WeCom calendar.

CREATE TABLE wecom.interview_versions (
    interview_id   bigint      NOT NULL,
    version        integer     NOT NULL CHECK (version > 0),
    status         text        NOT NULL,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    room_url       text,
    position       text        NOT NULL,
    candidate_name text        NOT NULL,
    panel          bigint[]    NOT NULL,
    changes        text[]      NOT NULL,
    seen_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id         text,
    announced_at   timestamptz,
    note           text,
    PRIMARY KEY (interview_id, version)
);
CREATE INDEX interview_versions_unannounced ON wecom.interview_versions (interview_id, version)
    WHERE announced_at IS NULL;
CREATE INDEX interview_versions_upcoming ON wecom.interview_versions (starts_at);
CREATE INDEX interview_versions_ending ON wecom.interview_versions (ends_at);
COMMENT ON TABLE wecom.interview_versions IS 'Each interview as the pipeline saw and announced it: version 1 when first tracked, one more for each change of status, start, end, room or panel (a change undone before the next run is none). Change notices are keyed by (interview, version).';
COMMENT ON COLUMN wecom.interview_versions.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.interview_versions.version IS '1, 2, ...: the version announced.';
COMMENT ON COLUMN wecom.interview_versions.status IS 'scheduled or cancelled (an interview gone from the platform counts as cancelled).';
COMMENT ON COLUMN wecom.interview_versions.starts_at IS 'Start of this version.';
COMMENT ON COLUMN wecom.interview_versions.ends_at IS 'End of this version.';
COMMENT ON COLUMN wecom.interview_versions.room_url IS 'Interview room link.';
COMMENT ON COLUMN wecom.interview_versions.position IS 'Position (for the messages; not a change by itself).';
COMMENT ON COLUMN wecom.interview_versions.candidate_name IS 'Candidate (for the messages; not a change by itself).';
COMMENT ON COLUMN wecom.interview_versions.panel IS 'Platform user ids of the interviewers, sorted.';
COMMENT ON COLUMN wecom.interview_versions.changes IS 'What changed from the previous version: tracked (version 1), cancelled, restored, moved, room, panel.';
COMMENT ON COLUMN wecom.interview_versions.seen_at IS 'When a run found this version.';
COMMENT ON COLUMN wecom.interview_versions.run_id IS 'The Airflow run that found it.';
COMMENT ON COLUMN wecom.interview_versions.announced_at IS 'When its notices were sent (or recorded with why not) and superseded cards corrected; NULL: still to do.';
COMMENT ON COLUMN wecom.interview_versions.note IS 'What announcing it did.';

ALTER TABLE wecom.reminder_cards
    ADD COLUMN superseded_at      timestamptz,
    ADD COLUMN superseded_version integer,
    ADD COLUMN checked_version    integer,
    ADD COLUMN correction         text,
    ADD COLUMN correction_status  text CHECK (correction_status IN ('pending', 'corrected', 'not_corrected')),
    ADD COLUMN correction_note    text;
CREATE INDEX reminder_cards_starts ON wecom.reminder_cards (starts_at);
CREATE INDEX reminder_cards_correction_pending ON wecom.reminder_cards (task_id)
    WHERE correction_status = 'pending';
COMMENT ON COLUMN wecom.reminder_cards.superseded_at IS 'When a change (cancelled, moved, panel) made this card wrong; a tap on it after that is stale.';
COMMENT ON COLUMN wecom.reminder_cards.superseded_version IS 'The interview version (wecom.interview_versions) that superseded it.';
COMMENT ON COLUMN wecom.reminder_cards.checked_version IS 'The newest interview version this card was checked against (each is checked once).';
COMMENT ON COLUMN wecom.reminder_cards.correction IS 'What the card''s buttons are to show instead (e.g. 已取消 / 已改期至 12-05 14:00).';
COMMENT ON COLUMN wecom.reminder_cards.correction_status IS 'pending, corrected (the card shows it), not_corrected (see correction_note; the change notice says it).';
COMMENT ON COLUMN wecom.reminder_cards.correction_note IS 'Why the card could not be corrected, or how it was.';

CREATE TABLE wecom.app_calendars (
    cal_id     text        PRIMARY KEY,
    organizer  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    retired_at timestamptz,
    note       text
);
CREATE UNIQUE INDEX app_calendars_current ON wecom.app_calendars ((true)) WHERE retired_at IS NULL;
COMMENT ON TABLE wecom.app_calendars IS 'The WeCom calendar the app created for interviews (one current; a calendar WeCom reports deleted is retired).';
COMMENT ON COLUMN wecom.app_calendars.cal_id IS 'WeCom cal_id.';
COMMENT ON COLUMN wecom.app_calendars.organizer IS 'The member who owns it (the connection''s calendar_organizer).';
COMMENT ON COLUMN wecom.app_calendars.created_at IS 'When it was created.';
COMMENT ON COLUMN wecom.app_calendars.retired_at IS 'When WeCom said it was gone.';
COMMENT ON COLUMN wecom.app_calendars.note IS 'Why it was retired.';

CREATE TABLE wecom.calendar_entries (
    interview_id bigint      PRIMARY KEY,
    claim        uuid        NOT NULL,
    cal_id       text,
    schedule_id  text,
    version      integer,
    state        text        NOT NULL CHECK (state IN ('claimed', 'synced', 'deleted', 'failed')),
    attendees    text[],
    claimed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    synced_at    timestamptz,
    note         text
);
CREATE INDEX calendar_entries_claimed ON wecom.calendar_entries (interview_id) WHERE state = 'claimed';
COMMENT ON TABLE wecom.calendar_entries IS 'Each interview''s schedule in the app''s WeCom calendar: claimed before schedule/add (WeCom has no duplicate check), its schedule_id recorded after; a claim without an id is reconciled against the calendar''s own list.';
COMMENT ON COLUMN wecom.calendar_entries.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.calendar_entries.claim IS 'Written into the schedule''s description, so a schedule whose id a crash lost is found and adopted.';
COMMENT ON COLUMN wecom.calendar_entries.cal_id IS 'The app calendar it is in.';
COMMENT ON COLUMN wecom.calendar_entries.schedule_id IS 'WeCom schedule_id; NULL while only claimed.';
COMMENT ON COLUMN wecom.calendar_entries.version IS 'The interview version (wecom.interview_versions) the schedule shows.';
COMMENT ON COLUMN wecom.calendar_entries.state IS 'claimed (add in flight or interrupted), synced, deleted (cancelled), failed (see note; retried next run).';
COMMENT ON COLUMN wecom.calendar_entries.attendees IS 'Interviewers'' userids on the schedule.';
COMMENT ON COLUMN wecom.calendar_entries.claimed_at IS 'When the entry was claimed.';
COMMENT ON COLUMN wecom.calendar_entries.synced_at IS 'Last time the schedule was made to agree with the version.';
COMMENT ON COLUMN wecom.calendar_entries.note IS 'Why it is not synced, or what the last sync did.';

CREATE TABLE wecom.calendar_log (
    log_id       bigserial   PRIMARY KEY,
    interview_id bigint      NOT NULL,
    version      integer,
    action       text        NOT NULL,
    schedule_id  text,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    note         text
);
CREATE INDEX calendar_log_interview ON wecom.calendar_log (interview_id, at);
COMMENT ON TABLE wecom.calendar_log IS 'History of every calendar call made for an interview: add, update, delete, adopt (found after a crash), remove_duplicate, failed.';
COMMENT ON COLUMN wecom.calendar_log.log_id IS 'Row id.';
COMMENT ON COLUMN wecom.calendar_log.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.calendar_log.version IS 'The interview version synced.';
COMMENT ON COLUMN wecom.calendar_log.action IS 'add, update, delete, adopt, remove_duplicate or failed.';
COMMENT ON COLUMN wecom.calendar_log.schedule_id IS 'WeCom schedule_id.';
COMMENT ON COLUMN wecom.calendar_log.at IS 'When.';
COMMENT ON COLUMN wecom.calendar_log.note IS 'Details (the error, what was dropped).';

-- For analysts: what was announced against what is now.
CREATE VIEW wecom.interview_changes AS
SELECT v.interview_id, v.version, v.changes, v.status, v.starts_at, v.ends_at,
       p.status AS previous_status, p.starts_at AS previous_starts_at, v.seen_at, v.announced_at,
       l.recipient AS interviewer, l.status AS notice, l.sent_at AS told_at, l.reason AS not_told_because
FROM wecom.interview_versions v
LEFT JOIN wecom.interview_versions p ON p.interview_id = v.interview_id AND p.version = v.version - 1
LEFT JOIN wecom.message_log l ON l.dedup_key = 'change:' || v.interview_id || ':v' || v.version
WHERE v.version > 1;
COMMENT ON VIEW wecom.interview_changes IS 'Each change to an interview after it was first announced, one row per interviewer told (or not, and why): "who was told of the move, and when?" is a filter on this view.';
COMMENT ON COLUMN wecom.interview_changes.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.interview_changes.version IS 'The version this change made.';
COMMENT ON COLUMN wecom.interview_changes.changes IS 'cancelled, restored, moved, room, panel.';
COMMENT ON COLUMN wecom.interview_changes.status IS 'Status after the change.';
COMMENT ON COLUMN wecom.interview_changes.starts_at IS 'Start after the change.';
COMMENT ON COLUMN wecom.interview_changes.ends_at IS 'End after the change.';
COMMENT ON COLUMN wecom.interview_changes.previous_status IS 'Status before.';
COMMENT ON COLUMN wecom.interview_changes.previous_starts_at IS 'Start before.';
COMMENT ON COLUMN wecom.interview_changes.seen_at IS 'When the pipeline found the change.';
COMMENT ON COLUMN wecom.interview_changes.announced_at IS 'When its notices and card corrections were done.';
COMMENT ON COLUMN wecom.interview_changes.interviewer IS 'Interviewer (userid) the change notice was for.';
COMMENT ON COLUMN wecom.interview_changes.notice IS 'Ledger status of the notice: sent, expired, skipped, failed, pending, deferred.';
COMMENT ON COLUMN wecom.interview_changes.told_at IS 'When WeCom accepted the notice.';
COMMENT ON COLUMN wecom.interview_changes.not_told_because IS 'Why the notice was not sent, if it was not.';

CREATE VIEW wecom.interview_now AS
SELECT DISTINCT ON (interview_id) interview_id, version, status, starts_at, ends_at, room_url, position,
       candidate_name, panel, seen_at, announced_at
FROM wecom.interview_versions
ORDER BY interview_id, version DESC;
COMMENT ON VIEW wecom.interview_now IS 'Each tracked interview as last announced (its newest version).';
COMMENT ON COLUMN wecom.interview_now.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.interview_now.version IS 'Newest version.';
COMMENT ON COLUMN wecom.interview_now.status IS 'scheduled or cancelled.';
COMMENT ON COLUMN wecom.interview_now.starts_at IS 'Start.';
COMMENT ON COLUMN wecom.interview_now.ends_at IS 'End.';
COMMENT ON COLUMN wecom.interview_now.room_url IS 'Room link.';
COMMENT ON COLUMN wecom.interview_now.position IS 'Position.';
COMMENT ON COLUMN wecom.interview_now.candidate_name IS 'Candidate.';
COMMENT ON COLUMN wecom.interview_now.panel IS 'Platform user ids of the interviewers.';
COMMENT ON COLUMN wecom.interview_now.seen_at IS 'When this version was found.';
COMMENT ON COLUMN wecom.interview_now.announced_at IS 'When it was announced (NULL: in progress).';

CREATE VIEW wecom.calendar_sync AS
SELECT n.interview_id, n.version AS current_version, n.status, n.starts_at, e.schedule_id, e.version AS calendar_version,
       e.state, e.attendees, e.synced_at,
       CASE WHEN e.interview_id IS NULL AND n.status = 'scheduled' THEN 'not in the calendar yet'
            WHEN e.interview_id IS NULL THEN 'never in the calendar (cancelled first)'
            WHEN e.version = n.version AND e.state IN ('synced', 'deleted') THEN 'in step'
            ELSE coalesce(e.note, 'behind: the next run updates it') END AS sync_state
FROM wecom.interview_now n
LEFT JOIN wecom.calendar_entries e USING (interview_id);
COMMENT ON VIEW wecom.calendar_sync IS 'Each tracked interview against its WeCom calendar entry: in step, or why not.';
COMMENT ON COLUMN wecom.calendar_sync.interview_id IS 'Platform interview id.';
COMMENT ON COLUMN wecom.calendar_sync.current_version IS 'Newest announced version.';
COMMENT ON COLUMN wecom.calendar_sync.status IS 'scheduled or cancelled.';
COMMENT ON COLUMN wecom.calendar_sync.starts_at IS 'Start.';
COMMENT ON COLUMN wecom.calendar_sync.schedule_id IS 'WeCom schedule_id, if any.';
COMMENT ON COLUMN wecom.calendar_sync.calendar_version IS 'The version the calendar entry shows.';
COMMENT ON COLUMN wecom.calendar_sync.state IS 'claimed, synced, deleted, failed (see calendar_entries).';
COMMENT ON COLUMN wecom.calendar_sync.attendees IS 'Userids on the schedule.';
COMMENT ON COLUMN wecom.calendar_sync.synced_at IS 'Last sync.';
COMMENT ON COLUMN wecom.calendar_sync.sync_state IS 'in step, not in the calendar yet, or why it is behind (e.g. the app may not use the schedule API).';

GRANT SELECT ON wecom.interview_versions, wecom.interview_changes, wecom.interview_now, wecom.calendar_sync,
                wecom.calendar_entries, wecom.calendar_log TO wecom_analyst;
