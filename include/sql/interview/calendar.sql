-- The interviews' WeCom calendar (wecom.interviews.calendar): the app's calendar, each interview's schedule.

-- name: try_lock
-- One calendar sync at a time, for the whole sync (it holds no transaction across WeCom calls).
SELECT pg_try_advisory_lock(hashtextextended('wecom.calendar', 0));

-- name: unlock
SELECT pg_advisory_unlock(hashtextextended('wecom.calendar', 0));

-- name: current_calendar
SELECT cal_id FROM wecom.app_calendars WHERE retired_at IS NULL AND organizer = %(organizer)s;

-- name: retire_calendars
-- A new organizer, or WeCom says the calendar is gone: its entries are added again to the new one.
WITH retired AS (
    UPDATE wecom.app_calendars SET retired_at = clock_timestamp(), note = %(note)s
    WHERE retired_at IS NULL AND (cal_id = %(cal_id)s OR organizer <> %(organizer)s)
    RETURNING cal_id
)
UPDATE wecom.calendar_entries e
SET schedule_id = NULL, version = NULL, state = 'failed', note = %(note)s
FROM retired WHERE e.cal_id = retired.cal_id AND e.state <> 'deleted';

-- name: old_calendars_schedules
-- Before a new organizer's calendar replaces the old one: the old one's live schedules, to delete (else
-- every interviewer would see each interview twice).
SELECT e.interview_id, e.schedule_id FROM wecom.calendar_entries e
JOIN wecom.app_calendars a ON a.cal_id = e.cal_id
WHERE a.retired_at IS NULL AND a.organizer <> %(organizer)s AND e.schedule_id IS NOT NULL AND e.state <> 'deleted';

-- name: record_calendar
INSERT INTO wecom.app_calendars (cal_id, organizer) VALUES (%(cal_id)s, %(organizer)s);

-- name: claimed
-- Entries whose schedule/add may have reached WeCom without its answer coming back (a crash, a lost answer).
-- A claim younger than a request can take may still have an add in flight: absent from the list proves
-- nothing yet.
SELECT interview_id, claim::text AS claim, claimed_at > now() - make_interval(secs => %(settle)s) AS young
FROM wecom.calendar_entries
WHERE state = 'claimed' AND schedule_id IS NULL AND cal_id = %(cal_id)s;

-- name: readded_lately
-- An add made again after an interrupted one: a late arrival of the first would be a second schedule, so
-- the calendar's list is read for an hour after it.
SELECT EXISTS (SELECT 1 FROM wecom.calendar_log WHERE action = 'readd' AND at > now() - interval '1 hour');

-- name: known_claims
SELECT claim::text, interview_id, schedule_id FROM wecom.calendar_entries WHERE cal_id = %(cal_id)s;

-- name: to_sync
-- Interviews (with a version ending from a day ago on: the index) whose calendar entry does not show their
-- newest version: upcoming ones to add or update, cancelled ones to delete.
SELECT n.interview_id, n.version, n.status, n.starts_at, n.ends_at, n.room_url, n.position, n.candidate_name,
       n.panel, e.schedule_id, e.claim::text AS claim, e.state
FROM (SELECT DISTINCT interview_id FROM wecom.interview_versions WHERE ends_at > now() - interval '1 day') recent
CROSS JOIN LATERAL (SELECT * FROM wecom.interview_versions v WHERE v.interview_id = recent.interview_id
                    ORDER BY v.version DESC LIMIT 1) n
LEFT JOIN wecom.calendar_entries e ON e.interview_id = n.interview_id
WHERE CASE WHEN e.interview_id IS NULL THEN n.status = 'scheduled' AND n.ends_at > now()
           WHEN n.status = 'cancelled' THEN e.state <> 'deleted'
           ELSE n.ends_at > now() AND (e.version IS DISTINCT FROM n.version OR e.state <> 'synced') END
ORDER BY n.starts_at, n.interview_id
LIMIT %(limit)s;

-- name: claim
-- Before schedule/add: the claim goes into the schedule's description, so the schedule is found again
-- whatever happens to the answer.
INSERT INTO wecom.calendar_entries AS e (interview_id, claim, cal_id, state)
VALUES (%(interview_id)s, gen_random_uuid(), %(cal_id)s, 'claimed')
ON CONFLICT (interview_id) DO UPDATE
SET claim = CASE WHEN e.cal_id = excluded.cal_id THEN e.claim ELSE excluded.claim END,
    cal_id = excluded.cal_id, state = 'claimed', schedule_id = NULL, claimed_at = clock_timestamp()
RETURNING claim::text;

-- name: synced
UPDATE wecom.calendar_entries
SET schedule_id = %(schedule_id)s, version = %(version)s, state = %(state)s, attendees = %(attendees)s,
    synced_at = clock_timestamp(), note = %(note)s
WHERE interview_id = %(interview_id)s;

-- name: adopt
UPDATE wecom.calendar_entries SET schedule_id = %(schedule_id)s, version = NULL, state = 'failed',
    note = 'found in the calendar after an interrupted add; updated next'
WHERE interview_id = %(interview_id)s AND schedule_id IS NULL;

-- name: failed
-- Why an interview is not (yet) in the calendar as it is now; the next run tries again. A claim whose add
-- WeCom refused outright created nothing (refused: no longer claimed); one whose add may have landed stays.
INSERT INTO wecom.calendar_entries AS e (interview_id, claim, cal_id, state, note)
VALUES (%(interview_id)s, gen_random_uuid(), %(cal_id)s, 'failed', %(note)s)
ON CONFLICT (interview_id) DO UPDATE
SET state = CASE WHEN e.state = 'claimed' AND NOT %(refused)s THEN 'claimed' ELSE 'failed' END,
    note = excluded.note;

-- name: current_members
-- Of these userids, the directory's current members (a departed attendee would fail the whole add: 60111).
SELECT lower(userid) FROM wecom.users WHERE lower(userid) = ANY(%(userids)s) AND deleted_at IS NULL;

-- name: log
INSERT INTO wecom.calendar_log (interview_id, version, action, schedule_id, note)
VALUES (%(interview_id)s, %(version)s, %(action)s, %(schedule_id)s, %(note)s);
