-- Interview changes (wecom.interviews.announce): what was announced, what the platform shows now, the new
-- versions, the cards they supersede and their notices.

-- name: lock
-- One change detector at a time (runs of a backfill overlap): versions are numbered without gaps.
SELECT pg_advisory_xact_lock(hashtextextended('wecom.interview_versions', 0));

-- name: announced
-- The newest version of every interview announced as starting at or after %(since)s (still ahead).
-- (The newest version qualifies only if some version does: the starts_at index picks the candidates.)
SELECT interview_id, status, starts_at, ends_at, room_url, position, candidate_name, panel, version, changes
FROM (SELECT DISTINCT ON (interview_id) *
      FROM wecom.interview_versions
      WHERE interview_id IN (SELECT interview_id FROM wecom.interview_versions WHERE starts_at >= %(since)s)
      ORDER BY interview_id, version DESC) newest
WHERE starts_at >= %(since)s;

-- name: announced_by_id
-- The newest version of these interviews (found on the platform ahead, though announced at an earlier time).
SELECT DISTINCT ON (interview_id) interview_id, status, starts_at, ends_at, room_url, position, candidate_name,
       panel, version, changes
FROM wecom.interview_versions
WHERE interview_id = ANY(%(ids)s)
ORDER BY interview_id, version DESC;

-- name: platform_now
-- The platform's interviews starting in [since, until), and those announced before wherever they are now,
-- with their panels. Finished counts as scheduled (it happened as announced).
SELECT i.interview_id,
       CASE WHEN i.status = 'cancelled' THEN 'cancelled' ELSE 'scheduled' END AS status,
       i.starts_at, i.ends_at, i.room_url, i.position, i.candidate_name,
       coalesce(array_agg(iv.platform_user_id ORDER BY iv.platform_user_id)
                FILTER (WHERE iv.platform_user_id IS NOT NULL), '{}') AS panel
FROM interview_contract.interviews i
LEFT JOIN interview_contract.interviewers iv USING (interview_id)
WHERE (i.starts_at >= %(since)s AND i.starts_at < %(until)s) OR i.interview_id = ANY(%(ids)s)
GROUP BY i.interview_id, i.status, i.starts_at, i.ends_at, i.room_url, i.position, i.candidate_name;

-- name: record_version
-- Version 1 needs no announcing (nothing was said before it): it is recorded announced.
INSERT INTO wecom.interview_versions (interview_id, version, status, starts_at, ends_at, room_url, position,
                                      candidate_name, panel, changes, run_id, announced_at, note)
VALUES (%(interview_id)s, %(version)s, %(status)s, %(starts_at)s, %(ends_at)s, %(room_url)s, %(position)s,
        %(candidate_name)s, %(panel)s, %(changes)s, %(run_id)s,
        CASE WHEN %(version)s = 1 THEN clock_timestamp() END,
        CASE WHEN %(version)s = 1 THEN 'first seen: nothing to announce' END)
ON CONFLICT (interview_id, version) DO NOTHING;

-- name: cards_to_supersede
-- Reminder cards of interviews still ahead that the newest version has not been checked against (a card
-- superseded by a move is checked again after a cancellation). Every run looks, not only
-- at the versions it found: a reminder sent beside the run may have read the platform before a change.
-- A reminder WeCom took only as markdown (43012: no callback URL) has no card to correct.
SELECT c.task_id, c.userid, c.starts_at, c.language, c.correction AS shown_correction,
       EXISTS (SELECT 1 FROM wecom.message_log l WHERE l.dedup_key = c.dedup_key AND l.recipient = c.userid
               AND l.status = 'sent' AND l.errcode = 43012) AS sent_as_markdown,
       n.interview_id, n.status, n.starts_at AS n_starts_at, n.ends_at, n.room_url, n.position, n.candidate_name,
       n.panel, n.version, n.changes,
       EXISTS (SELECT 1 FROM wecom.user_mapping m WHERE m.platform_user_id = ANY(n.panel)
               AND lower(m.wecom_userid) = c.userid) AS on_panel
FROM wecom.reminder_cards c
CROSS JOIN LATERAL (SELECT * FROM wecom.interview_versions v WHERE v.interview_id = c.interview_id
                    ORDER BY v.version DESC LIMIT 1) n
WHERE c.starts_at > now() - interval '1 day' AND c.checked_version IS DISTINCT FROM n.version;

-- name: supersede_card
-- From now on a tap on this card is stale; the correction waits for its card update (again, when a newer
-- version says something else). An answer the card does not show yet never will.
WITH card AS (
    UPDATE wecom.reminder_cards
    SET superseded_at = coalesce(superseded_at, clock_timestamp()), superseded_version = %(version)s,
        checked_version = %(version)s,
        correction = %(correction)s,
        correction_status = CASE WHEN %(sent_as_markdown)s THEN 'not_corrected' ELSE 'pending' END,
        correction_note = CASE WHEN %(sent_as_markdown)s THEN 'the reminder went out as markdown (43012):'
                               ' there is no card to correct; the change notice says it' END
    WHERE task_id = %(task_id)s
    RETURNING task_id
)
UPDATE wecom.reminder_responses r
SET card_status = 'not_updated', card_note = 'superseded by a change: the card shows the correction'
FROM card WHERE r.task_id = card.task_id AND r.card_status = 'pending';

-- name: checked_card
-- The newest version leaves this card as it is (still right, or already showing what it says).
UPDATE wecom.reminder_cards SET checked_version = %(version)s WHERE task_id = %(task_id)s;

-- name: unannounced
-- Versions whose notices are still to send, in order, with the version each one changed.
SELECT v.interview_id, v.status, v.starts_at, v.ends_at, v.room_url, v.position, v.candidate_name, v.panel,
       v.version, v.changes,
       p.status AS p_status, p.starts_at AS p_starts_at, p.ends_at AS p_ends_at, p.room_url AS p_room_url,
       p.position AS p_position, p.candidate_name AS p_candidate_name, p.panel AS p_panel
FROM wecom.interview_versions v
JOIN wecom.interview_versions p ON p.interview_id = v.interview_id AND p.version = v.version - 1
WHERE v.announced_at IS NULL
ORDER BY v.interview_id, v.version
LIMIT %(limit)s;

-- name: declined
-- Who already declined the interview at this start (on a reminder card).
SELECT r.userid FROM wecom.reminder_responses r JOIN wecom.reminder_cards c USING (task_id)
WHERE c.interview_id = %(interview_id)s AND c.starts_at = %(starts_at)s AND r.choice = 'declined';

-- name: mark_announced
-- All of a run's versions at once.
UPDATE wecom.interview_versions v SET announced_at = clock_timestamp(), note = a.note
FROM unnest(%(interview_ids)s::bigint[], %(versions)s::int[], %(notes)s::text[]) AS a(interview_id, version, note)
WHERE v.interview_id = a.interview_id AND v.version = a.version;
